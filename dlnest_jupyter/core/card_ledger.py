"""The card ledger: what one placement pass knows of the cards (budgets, tasks per card, last
launches, the cards held for a starving task) and which of them may take a task now.

Apart from `placement.py`: the ledger is kept up to date incrementally, in the time of the cards a
placement changed, for speed (10,000 tasks over 512 cards in milliseconds); that bookkeeping
changes with performance work, the pass with the rules of where a task goes. `core/waiting.py`
reads the same ledger to say why a task waits.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field

from .devices import CPU_ID
from .placement_values import Demand, Placement, estimate_mb
from .settings import Settings


@dataclass
class CardLedger:
    """What one placement pass knows of the cards, updated as it places tasks."""

    budget_mb: dict[int, int]
    total_mb: dict[int, int]
    tasks: dict[int, int]
    last_launch_at: dict[int, float] = field(default_factory=dict)
    held: set[int] = field(default_factory=set)  # cards draining for a starving task
    held_for: int | None = None  # that task
    # Backfill (placement.py): when the task held for should start on its card, and the memory
    # there it will not need then; and when each card's running tasks should end (None: unknown).
    shadow_at: float | None = None
    slack_mb: dict[int, int] = field(default_factory=dict)
    ends_mb: dict[int, list[tuple[float | None, int]]] = field(default_factory=dict)
    ends_known: bool = False  # any of them: else backfill has nothing to go by
    node_of: dict[int, str | None] = field(default_factory=dict)  # on a cluster: card -> node
    # Cards that may take a task now, kept up to date by `take` in the time of the cards it
    # changed: a pass over 10,000 tasks and 512 cards must take milliseconds, so a task that
    # cannot fit is rejected in O(1), and one that fits finds its card without a scan.
    max_budget_mb: int = 0  # the most one card could give a task
    max_node_budget_mb: int = 0  # the most one machine's cards could give a -mc/-DDP task
    _eligible: set[int] = field(default_factory=set)
    _levels: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # tasks -> (-MiB, id)
    _node_budget_mb: dict[str | None, int] = field(default_factory=dict)
    _cards_of_node: dict[str | None, list[int]] = field(default_factory=dict)
    generation: int = 0  # counts changes: an explanation made at one generation holds for it

    def refresh(self, settings: Settings, now: float) -> None:
        self.generation += 1
        self._eligible = {g for g in self.budget_mb if eligible(g, self, settings, now)}
        self._levels = {}
        for card in self._eligible:
            self._levels.setdefault(self.tasks.get(card, 0), []).append(
                (-self.budget_mb[card], card)
            )
        for heap in self._levels.values():
            heapq.heapify(heap)
        self._node_budget_mb = {}
        for card in self._eligible:
            node = self.node_of.get(card)
            self._node_budget_mb[node] = self._node_budget_mb.get(node, 0) + max(
                0, self.budget_mb[card]
            )
        self._derive()

    def _derive(self) -> None:
        self.max_node_budget_mb = max(self._node_budget_mb.values(), default=0)
        self.max_budget_mb = max(
            (-heap[0][0] for level, heap in self._levels.items() if self._clean(level)), default=0
        )

    @property
    def has_cards(self) -> bool:
        return bool(self._eligible)

    @property
    def cards(self) -> list[int]:
        return sorted(self._eligible)

    def cards_by_node(self, at_least_mb: int) -> Iterator[tuple[str | None, list[int]]]:
        """Eligible cards of each machine whose cards could give `at_least_mb` together, one
        machine at a time (a caller that found the best plan stops asking)."""
        if not self._cards_of_node:
            for card in sorted(self.budget_mb):
                self._cards_of_node.setdefault(self.node_of.get(card), []).append(card)
        for node, budget in list(self._node_budget_mb.items()):
            if budget >= at_least_mb:
                cards = [c for c in self._cards_of_node[node] if c in self._eligible]
                if cards:
                    yield node, cards

    def best_card(self, estimate_mb: int) -> int | None:
        """The card a one-card task of `estimate_mb` takes: fewest tasks, then most budget."""
        for level in sorted(self._levels):
            if self._clean(level) and -self._levels[level][0][0] >= estimate_mb:
                return self._levels[level][0][1]
        return None

    def _clean(self, level: int) -> bool:
        """Drop outdated entries from the top of a level's heap; whether any card is left."""
        heap = self._levels[level]
        while heap and self._stale(heap[0], level):
            heapq.heappop(heap)
        return bool(heap)

    def _stale(self, entry: tuple[int, int], level: int) -> bool:
        budget, card = -entry[0], entry[1]
        return (
            card not in self._eligible
            or self.tasks.get(card, 0) != level
            or self.budget_mb[card] != budget
        )

    def hold_for(self, demand: Demand, settings: Settings, now: float) -> None:
        """Keep later tasks off the card(s) a starving task needs, so they drain for it."""
        enabled = [
            g
            for g in self.budget_mb
            if settings.enabled(g)
            and g not in self.held
            and (demand.node is None or self.node_of.get(g) == demand.node)
        ]
        if demand.multi_gpu or demand.ddp:
            # One machine's cards (on one box, all of them): the machine with the most memory.
            totals: dict[str | None, int] = {}
            for card in enabled:
                node = self.node_of.get(card)
                totals[node] = totals.get(node, 0) + self.total_mb[card]
            if totals:
                widest = max(totals, key=lambda n: totals[n])
                self.held.update(g for g in enabled if self.node_of.get(g) == widest)
        else:
            big_enough = [
                g for g in enabled if self.total_mb[g] >= estimate_mb(demand, self.total_mb[g])
            ]
            if big_enough:
                self.held.add(max(big_enough, key=lambda g: (self.budget_mb[g], -g)))
        self.refresh(settings, now)

    def take(self, placement: Placement, settings: Settings, now: float) -> None:
        self.generation += 1
        for device, reserved in placement.memory_mb_by_device.items():
            self.tasks[device] = self.tasks.get(device, 0) + 1
            self.last_launch_at[device] = now
            if device == CPU_ID:
                continue
            node = self.node_of.get(device)
            if device in self._eligible:
                self._node_budget_mb[node] -= max(0, self.budget_mb[device])
            self.budget_mb[device] -= reserved
            if eligible(device, self, settings, now):
                self._eligible.add(device)
                self._node_budget_mb[node] = self._node_budget_mb.get(node, 0) + max(
                    0, self.budget_mb[device]
                )
                heapq.heappush(
                    self._levels.setdefault(self.tasks[device], []),
                    (-self.budget_mb[device], device),
                )
            else:
                self._eligible.discard(device)
        if CPU_ID in placement.memory_mb_by_device and not eligible(CPU_ID, self, settings, now):
            self._eligible.discard(CPU_ID)
        self._derive()


def eligible(
    device: int, ledger: CardLedger, settings: Settings, now: float, held_too: bool = False
) -> bool:
    """Whether `device` may take a task now; the pass asks it of the CPU too. `held_too`: a
    held card counts as any other (a backfill onto it asks)."""
    return (
        settings.enabled(device)
        and (held_too or device not in ledger.held)
        and ledger.tasks.get(device, 0) < settings.max_tasks_per_device
        # No delay means no wait, even for a launch stamped after `now` by another scheduler.
        and (
            settings.launch_delay_s <= 0
            or now - ledger.last_launch_at.get(device, float("-inf")) >= settings.launch_delay_s
        )
    )
