"""Where queued tasks start: the placement pass, pure functions over values.

A GPU's budget is its total memory, less what our running tasks reserved on it, less what other
processes use (DESIGN.md section 5). A task reserves its estimate (`memory_mb`, or 90% of a card
as in DLNest) when placed, so two launches can never pick the same free memory, with no delay.

One pass walks the queue in order and starts every task that fits now:
- a task that does not fit does not block those behind it (DLNest's strict FIFO did), and CPU
  tasks never wait behind GPU tasks;
- backfill by expected end: the first one-card GPU task that does not fit holds the card that
  will free enough for it soonest, by the expected ends of the tasks running there (their pace,
  or their job's earlier runs); later tasks may start on that card only if they are expected to
  end before then, or fit in what it will not need then, so it starts when expected, and the
  queue behind it does not wait for it;
- against starvation, where ends are unknown: a GPU task that does not fit and has waited
  `starvation_s` holds the card it will get (the one with most budget; all cards for
  -mc/-DDP): later tasks stay off it, so it drains until the task fits, while the other cards
  keep working;
- among cards that fit, the one running the fewest tasks wins, then the one with most budget
  (DLNest stacked every queued task on GPU 0).

The values it reads and returns are in `placement_values.py`, what it knows of the cards as it
goes (the memory ledger) in `card_ledger.py`, the settings it obeys in `settings.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from .card_ledger import CardLedger, eligible
from .devices import CPU_ID, InventorySnapshot
from .placement_values import Demand, Placement, Reservation, estimate_mb
from .settings import Settings


def gpu_budgets_mb(snapshot: InventorySnapshot, running: Iterable[Reservation]) -> dict[int, int]:
    """Free MiB per GPU: total, less our reservations, less memory used by other processes."""
    running = list(running)
    our_pids = frozenset(r.pid for r in running if r.pid is not None)
    reserved_mb: dict[int, int] = {}
    for reservation in running:
        for device, mb in reservation.memory_mb_by_device.items():
            reserved_mb[device] = reserved_mb.get(device, 0) + mb
    budgets = {}
    for gpu in snapshot.gpus:
        reserved = reserved_mb.get(gpu.id, 0)
        foreign = gpu.foreign_memory_mb(our_pids, reserved)
        budgets[gpu.id] = gpu.memory_total_mb - reserved - foreign
    return budgets


def plan_placements(
    queue: Sequence[Demand],
    snapshot: InventorySnapshot,
    running: Sequence[Reservation],
    settings: Settings,
    now: float,
    others: Sequence[Reservation] = (),
) -> list[Placement]:
    """The tasks of `queue` (in queue order) to start now, and where.

    `running`: our tasks' reservations; `others`: those of other schedulers on this box (other
    users', from the box ledger), which take memory like foreign processes but do not count
    against our tasks-per-card cap or launch delay.
    """
    return [
        placement
        for _, placement, _ in placement_pass(queue, snapshot, running, settings, now, others)
        if placement is not None
    ]


def placement_pass(
    queue: Sequence[Demand],
    snapshot: InventorySnapshot,
    running: Sequence[Reservation],
    settings: Settings,
    now: float,
    others: Sequence[Reservation] = (),
) -> Iterator[tuple[Demand, Placement | None, CardLedger]]:
    """`plan_placements`, one task at a time: each demand, where it goes (None: it waits),
    and the ledger as that task saw it, for `core/waiting.py` to say why it waits. The ledger
    changes with the next step: read it before asking for the next."""
    ledger = _ledger(snapshot, running, others)
    ledger.refresh(settings, now)
    for demand in queue:
        # The held card first: what may backfill there uses room nothing else could use now.
        placement = (
            _backfill(demand, ledger, settings, now) if ledger.shadow_at is not None else None
        )
        if placement is None:
            placement = _place(demand, ledger, settings, now)
        if placement is None and not demand.cpu and not ledger.held:  # one held task at a time
            # Cheap tests first: a pass over 10,000 queued tasks must stay in milliseconds.
            shadow = _soonest_card(demand, ledger, settings, now) if ledger.ends_known else None
            if shadow is not None:
                card, starts_at, slack = shadow
                ledger.held.add(card)
                ledger.held_for, ledger.shadow_at, ledger.slack_mb = (
                    demand.task_id,
                    starts_at,
                    {card: slack},
                )
                ledger.refresh(settings, now)
            elif now - demand.queued_at >= settings.starvation_s and fits_when_idle(
                demand, snapshot, settings
            ):
                ledger.hold_for(demand, settings, now)
                ledger.held_for = demand.task_id
        yield demand, placement, ledger
        if placement is not None:
            ledger.take(placement, settings, now)


def admission_error(
    demand: Demand, snapshot: InventorySnapshot, settings: Settings | None = None
) -> str | None:
    """Why `demand` can never run on this machine, or None if it could. With `settings`, a CPU
    task is refused while the CPU is disabled: it would wait for a `changeDevices` nobody
    means to make (DLNest's device lists name GPUs; -1 there is easily left out)."""
    if demand.cpu:
        if settings is not None and not settings.enabled(CPU_ID):
            return (
                "the CPU is disabled (changeDevices); enable it by listing -1 among the devices,"
                " e.g. changeDevices -d -1 0 1"
            )
        return None
    if snapshot.unavailable:
        return None
    if demand.node is not None and not any(g.node == demand.node for g in snapshot.gpus):
        return (
            f"analyzers run on this server's machine (node {demand.node}), which has no GPU in "
            "the cluster; analyze on the CPU"
        )
    if not snapshot.gpus:
        reason = f" ({snapshot.reason})" if snapshot.reason else ""
        return f"this machine has no GPU{reason}; submit the task for the CPU"
    if not fits_when_idle(demand, snapshot, Settings()):
        usable = [g for g in snapshot.gpus if demand.node is None or g.node == demand.node]
        totals = sorted((g.memory_total_mb for g in usable), reverse=True)
        wanted = demand.memory_mb
        if demand.node is not None:  # an analyzer on a cluster: this machine's cards only
            return (
                f"needs {wanted} MiB on one GPU, but the largest GPU of this server's machine "
                f"(node {demand.node}) has {totals[0]} MiB"
            )
        if demand.rank_mb is not None and demand.rank_mb > totals[0]:
            return (
                f"needs {demand.rank_mb} MiB for each DDP rank, but the largest GPU has "
                f"{totals[0]} MiB"
            )
        if demand.multi_gpu or demand.ddp:
            by_node: dict[str | None, int] = {}
            for gpu in snapshot.gpus:
                by_node[gpu.node] = by_node.get(gpu.node, 0) + gpu.memory_total_mb
            if len(by_node) > 1:  # a cluster: a task's cards are on one machine
                node, most = max(by_node.items(), key=lambda item: item[1])
                return (
                    f"needs {wanted} MiB, more than the GPUs of any one machine hold together "
                    f"(the most: node {node}, {most} MiB)"
                )
            return f"needs {wanted} MiB, more than all {len(totals)} GPUs hold together ({sum(totals)} MiB)"
        spread = "" if demand.one_card else " (use -mc or -DDP to spread it)"
        return f"needs {wanted} MiB on one GPU, but the largest GPU has {totals[0]} MiB{spread}"
    return None


def fits_when_idle(demand: Demand, snapshot: InventorySnapshot, settings: Settings) -> bool:
    """Whether `demand` would fit on the enabled cards if nothing else ran on them."""
    if demand.cpu:
        return settings.enabled(CPU_ID)
    totals = {g.id: g.memory_total_mb for g in snapshot.gpus if settings.enabled(g.id)}
    idle = CardLedger(
        budget_mb=dict(totals),
        total_mb=totals,
        tasks={},
        node_of={g.id: g.node for g in snapshot.gpus},
    )
    idle_settings = Settings(devices=settings.devices)
    idle.refresh(idle_settings, now=float("inf"))
    return _place(demand, idle, idle_settings, now=float("inf")) is not None


def _soonest_card(
    demand: Demand, ledger: CardLedger, settings: Settings, now: float
) -> tuple[int, float, int] | None:
    """(card, when it will have room, what it will have beyond the demand then) for a one-card
    GPU demand, by the expected ends of the tasks on each card; None where no card's is known."""
    if demand.cpu or demand.multi_gpu or demand.ddp:
        return None
    needs = {
        card: estimate_mb(demand, ledger.total_mb[card])
        for card in ledger.budget_mb
        if settings.enabled(card)
        and card not in ledger.held
        and (demand.node is None or ledger.node_of.get(card) == demand.node)
    }
    needs = {card: need for card, need in needs.items() if need <= ledger.total_mb[card]}
    if any(ledger.budget_mb[card] >= need for card, need in needs.items()):
        return None  # there is room now: what keeps it waiting is not memory
    best: tuple[float, int, int] | None = None  # (when, -spare then, card): soonest, then roomiest
    for card, need in needs.items():
        free, at = ledger.budget_mb[card], now
        for end, mb in sorted(ledger.ends_mb.get(card, ()), key=lambda e: (e[0] is None, e[0])):
            if free >= need:
                break
            if end is None:
                break  # this one's end is unknown: so is when the card will have room
            free, at = free + mb, max(at, end)
        if free >= need and (best is None or (at, need - free, card) < best):
            best = (at, need - free, card)
    return None if best is None else (best[2], best[0], -best[1])


def _backfill(
    demand: Demand, ledger: CardLedger, settings: Settings, now: float
) -> Placement | None:
    """A one-card task on the held card, if it cannot delay the task held for: it is expected
    to end before that one starts, or fits in what that one will not need."""
    if demand.cpu or demand.multi_gpu or demand.ddp or ledger.shadow_at is None:
        return None
    for card in sorted(ledger.slack_mb):
        need = estimate_mb(demand, ledger.total_mb[card])
        if (
            need > ledger.budget_mb[card]
            or not eligible(card, ledger, settings, now, held_too=True)
            or (demand.node is not None and ledger.node_of.get(card) != demand.node)
        ):
            continue
        ends_before = demand.expected_s is not None and now + demand.expected_s <= ledger.shadow_at
        if ends_before or need <= ledger.slack_mb[card]:
            if not ends_before:
                ledger.slack_mb[card] -= need
            return Placement(demand.task_id, {card: need})
    return None


def _ledger(
    snapshot: InventorySnapshot, running: Sequence[Reservation], others: Sequence[Reservation]
) -> CardLedger:
    tasks: dict[int, int] = {}
    last_launch_at: dict[int, float] = {}
    ends_mb: dict[int, list[tuple[float | None, int]]] = {}
    for reservation in running:
        for device, mb in reservation.memory_mb_by_device.items():
            tasks[device] = tasks.get(device, 0) + 1
            last_launch_at[device] = max(last_launch_at.get(device, 0.0), reservation.started_at)
            ends_mb.setdefault(device, []).append((reservation.expected_end, mb))
    return CardLedger(
        ends_mb=ends_mb,
        ends_known=any(end is not None for ends in ends_mb.values() for end, _ in ends),
        budget_mb=gpu_budgets_mb(snapshot, [*running, *others]),
        total_mb={g.id: g.memory_total_mb for g in snapshot.gpus},
        tasks=tasks,
        last_launch_at=last_launch_at,
        node_of={g.id: g.node for g in snapshot.gpus},
    )


def _place(demand: Demand, ledger: CardLedger, settings: Settings, now: float) -> Placement | None:
    if demand.cpu:
        return (
            Placement(demand.task_id, {CPU_ID: 0})
            if eligible(CPU_ID, ledger, settings, now)
            else None
        )
    wanted = demand.memory_mb
    if not ledger.has_cards or (wanted is not None and wanted > _room_mb(demand, ledger)):
        return None
    spread = demand.ddp or demand.multi_gpu
    if demand.node is None and not spread and wanted is not None:
        best = ledger.best_card(wanted)
        return None if best is None else Placement(demand.task_id, {best: wanted})
    if spread:
        # A task's cards are all on one machine: each machine that could hold it is planned
        # alone, and the plan with the fewest cards wins.
        place = _place_ddp if demand.ddp else _place_multi
        # No machine can do with fewer cards than this: the first plan that needs no more wins.
        least = -(-wanted // ledger.max_budget_mb) if wanted and ledger.max_budget_mb > 0 else 1
        best_plan: Placement | None = None
        for node, cards in ledger.cards_by_node(wanted or 0):
            if demand.node is not None and node != demand.node:
                continue
            plan = place(demand, cards, ledger)
            if plan is not None and (
                best_plan is None
                or len(plan.memory_mb_by_device) < len(best_plan.memory_mb_by_device)
            ):
                best_plan = plan
                if len(plan.memory_mb_by_device) <= least:
                    break
        return best_plan
    cards = [g for g in ledger.cards if demand.node is None or ledger.node_of.get(g) == demand.node]
    fitting = [g for g in cards if ledger.budget_mb[g] >= estimate_mb(demand, ledger.total_mb[g])]
    if not fitting:
        return None
    best = min(fitting, key=lambda g: (ledger.tasks.get(g, 0), -ledger.budget_mb[g], g))
    return Placement(demand.task_id, {best: estimate_mb(demand, ledger.total_mb[best])})


def _room_mb(demand: Demand, ledger: CardLedger) -> int:
    """The most memory a task of this kind could get now: a bound for the fast rejection."""
    return ledger.max_node_budget_mb if demand.multi_gpu or demand.ddp else ledger.max_budget_mb


def _place_multi(demand: Demand, cards: list[int], ledger: CardLedger) -> Placement | None:
    remaining = estimate_mb(demand, max(ledger.total_mb[g] for g in cards))
    taken: dict[int, int] = {}
    for card in sorted(cards, key=lambda g: (-ledger.budget_mb[g], g)):
        if remaining <= 0:
            break
        share = min(ledger.budget_mb[card], remaining)
        if share > 0:
            taken[card] = share
            remaining -= share
    return Placement(demand.task_id, taken) if remaining <= 0 else None


def _place_ddp(demand: Demand, cards: list[int], ledger: CardLedger) -> Placement | None:
    """The fewest cards that can each hold an equal share of the estimate, and no less than
    what a rank needs (`rank_mb`: a learned figure is per rank, whatever their number)."""
    estimate = estimate_mb(demand, max(ledger.total_mb[g] for g in cards))
    ranked = sorted(cards, key=lambda g: (-ledger.budget_mb[g], g))
    for count in range(1, len(ranked) + 1):
        share = max(-(-estimate // count), demand.rank_mb or 0)  # ceiling division
        chosen = ranked[:count]
        if ledger.budget_mb[chosen[-1]] >= share:
            return Placement(demand.task_id, dict.fromkeys(chosen, share))
    return None
