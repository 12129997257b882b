"""The REST view of the devices: each GPU and the CPU with memory, reservations and tasks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core.box_ledger import OtherReservation
from ..core.devices import CPU_ID, InventorySnapshot
from ..core.memory_policy import by_card
from ..core.placement import gpu_budgets_mb
from ..core.settings import Settings
from ..core.tasks import TaskRecord


def device_rows(
    snapshot: InventorySnapshot,
    running: Sequence[TaskRecord],
    settings: Settings,
    others: Sequence[OtherReservation] = (),
) -> list[dict[str, Any]]:
    """`GET devices`: one row per GPU, then the CPU (id -1). `running`: our tasks that hold
    devices, with their live progress (what they measurably use); `others`: other users'
    reservations on this box (the box ledger)."""
    free_mb = gpu_budgets_mb(
        snapshot, [t.reservation() for t in running] + [o.reservation() for o in others]
    )
    rows = []
    for gpu in snapshot.gpus:
        holders = [t for t in running if gpu.id in t.reserved_mb]
        theirs = [o for o in others if gpu.id in o.memory_mb_by_device]
        rows.append(
            {
                "id": gpu.id,
                "kind": "gpu",
                "name": gpu.name,
                "node": gpu.node,  # on a cluster: the machine holding the card; else null
                "memory_total_mb": gpu.memory_total_mb,
                "memory_used_mb": gpu.memory_used_mb,
                "memory_reserved_mb": sum(t.reserved_mb[gpu.id] for t in holders),
                # What our tasks there measurably use now (null until one has said).
                "memory_measured_mb": _measured_mb(holders, gpu.id),
                "memory_free_mb": free_mb[gpu.id],
                "utilization_pct": gpu.utilization_pct,
                "task_ids": [t.id for t in holders],
                "memory_reserved_by_others_mb": sum(o.memory_mb_by_device[gpu.id] for o in theirs),
                "other_users": sorted({o.user for o in theirs}),
                "enabled": settings.enabled(gpu.id),
                "source": snapshot.source,  # "nvml", or "fake": pretend cards
            }
        )
    cpu_tasks = [t.id for t in running if CPU_ID in t.reserved_mb]
    rows.append(
        {
            "id": CPU_ID, "kind": "cpu", "name": "CPU", "memory_total_mb": None, "memory_used_mb": None,
            "memory_reserved_mb": 0, "memory_free_mb": None, "utilization_pct": None,
            "task_ids": cpu_tasks, "enabled": settings.enabled(CPU_ID),
            "source": "cpu", "reason": snapshot.reason,  # why there are no GPUs, if there are none
        }
    )  # fmt: skip
    return rows


def _measured_mb(holders: Sequence[TaskRecord], card: int) -> int | None:
    used = [mb for t in holders if (mb := by_card(t.progress, "memory_mb").get(card)) is not None]
    return sum(used) if used else None
