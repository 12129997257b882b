"""How a running task's reservation follows what it measurably uses: a pure function over values.

A run reports its GPU memory by card, now and at its peak (`runtime/gpu_memory.py`, in its
progress). Two rules, card by card:

- **Raise at once.** A card where the run uses more than it reserved has its reservation raised
  to that use (the peak so far), whenever it happens: the ledger must never place a task into
  memory that is in use. The task is flagged (`over`), for good.
- **Shrink after warm-up.** Once the run has warmed up (its first whole epoch, validation and
  saving included, or `memory_warmup_steps` steps, whichever comes first), a reservation above
  its measured peak plus the margin (`memory_margin_pct` + `memory_margin_mb`) shrinks to that:
  what it frees goes to queued tasks in the same pass. A reservation given with `-m` shrinks
  only with `shrink_given`, and none shrinks while the guard is on (its cap stays).

A card without a figure (the CPU, a run not yet measured) keeps its reservation.

With the guard on, a run is launched with its allocator capped at its reservation plus the margin
(`launch_marks`). A run that ran out of GPU memory, capped or not, is queued again up to
`oom_retries` times, reserving what it reached plus the margin (`retry_after_out_of_memory`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from .devices import CPU_ID, InventorySnapshot
from .settings import Settings
from .tasks import (
    LEARNED_MB,
    LEARNED_RANKS,
    LEARNED_RUNS,
    MEMORY_CAP_MB,
    OOM_RETRIES_USED,
    PRETEND_GPUS,
)


@dataclass(frozen=True)
class Revision:
    reserved_mb: dict[int, int]  # the new reservation by card
    over: bool  # some card's use went past its reservation
    note: str  # what changed, for the task's row ("shrunk to ...", "grew past ...")


def with_margin(peak_mb: int, settings: Settings) -> int:
    """What a run whose peak is `peak_mb` should reserve."""
    percent = math.ceil(peak_mb * settings.memory_margin_pct / 100)  # 1,000 MiB at 10%: 100
    return peak_mb + percent + settings.memory_margin_mb


def warmed_up(progress: Mapping[str, Any], settings: Settings) -> bool:
    """Past its first whole epoch (the runtime then knows an epoch's time) or enough steps."""
    steps = progress.get("steps")
    return progress.get("epoch_s") is not None or (
        isinstance(steps, int) and steps >= settings.memory_warmup_steps
    )


def revise_reservation(
    reserved_mb: Mapping[int, int],
    progress: Mapping[str, Any],
    memory_given: bool,
    settings: Settings,
    shrinks: bool = True,
) -> Revision | None:
    """The running task's new reservation, or None when it stays as it is. With the guard on,
    nothing shrinks: a run's allocator is capped at launch, and could grow back to that cap
    into memory a shrink had given to another. `shrinks=False`: only raised (an analyzer's
    kernel, which has no warm-up and whose next experiment may need what the last freed)."""
    now_by_card = by_card(progress, "memory_mb")
    peak_by_card = by_card(progress, "peak_memory_mb")
    may_shrink = (
        shrinks
        and warmed_up(progress, settings)
        and (not memory_given or settings.shrink_given)
        and not settings.guard_memory
    )
    revised, grew, shrank = dict(reserved_mb), [], []
    for card, held in reserved_mb.items():
        peak = max(peak_by_card.get(card, 0), now_by_card.get(card, 0))
        if card == CPU_ID or card not in peak_by_card:
            continue
        if peak > held:
            revised[card] = peak
            grew.append(f"uses {peak:,} MiB on GPU {card}, reserved {held:,}")
        elif may_shrink and with_margin(peak, settings) < held:
            revised[card] = with_margin(peak, settings)
            shrank.append(f"{revised[card]:,} MiB on GPU {card}")
    if revised == dict(reserved_mb):
        return None
    if grew:
        note = "grew past its reservation: " + "; ".join(grew) + " (the ledger holds what it uses)"
    else:
        note = (
            f"shrunk after warm-up to {', '.join(shrank)} (its peak + "
            f"{settings.memory_margin_pct:g}% + {settings.memory_margin_mb:,} MiB)"
        )
    return Revision(revised, bool(grew), note)


def cross_checked(
    progress: Mapping[str, Any], pids: Collection[int], snapshot: InventorySnapshot
) -> dict[str, Any]:
    """`progress` with each card's figures raised to what NVML says the run's processes (`pids`)
    use there, where NVML says more: the runtime's figure misses what the allocator does not see
    (NCCL's buffers, other libraries). Where NVML gives nothing per process (0: some drivers,
    containers), the runtime's figure stands."""
    seen: dict[str, int] = {}
    for gpu in snapshot.gpus:
        used = sum(p.used_memory_mb for p in gpu.processes or () if p.pid in pids)
        if used > 0:
            seen[str(gpu.id)] = used
    if not seen:
        return dict(progress)
    raised = dict(progress)
    for key in ("memory_mb", "peak_memory_mb"):
        reported = progress.get(key)
        figures = dict(reported) if isinstance(reported, Mapping) else {}
        for card, used in seen.items():
            current = figures.get(card)
            figures[card] = max(current, used) if isinstance(current, int) else used
        raised[key] = figures
    return raised


def launch_marks(
    reserved_mb: Mapping[int, int], pretend: bool, settings: Settings, cluster: bool = False
) -> dict[str, Any]:
    """What the scheduler tells a run it launches (`TaskRecord.launched_with`). On a Ray
    cluster a node runs the task on its own card numbers: no cap is set there (yet)."""
    marks: dict[str, Any] = {PRETEND_GPUS: True} if pretend else {}
    cards = {card: mb for card, mb in reserved_mb.items() if card != CPU_ID}
    if settings.guard_memory and cards and not cluster:
        marks[MEMORY_CAP_MB] = {str(card): with_margin(mb, settings) for card, mb in cards.items()}
    return marks


@dataclass(frozen=True)
class Retry:
    spec: dict[str, Any]  # the retry's: the task's own, reserving more (`tasks.demand_of`)
    note: str  # what it reserves, for the event log


def retry_after_out_of_memory(
    spec: Mapping[str, Any], progress: Mapping[str, Any], settings: Settings
) -> Retry | None:
    """The spec of a failed run's retry, reserving the peak it reached plus the margin (over all
    its cards for -mc; for -DDP, on each of as many ranks as it had, the most one reached);
    None once its retries are spent, or when it never said what it reached."""
    retried = spec.get(OOM_RETRIES_USED, 0)
    peaks = by_card(progress, "peak_memory_mb")
    peaks.pop(CPU_ID, None)
    if not isinstance(retried, int) or retried >= settings.oom_retries or not peaks:
        return None
    reached = sum(peaks.values()) if spec.get("multi_gpu") else max(peaks.values())
    reserve = with_margin(reached, settings)
    dropped = (LEARNED_MB, LEARNED_RUNS, LEARNED_RANKS, "warnings")
    kept = {k: v for k, v in spec.items() if k not in dropped}
    retry = {**kept, LEARNED_MB: reserve, OOM_RETRIES_USED: retried + 1}
    if not spec.get("ddp"):
        return Retry(retry, f"reserving {reserve:,} MiB")
    ranks = len(peaks)
    return Retry(
        {**retry, LEARNED_RANKS: ranks},
        f"reserving {reserve:,} MiB for each of {ranks} DDP rank{'s' if ranks != 1 else ''}",
    )


def by_card(progress: Mapping[str, Any], key: str) -> dict[int, int]:
    """A progress figure by card as ints (JSON keys are strings); what is not a figure is left out."""
    raw = progress.get(key)
    if not isinstance(raw, Mapping):
        return {}
    figures = {}
    for card, mb in raw.items():
        if isinstance(mb, int) and not isinstance(mb, bool) and str(card).lstrip("-").isdigit():
            figures[int(card)] = mb
    return figures
