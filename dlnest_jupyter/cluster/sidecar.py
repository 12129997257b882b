"""The one process of a Jupyter server that talks to Ray: `python -m dlnest_jupyter.cluster.sidecar`.

Why a process of its own: a Ray driver exits when it loses the cluster's head for long, and
`ray.init` takes over SIGTERM; neither may happen to a Jupyter server. The server talks to this
process over a socket (`sidecar_client.py`) and starts a new one when it ends, which is how it
reconnects. What they say to each other is `protocol.py`: requests name an `Op`, and only the
methods in `RayOps.handlers` can be called; errors cross as the classes of `errors.py`.

What a reservation is: one detached placement group per task, named for the server's queue and
the task, holding exactly its MiB of exactly its cards. Ray creates it whole or not at all; two
servers asking for the same memory get one group created and one left pending, which is removed
and reported as `deferred` (the task is queued again).
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import ray
from ray.exceptions import ActorDiedError, GetTimeoutError, RayActorError
from ray.util.placement_group import (
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)

from ..core.tasks import TaskRecord
from . import names, protocol, waits
from .errors import AgentUnavailable, LaunchDeferred, LaunchUnknown, NodeLost, OperationFailed
from .node_agent import NodeAgent
from .protocol import Op


class RayOps:
    """What the sidecar does for its server, one method per `Op`."""

    def __init__(self, zygote: bool) -> None:
        self.zygote = zygote
        self.agent_class = ray.remote(NodeAgent)
        self._agents: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._inventory: dict[str, Any] = {}  # node -> its agent's last `inventory()`
        self._inventory_asked: dict[str, Any] = {}  # node -> the pending call's reference

    def handlers(self) -> dict[Op, Callable[..., Any]]:
        """The only methods a request can call."""
        table: dict[Op, Callable[..., Any]] = {
            Op.VIEW: self.view,
            Op.RESERVE: self.reserve,
            Op.START: self.start,
            Op.EXIT_CODE: self.exit_code,
            Op.STOP: self.stop,
            Op.ADOPT: self.adopt,
            Op.RELEASE: self.release,
        }
        assert set(table) == set(Op), "every operation has its handler"
        return {op: _timeouts_unavailable(method) for op, method in table.items()}

    # -- the cluster's view -----------------------------------------------------------------
    def view(self) -> dict[str, Any]:
        """Cards (node, index, MiB) of live nodes, and every dlnest reservation that holds memory."""
        totals = ray.cluster_resources()
        cards = sorted(
            (*parsed, int(amount))
            for resource, amount in totals.items()
            if (parsed := names.parse_card_resource(resource)) is not None
        )
        nodes = sorted(n for r in totals if (n := names.parse_node_resource(r)) is not None)
        inventories = self._inventories(nodes)
        reservations = []
        for group in placement_group_table().values():
            parsed = names.parse_reservation_name(group.get("name") or "")
            if parsed is None or group.get("state") not in ("CREATED", "PENDING", "RESCHEDULING"):
                continue
            bundle: dict[str, float] = {}
            for part in (group.get("bundles") or {}).values():
                bundle.update(part)
            reservations.append(
                {
                    "owner": parsed[0],
                    "task_id": parsed[1],
                    "state": group["state"],
                    "mb": {r: int(v) for r, v in bundle.items()},
                }
            )
        return {
            "cards": cards,
            "reservations": reservations,
            "inventories": inventories,
        }

    def _inventories(self, nodes: list[str]) -> dict[str, Any]:
        """Each node's NVML view, as its agent last reported it: asked now, answered by a later
        view, so a slow or starting agent (seconds, the first time) holds up no one."""
        with self._lock:
            for node in list(self._inventory_asked):
                if node not in nodes:
                    del self._inventory_asked[node]
                    self._inventory.pop(node, None)
            asked = dict(self._inventory_asked)
        if asked:
            ready, _ = ray.wait(list(asked.values()), num_returns=len(asked), timeout=0)
            for node, ref in asked.items():
                if ref in ready:
                    try:
                        self._inventory[node] = ray.get(ref)
                    except Exception:  # its agent died: a new handle asks again below
                        self._forget(node)
                    with self._lock:
                        self._inventory_asked.pop(node, None)
        for node in nodes:
            with self._lock:
                pending = node in self._inventory_asked
            if not pending:
                ref = self.agent(node).inventory.remote()  # starts the agent ahead of a launch
                with self._lock:
                    self._inventory_asked[node] = ref
        return {node: self._inventory[node] for node in nodes if node in self._inventory}

    def agent(self, node: str) -> Any:
        with self._lock:
            handle = self._agents.get(node)
            if handle is None:
                handle = self._agents[node] = self.agent_class.options(
                    name=names.agent_name(node),
                    namespace=names.NAMESPACE,
                    lifetime="detached",
                    get_if_exists=True,
                    num_cpus=0,
                    resources={names.node_resource(node): 0.001},
                    max_restarts=-1,  # an agent that crashes comes back on its node
                    max_concurrency=32,
                    runtime_env={"env_vars": {"RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES": "1"}},
                ).remote(node, self.zygote)
            return handle

    def _call(self, node: str, method: str, *args: Any, timeout_s: float) -> Any:
        if names.node_resource(node) not in ray.cluster_resources():
            self._forget(node)
            raise NodeLost(f"node {node} lost")
        try:
            return ray.get(getattr(self.agent(node), method).remote(*args), timeout=timeout_s)
        except ActorDiedError as exc:
            self._forget(node)
            if names.node_resource(node) not in ray.cluster_resources():
                raise NodeLost(f"node {node} lost") from exc
            if exc.actor_init_failed:  # it never ran: nothing of ours can be running there
                raise OperationFailed(
                    f"the dlnest agent could not start on node {node} (is dlnest-jupyter "
                    f"installed where `ray start` ran there?): {exc}"
                ) from exc
            raise AgentUnavailable(f"the dlnest agent on node {node} died: {exc}") from exc
        except RayActorError as exc:  # restarting: try again later
            raise AgentUnavailable(
                f"the dlnest agent on node {node} is unavailable: {exc}"
            ) from exc
        except GetTimeoutError as exc:
            raise AgentUnavailable(
                f"the dlnest agent on node {node} did not answer in {timeout_s:g} s"
            ) from exc

    def _forget(self, node: str) -> None:
        with self._lock:
            self._agents.pop(node, None)

    # -- a task's life ----------------------------------------------------------------------
    def reserve(self, node: str, bundle: dict[str, int], name: str) -> Any:
        """Reserve `bundle` (MiB of each card) on `node` as the placement group `name`."""
        self.release([name])  # what an earlier attempt at this task left
        group = placement_group([bundle], strategy="STRICT_PACK", name=name, lifetime="detached")
        if not group.wait(waits.RESERVE_S):
            remove_placement_group(group)
            raise LaunchDeferred(
                f"the memory was not reserved on node {node} within {waits.RESERVE_S:g} s "
                "(another server took it first, or the node is leaving)"
            )
        return group

    def start(
        self, task: TaskRecord, node: str, indices: list[int], bundle: dict[str, int], name: str
    ) -> tuple[int, float | None]:
        group = self.reserve(node, bundle, name)
        try:
            pid, started = self._call(
                node, "start", task, tuple(indices), name, timeout_s=waits.AGENT_START_S
            )
        except AgentUnavailable as exc:
            raise LaunchUnknown(f"{exc}; the task is adopted if it started") from exc
        except BaseException:  # refused by the agent, or the node gone: nothing runs
            remove_placement_group(group)
            raise
        return int(pid), started

    def exit_code(self, task: TaskRecord, node: str, name: str) -> int | None:
        try:
            code = self._call(node, "exit_code", task, timeout_s=waits.AGENT_POLL_S)
        except NodeLost:
            self.release([name])  # else Ray would re-reserve it when the node comes back
            raise
        if code is not None:
            self.release([name])
        return None if code is None else int(code)

    def stop(self, task: TaskRecord, node: str, name: str) -> None:
        with contextlib.suppress(NodeLost):
            self._call(node, "stop", task, timeout_s=waits.AGENT_STOP_S)
        self.release([name])

    def adopt(
        self, task: TaskRecord, node: str, claimed_at: float
    ) -> tuple[int, float | None] | None:
        found = self._call(node, "adopt", task, claimed_at, timeout_s=waits.AGENT_START_S)
        return None if found is None else (int(found[0]), found[1])

    def release(self, reservation_names: list[str]) -> None:
        for name in reservation_names:
            with contextlib.suppress(ValueError):  # no such group: already released
                remove_placement_group(get_placement_group(name))


def _timeouts_unavailable(method: Callable[..., Any]) -> Callable[..., Any]:
    """`method`, a Ray call of it that timed out answered as the cluster being unavailable."""

    @functools.wraps(method)
    def call(*args: Any) -> Any:
        try:
            return method(*args)
        except GetTimeoutError as exc:
            raise AgentUnavailable(f"no answer from the cluster: {exc}") from exc

    return call


def main(fd: int, address: str, zygote: bool) -> None:
    connection = Connection(fd)
    try:
        # `ray.init` retries an address where nothing listens for minutes; a head that is down
        # is said at once, and the server tries again in a few seconds.
        host, _, port = address.rpartition(":")
        if port.isdigit() and "/" not in host:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
        ray.init(
            address=address,
            namespace=names.NAMESPACE,
            log_to_driver=False,
            logging_level="WARNING",
        )
    except Exception as exc:
        connection.send(
            (protocol.FAILED, f"could not connect to the Ray cluster at {address}: {exc}")
        )
        return
    connection.send((protocol.READY, ray.__version__))
    protocol.serve(connection, RayOps(zygote).handlers())
    os._exit(0)  # the pool's threads may be stuck in calls to a lost cluster


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3] == "zygote")
