"""Why a queued task waits: one sentence per task, from the ledger the placement pass used.

A researcher whose run sits `queued` must see what holds it: "needs 14,745 MiB; most free is
1,639 MiB on GPU 0 (analyzer 40 holds 14,745)", "the CPU is disabled (changeDevices)", "launch
delay, 3 s", "tasks per card at its limit (10)". The scheduler asks `WaitExplainer.why` for each
task the pass left waiting (`placement.placement_pass`) and records the answer with the task.

Pure: values in, text out. Tasks of the same shape that wait on the same ledger wait for the
same reason, so a pass over 10,000 queued tasks explains each shape once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .card_ledger import CardLedger
from .devices import CPU_ID, InventorySnapshot
from .placement import fits_when_idle
from .placement_values import Demand, Reservation, estimate_mb
from .settings import Settings

MAX_HOLDERS_NAMED = 3  # "(task 3 holds 4,000; analyzer 5 holds 2,000; +2 more)"


class WaitExplainer:
    def __init__(
        self,
        snapshot: InventorySnapshot,
        running: Sequence[Reservation],
        settings: Settings,
        now: float,
        names: Mapping[int, str] | None = None,
        others_mb: Mapping[int, int] | None = None,
    ) -> None:
        """`names`: how to call our holding tasks ("analyzer 40"; default "task N");
        `others_mb`: MiB other users' schedulers reserve per card."""
        self.snapshot, self.settings, self.now = snapshot, settings, now
        self.names = names or {}
        self.others_mb = others_mb or {}
        self._holders: dict[int, list[tuple[int, int]]] = {}  # card -> (MiB, task id)
        for reservation in running:
            for card, mb in reservation.memory_mb_by_device.items():
                self._holders.setdefault(card, []).append((mb, reservation.task_id))
        self._said: dict[tuple[object, ...], str] = {}

    def why(self, demand: Demand, ledger: CardLedger) -> str:
        """Why `demand` was not placed on `ledger` (as the pass saw it when it tried)."""
        if ledger.held_for == demand.task_id:
            # The starving task's own reason changes as its card drains: not shared.
            own, note = self._explain(demand, ledger), self._drain_note(ledger)
            return own if note in own else f"{own}; {note}"
        key = (
            ledger.generation,
            demand.memory_mb,
            demand.cpu,
            demand.multi_gpu,
            demand.ddp,
            demand.node,
        )
        said = self._said.get(key)
        if said is None:
            said = self._said[key] = self._explain(demand, ledger)
        return said

    # -- the reasons --------------------------------------------------------------------------
    def _explain(self, demand: Demand, ledger: CardLedger) -> str:
        if demand.cpu:
            return self._cpu(ledger)
        if self.snapshot.unavailable:
            return f"the GPUs cannot be read now ({self.snapshot.reason or 'unavailable'})"
        cards = [g.id for g in self.snapshot.gpus if demand.node is None or g.node == demand.node]
        if not cards:
            return "no GPU to run on" + (
                f" ({self.snapshot.reason})" if self.snapshot.reason else ""
            )
        enabled = [g for g in cards if self.settings.enabled(g)]
        if not enabled:
            return "every GPU is disabled (changeDevices)"
        if not fits_when_idle(demand, self.snapshot, self.settings):
            disabled = len(cards) - len(enabled)
            return (
                f"needs {_mb(self._estimate(demand, max(cards, key=ledger.total_mb.__getitem__), ledger))}"
                f", more than the enabled GPUs can ever give ({disabled} disabled: changeDevices)"
            )
        if demand.multi_gpu or demand.ddp:
            return self._spread(demand, enabled, ledger)
        fitting = [g for g in enabled if ledger.budget_mb[g] >= self._estimate(demand, g, ledger)]
        if not fitting:
            best = max(enabled, key=lambda g: (ledger.budget_mb[g], -g))
            return (
                f"needs {_mb(self._estimate(demand, best, ledger))}; most free is "
                f"{_mb(max(0, ledger.budget_mb[best]))} on {self._card(best)}"
                f"{self._held_by(best)}"
            )
        return self._blocked(fitting, ledger)

    def _cpu(self, ledger: CardLedger) -> str:
        if not self.settings.enabled(CPU_ID):
            return "the CPU is disabled (changeDevices)"
        return self._blocked([CPU_ID], ledger)

    def _spread(self, demand: Demand, enabled: list[int], ledger: CardLedger) -> str:
        by_node: dict[str | None, int] = {}
        for card in enabled:
            node = ledger.node_of.get(card)
            by_node[node] = by_node.get(node, 0) + max(0, ledger.budget_mb[card])
        node, most = max(by_node.items(), key=lambda item: item[1])
        wanted = self._estimate(demand, max(enabled, key=ledger.total_mb.__getitem__), ledger)
        if most < wanted:
            where = f" on node {node}" if node is not None and len(by_node) > 1 else ""
            return f"needs {_mb(wanted)} across GPUs; most free together is {_mb(most)}{where}"
        return self._blocked(enabled, ledger)

    def _blocked(self, cards: list[int], ledger: CardLedger) -> str:
        """Cards with room that the pass still could not use: say the nearest end of the wait."""
        delay = self.settings.launch_delay_s
        # The setting, not a countdown: a reason is stored, and a text that changed every pass
        # would rewrite every queued task's row every pass.
        if delay > 0 and any(
            c in ledger.last_launch_at
            and self.now - ledger.last_launch_at[c] < delay
            and c not in ledger.held
            and ledger.tasks.get(c, 0) < self.settings.max_tasks_per_device
            for c in cards
        ):
            return f"launch delay, {delay:g} s"
        if all(ledger.tasks.get(c, 0) >= self.settings.max_tasks_per_device for c in cards):
            limit = self.settings.max_tasks_per_device
            where = "the CPU" if cards == [CPU_ID] else "each GPU it fits on"
            return f"tasks per card at its limit ({limit}) on {where}"
        if any(c in ledger.held for c in cards):
            return self._drain_note(ledger)
        return "next in line"

    def _drain_note(self, ledger: CardLedger) -> str:
        cards = ", ".join(self._card(c) for c in sorted(ledger.held))
        if ledger.shadow_at is not None:  # held by expected ends (placement.py's backfill)
            return (
                f"{cards} kept for task {ledger.held_for}, expected to have room there "
                f"{_in_about(ledger.shadow_at - self.now)}"
            )
        return f"{cards} kept free for task {ledger.held_for}, which has waited longest"

    # -- words --------------------------------------------------------------------------------
    def _estimate(self, demand: Demand, card: int, ledger: CardLedger) -> int:
        return estimate_mb(demand, ledger.total_mb[card])

    def _card(self, card: int) -> str:
        gpu = self.snapshot.gpu(card)
        if gpu is not None and gpu.node is not None:
            return f"GPU {card} ({gpu.node}:{gpu.index})"
        return f"GPU {card}"

    def _held_by(self, card: int) -> str:
        holders = sorted(self._holders.get(card, ()), reverse=True)
        words = [
            f"{self.names.get(task_id, f'task {task_id}')} holds {mb:,}"
            for mb, task_id in holders[:MAX_HOLDERS_NAMED]
        ]
        if len(holders) > MAX_HOLDERS_NAMED:
            words.append(f"+{len(holders) - MAX_HOLDERS_NAMED} more")
        if self.others_mb.get(card):
            words.append(f"other users hold {self.others_mb[card]:,}")
        return f" ({'; '.join(words)})" if words else ""


def _in_about(seconds: float) -> str:
    """`in about 9 min`: a stored reason, so coarse (only figures change between passes)."""
    if seconds < 90:
        return f"in about {max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"in about {round(seconds / 60)} min"
    return f"in about {seconds / 3600:.1f} h"


def _mb(value: int) -> str:
    return f"{value:,} MiB"
