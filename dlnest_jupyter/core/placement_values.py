"""What placement speaks of: a queued task's demand, a running task's reservation, where a task
is placed, and the memory a demand reserves on a card (its `-m`, or 90% of the card).

Apart from `placement.py`: the card ledger (`card_ledger.py`) and the placement pass both speak
these values, and the pass uses the ledger, so they sit below both; the tasks, the box ledger and
the client use them without needing either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_MEMORY_FRACTION = 0.9
DEFAULT_MEMORY_TEXT = f"{DEFAULT_MEMORY_FRACTION:.0%} of a card"  # how every face says it


@dataclass(frozen=True)
class Demand:
    """What placement needs to know of a queued task."""

    task_id: int
    memory_mb: int | None = None  # None: 90% of a card
    cpu: bool = False
    multi_gpu: bool = False  # -mc: cards whose budgets together cover the estimate
    ddp: bool = False  # one process per card, each reserving an equal share
    rank_mb: int | None = None  # -DDP sized by what a rank used: each rank's share at least
    queued_at: float = 0.0
    node: str | None = None  # on a cluster: only this node's cards (analyzers: the server's)
    one_card: bool = False  # an analyzer: never spread over cards (-mc or -DDP are not for it)
    expected_s: float | None = None  # how long it should run (its job's earlier runs), if known


@dataclass(frozen=True)
class Reservation:
    """What a running task holds."""

    task_id: int
    memory_mb_by_device: Mapping[int, int]  # device id -> MiB; the CPU reserves 0
    started_at: float = 0.0
    pid: int | None = None
    expected_end: float | None = None  # when it should end (core/durations.py), if known


@dataclass(frozen=True)
class Placement:
    task_id: int
    memory_mb_by_device: Mapping[int, int]

    @property
    def device_ids(self) -> tuple[int, ...]:
        return tuple(self.memory_mb_by_device)


def estimate_mb(demand: Demand, card_total_mb: int) -> int:
    """What `demand` reserves on a card of `card_total_mb`: its `-m`, or 90% of the card."""
    if demand.memory_mb is not None:
        return demand.memory_mb
    return int(card_total_mb * DEFAULT_MEMORY_FRACTION)
