"""One server's link to a Ray cluster: its sidecar, the cluster's last view, and this queue's
names for the cluster's cards.

Cards get this queue's own device ids ("boxA:0" -> 3, recorded in the store and never reused),
so placement stays the pure policy over integer ids it is on one box.
"""

from __future__ import annotations

import os
import pwd
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..core.devices import CPU_ID
from ..core.store import TaskStore
from ..core.tasks import TaskRecord
from . import names, waits
from .errors import ClusterError
from .protocol import Op
from .sidecar_client import SidecarClient

VIEW_MAX_AGE_S = 0.5  # one cluster view serves the placement pass and the REST reads around it


@dataclass(frozen=True)
class ClusterView:
    cards: tuple[tuple[str, int, int], ...] = ()  # (node, index, MiB) of live nodes
    reservations: tuple[dict[str, Any], ...] = ()  # every dlnest placement group holding memory
    inventories: dict[str, Any] = field(default_factory=dict)  # node -> its agent's NVML view
    reason: str | None = None  # why there is no view (the cluster unreachable)
    taken_at: float = field(default_factory=time.monotonic)


class RayCluster:
    """One server's link to the cluster, shared by its executor, devices and ledger."""

    def __init__(
        self, address: str, store: TaskStore, zygote: bool = True, local_node: str | None = None
    ) -> None:
        self.address = address
        self.store = store
        self.local_node = local_node or names.node_name()
        user = pwd.getpwuid(os.getuid()).pw_name
        # Whose reservations are this queue's, cluster-wide. The queue's own random id, not its
        # path: two machines' queues may sit at the same path in unshared home folders.
        self.owner = names.owner_name(user, store.queue_id())
        self.sidecar = SidecarClient(address, zygote=zygote)
        self._view = ClusterView(reason=self.sidecar.reason)
        self._view_lock = threading.Lock()
        self._cards: dict[int, tuple[str, int]] = {}  # device id -> (node, index)
        self._ids: dict[tuple[str, int], int] = {}  # the same, the other way round
        self.stopping: set[int] = set()  # tasks being stopped: their reservations stay till then

    def view(self, max_age_s: float = VIEW_MAX_AGE_S) -> ClusterView:
        with self._view_lock:
            if time.monotonic() - self._view.taken_at < max_age_s:
                return self._view
            try:
                raw = self.sidecar.call(Op.VIEW, timeout_s=waits.VIEW_S)
                view = ClusterView(
                    tuple((str(n), int(i), int(mb)) for n, i, mb in raw["cards"]),
                    tuple(raw["reservations"]),
                    raw.get("inventories", {}),
                )
            except ClusterError as exc:
                view = ClusterView(reason=str(exc) or self.sidecar.reason)
            self._view = view
            return view

    def card_ids(self, view: ClusterView) -> dict[tuple[str, int], int]:
        """This queue's device ids of every card it has seen; the store is read (and written)
        only when `view` holds a card not seen yet, not on every placement pass and REST read."""
        if any((node, index) not in self._ids for node, index, _ in view.cards):
            self._remember(self.store.card_ids(names.card_name(n, i) for n, i, _ in view.cards))
        return self._ids

    def _remember(self, ids: dict[str, int]) -> None:
        self._ids = {names.parse_card_name(name): i for name, i in ids.items()}
        self._cards = {i: card for card, i in self._ids.items()}

    def card(self, device_id: int) -> tuple[str, int]:
        """(node, index) of one of this queue's device ids."""
        if device_id not in self._cards:  # named by another server of this queue
            self._remember(self.store.card_ids())
        if device_id not in self._cards:
            raise ClusterError(f"device {device_id} is no card this queue has seen on the cluster")
        return self._cards[device_id]

    def reservation_name(self, task_id: int) -> str:
        return names.reservation_name(self.owner, task_id)

    def placed(self, task: TaskRecord, device_ids: tuple[int, ...]) -> tuple[str | None, list[int]]:
        """The node and card indices of a task's devices; (None, []) for a CPU task."""
        gpus = [d for d in device_ids if d != CPU_ID]
        if not gpus:
            return None, []
        cards = [self.card(d) for d in gpus]
        nodes = {node for node, _ in cards}
        if len(nodes) != 1:
            raise ClusterError(
                f"task {task.id}'s cards are on several nodes ({', '.join(sorted(nodes))})"
            )
        return nodes.pop(), [index for _, index in cards]

    def bundle(
        self, task: TaskRecord, node: str, device_ids: tuple[int, ...], indices: list[int]
    ) -> dict[str, int]:
        """What a task reserves in Ray: the MiB it was placed with, on each of its cards."""
        gpus = [d for d in device_ids if d != CPU_ID]
        return {
            names.card_resource(node, index): int(task.reserved_mb.get(device, 0)) or 1
            for device, index in zip(gpus, indices, strict=True)
        }

    def close(self) -> None:
        self.sidecar.close()
