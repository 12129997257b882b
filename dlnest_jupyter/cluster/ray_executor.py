"""What the service sees of a Ray cluster: its cards as devices, other servers' reservations as
a ledger, and an executor that starts GPU tasks on their node.

Cards get this queue's own device ids ("boxA:0" -> 3, recorded in the store and never reused),
so placement stays the pure policy over integer ids it is on one box. CPU tasks and analyzers
run on the server's own machine, as without a cluster.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pwd
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.box_ledger import OtherReservation
from ..core.devices import CPU_ID, GpuProcess, GpuSnapshot, InventorySnapshot
from ..core.store import TaskStore
from ..core.tasks import TaskRecord
from ..service.executor import (
    EXIT_UNKNOWN,
    Executor,
    Launch,
    LaunchDeferred,
    LocalExecutor,
    describe_exit,
)
from . import names
from .sidecar_client import NodeLost, SidecarClient

log = logging.getLogger(__name__)
VIEW_MAX_AGE_S = 0.5  # one cluster view serves the placement pass and the REST reads around it
SWEEP_INTERVAL_S = 10.0
KERNEL_STOP_WAIT_S = 30.0  # the longest a stopped analyzer's card stays reserved for its kernel


@dataclass(frozen=True)
class ClusterView:
    cards: tuple[tuple[str, int, int], ...] = ()  # (node, index, MiB) of live nodes
    nodes: tuple[str, ...] = ()
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
        self.local_node = local_node or os.environ.get("DLNEST_NODE_NAME") or names.node_name()
        queue = hashlib.sha256(str(Path(store.path).resolve()).encode()).hexdigest()[:12]
        user = pwd.getpwuid(os.getuid()).pw_name
        self.owner = f"{user}:{queue}"  # whose reservations are this queue's, cluster-wide
        self.sidecar = SidecarClient(address, zygote=zygote)
        self._view = ClusterView(reason=self.sidecar.reason)
        self._view_lock = threading.Lock()
        self._cards: dict[int, tuple[str, int]] = {}

    def view(self, max_age_s: float = VIEW_MAX_AGE_S) -> ClusterView:
        with self._view_lock:
            if time.monotonic() - self._view.taken_at < max_age_s:
                return self._view
            try:
                raw = self.sidecar.call("view", timeout_s=10.0)
                view = ClusterView(
                    tuple((str(n), int(i), int(mb)) for n, i, mb in raw["cards"]),
                    tuple(raw["nodes"]),
                    tuple(raw["reservations"]),
                    raw.get("inventories", {}),
                )
            except OSError as exc:
                view = ClusterView(reason=str(exc) or self.sidecar.reason)
            self._view = view
            return view

    def card_ids(self, view: ClusterView) -> dict[tuple[str, int], int]:
        ids = self.store.card_ids(names.card_name(node, index) for node, index, _ in view.cards)
        by_card = {_parse_card_name(name): i for name, i in ids.items()}
        self._cards = {i: card for card, i in by_card.items()}
        return by_card

    def card(self, device_id: int) -> tuple[str, int]:
        """(node, index) of one of this queue's device ids."""
        if device_id not in self._cards:
            self._cards = {i: _parse_card_name(name) for name, i in self.store.card_ids().items()}
        if device_id not in self._cards:
            raise OSError(f"device {device_id} is no card this queue has seen on the cluster")
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
            raise OSError(
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
            user = group["owner"].split(":")[0]
            others.append(OtherReservation(user, int(group["task_id"]), memory, None))
        return others


class RayExecutor:
    """GPU tasks on their node through its agent, each holding a placement group for its cards;
    CPU tasks on this machine."""

    def __init__(self, cluster: RayCluster, local: LocalExecutor) -> None:
        self.cluster, self.local = cluster, local
        self._lost: dict[int, str] = {}  # task id -> why it ended with its node
        self._swept_at = float("-inf")

    def start(self, task: TaskRecord, device_ids: tuple[int, ...]) -> Launch:
        node, indices = self.cluster.placed(task, device_ids)
        if node is None:
            return self.local.start(task, device_ids)
        bundle = self.cluster.bundle(task, node, device_ids, indices)
        try:
            pid, started = self.cluster.sidecar.call(
                "start", task, node, indices, bundle, self.cluster.reservation_name(task.id),
                timeout_s=120.0,
            )  # fmt: skip
        except NodeLost as exc:  # it left since the view placement used: try the others
            raise LaunchDeferred(str(exc)) from exc
        return Launch(pid, started)

    def exit_code(self, task: TaskRecord) -> int | None:
        node, _ = self.cluster.placed(task, task.devices)
        if node is None:
            return self.local.exit_code(task)
        try:
            code: int | None = self.cluster.sidecar.call(
                "exit_code", task, node, self.cluster.reservation_name(task.id)
            )
        except NodeLost as exc:
            self._lost[task.id] = str(exc)
            return EXIT_UNKNOWN
        except OSError:  # the cluster unreachable, or the agent restarting: still running
            return None
        return code

    def end_reason(self, task: TaskRecord, code: int) -> str:
        lost = self._lost.pop(task.id, None)
        if lost is not None:
            return f"{lost} while the task ran ({describe_exit(code)})"
        return self.local.end_reason(task, code)  # the package, on the shared filesystem

    def stop(self, task: TaskRecord) -> None:
        node, _ = self.cluster.placed(task, task.devices)
        if node is None:
            self.local.stop(task)
            return
        threading.Thread(
            target=self._stop, args=(task, node), name=f"dlnest-stop-{task.id}", daemon=True
        ).start()

    def _stop(self, task: TaskRecord, node: str) -> None:
        try:
            self.cluster.sidecar.call(
                "stop", task, node, self.cluster.reservation_name(task.id), timeout_s=120.0
            )
        except OSError as exc:
            log.warning("task %s: could not stop it on node %s: %s", task.id, node, exc)

    def adopt(self, task: TaskRecord, claimed_at: float) -> tuple[int, float | None] | None:
        node, _ = self.cluster.placed(task, task.devices)
        if node is None:
            return self.local.adopt(task, claimed_at)
        try:
            found: tuple[int, float | None] | None = self.cluster.sidecar.call(
                "adopt", task, node, claimed_at
            )
        except OSError:
            return None
        return found

    def sweep(self, holding: frozenset[int]) -> None:
        """Release our placement groups whose tasks hold nothing (a stop cut short, a crash)."""
        if time.monotonic() - self._swept_at < SWEEP_INTERVAL_S:
            return
        self._swept_at = time.monotonic()
        view = self.cluster.view(max_age_s=0)
        stale = [
            self.cluster.reservation_name(int(g["task_id"]))
            for g in view.reservations
            if g["owner"] == self.cluster.owner and int(g["task_id"]) not in holding
        ]
        if stale:
            with contextlib.suppress(OSError):
                self.cluster.sidecar.call("release", stale)

    def close(self) -> None:
        self.local.close()
        self.cluster.close()

    def kernels(self, host: Executor) -> Executor:
        """How analyzer kernels start on this cluster: `ReservedKernels` around the host."""
        return ReservedKernels(host, self.cluster)


class ReservedKernels:
    """Analyzer kernels on a cluster: they run on this server's machine, and the cards they use
    there are reserved in Ray while they live, like a task's, so no server books them twice."""

    def __init__(self, host: Executor, cluster: RayCluster) -> None:
        self.host, self.cluster = host, cluster

    def start(self, task: TaskRecord, device_ids: tuple[int, ...]) -> Launch:
        node, indices = self.cluster.placed(task, device_ids)
        if node is None:
            return self.host.start(task, device_ids)
        if node != self.cluster.local_node:
            raise OSError(
                f"analyzers run on this server's machine (node {self.cluster.local_node}), "
                f"and card {names.card_name(node, indices[0])} is on node {node}: analyze on "
                "the CPU, or on a card of this machine"
            )
        name = self.cluster.reservation_name(task.id)
        bundle = self.cluster.bundle(task, node, device_ids, indices)
        try:
            self.cluster.sidecar.call("reserve", node, bundle, name, timeout_s=30.0)
        except NodeLost as exc:
            raise LaunchDeferred(str(exc)) from exc
        try:
            return self.host.start(task, tuple(indices))  # this machine's own card indices
        except BaseException:
            self._release(task)
            raise

    def exit_code(self, task: TaskRecord) -> int | None:
        code = self.host.exit_code(task)
        if code is not None:
            self._release(task)
        return code

    def end_reason(self, task: TaskRecord, code: int) -> str:
        return self.host.end_reason(task, code)

    def stop(self, task: TaskRecord) -> None:
        self.host.stop(task)
        threading.Thread(
            target=self._release_once_ended,
            args=(task,),
            name=f"dlnest-release-{task.id}",
            daemon=True,
        ).start()

    def _release_once_ended(self, task: TaskRecord) -> None:
        """The card stays reserved until the kernel holding it has shut down (a second or so)."""
        deadline = time.monotonic() + KERNEL_STOP_WAIT_S
        while self.host.exit_code(task) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        self._release(task)

    def adopt(self, task: TaskRecord, claimed_at: float) -> tuple[int, float | None] | None:
        return self.host.adopt(task, claimed_at)

    def sweep(self, holding: frozenset[int]) -> None:
        pass  # the cluster's executor sweeps every reservation of this queue

    def close(self) -> None:
        self.host.close()

    def _release(self, task: TaskRecord) -> None:
        if any(d != CPU_ID for d in task.devices):
            with contextlib.suppress(OSError):
                self.cluster.sidecar.call("release", [self.cluster.reservation_name(task.id)])


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


def _parse_card_name(name: str) -> tuple[str, int]:
    node, _, index = name.rpartition(":")
    return node, int(index)


def build_cluster(
    address: str, store: TaskStore, zygote: bool
) -> tuple[RayExecutor, RayDeviceSource, ClusterLedger]:
    """The executor, devices and ledger of a service on the cluster at `address`."""
    cluster = RayCluster(address, store, zygote)
    return (
        RayExecutor(cluster, LocalExecutor(zygote=zygote)),
        RayDeviceSource(cluster),
        ClusterLedger(cluster),
    )
