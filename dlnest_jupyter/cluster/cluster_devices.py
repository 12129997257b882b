"""A Ray cluster as the service sees its devices: every node's cards as one inventory, and
other servers' reservations in the box ledger's shape."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from ..core.box_ledger import OtherReservation
from ..core.devices import GpuProcess, GpuSnapshot, InventorySnapshot
from . import names
from .link import RayCluster


class RayDeviceSource:
    """The cluster's cards, as one inventory; empty, and saying why, while the head is unreachable."""

    def __init__(self, cluster: RayCluster) -> None:
        self.cluster = cluster

    def snapshot(self) -> InventorySnapshot:
        view = self.cluster.view()
        if view.reason is not None:
            return InventorySnapshot(
                gpus=(), source="ray", reason=view.reason, unavailable=True,
                local_node=self.cluster.local_node,
            )  # fmt: skip
        ids = self.cluster.card_ids(view)
        gpus = tuple(
            _card(ids[(node, index)], node, index, total, view.inventories.get(node))
            for node, index, total in view.cards
        )
        return InventorySnapshot(
            gpus=gpus,
            source="ray",
            reason=None
            if gpus
            else f"no node of the Ray cluster at {self.cluster.address} has a GPU",
            local_node=self.cluster.local_node,
        )


class ClusterLedger:
    """Other servers' reservations on the cluster, in the box ledger's shape for the scheduler.

    No lock is needed around placing: the reservation itself is atomic in Ray, and a task that
    loses the race is queued again (`LaunchDeferred`)."""

    def __init__(self, cluster: RayCluster) -> None:
        self.cluster = cluster

    @contextlib.contextmanager
    def locked(self) -> Iterator[list[OtherReservation]]:
        yield self.others()

    def publish(self, holding: Sequence[dict[str, Any]]) -> None:
        pass  # Ray holds our reservations: placement groups, made at launch

    def others(self) -> list[OtherReservation]:
        view = self.cluster.view()
        if view.reason is not None:
            return []
        ids = self.cluster.card_ids(view)
        others = []
        for group in view.reservations:
            if group["owner"] == self.cluster.owner or group["state"] != "CREATED":
                continue
            memory = {
                ids[card]: mb
                for resource, mb in group["mb"].items()
                if (card := names.parse_card_resource(resource)) is not None and card in ids
            }
            user = names.owner_user(group["owner"])
            others.append(OtherReservation(user, int(group["task_id"]), memory, None))
        return others


def _card(
    device_id: int, node: str, index: int, total_mb: int, inventory: dict[str, Any] | None
) -> GpuSnapshot:
    """One card: its size as the node declared it to Ray, and, where the node's agent reads
    NVML, its model, use and the memory of processes that are not dlnest tasks."""
    seen = next((g for g in (inventory or {}).get("gpus", []) if g["index"] == index), None)
    name = names.card_name(node, index)
    if seen is None:  # no NVML there (yet): Ray counts reservations, not what is in use
        return GpuSnapshot(device_id, name, total_mb, 0, None, (), node=node, index=index)
    foreign = seen["processes"]
    return GpuSnapshot(
        device_id,
        f"{name} {seen['name']}",
        total_mb,
        int(seen["memory_used_mb"]),
        seen["utilization_pct"],
        None if foreign is None else tuple(GpuProcess(int(p), int(mb)) for p, mb in foreign),
        node=node,
        index=index,
    )
