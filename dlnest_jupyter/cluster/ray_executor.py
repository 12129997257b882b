"""The executor of a service on a Ray cluster: GPU tasks start on their node through its agent,
each holding a placement group for exactly its cards; CPU tasks and analyzer kernels run on the
server's own machine, a kernel's card reserved in Ray like a task's.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import threading
import time

from ..core.devices import CPU_ID
from ..core.errors import ConfigError
from ..core.store import TaskStore
from ..core.tasks import TaskRecord
from ..service.launch.executor import (
    EXIT_UNKNOWN,
    Executor,
    Launch,
    LocalExecutor,
    describe_exit,
)
from . import names, waits
from .cluster_devices import ClusterLedger, RayDeviceSource
from .errors import (
    AgentUnavailable,
    AnswerLost,
    ClusterError,
    LaunchDeferred,
    LaunchUnknown,
    NodeLost,
)
from .link import RayCluster
from .protocol import Op

log = logging.getLogger(__name__)
SWEEP_INTERVAL_S = 10.0
KERNEL_STOP_WAIT_S = 30.0  # the longest a stopped analyzer's card stays reserved for its kernel


class RayExecutor(Executor):
    """GPU tasks on their node through its agent, each holding a placement group for its cards;
    CPU tasks on this machine."""

    answers_before_launch = True

    def __init__(self, cluster: RayCluster, local: LocalExecutor) -> None:
        self.cluster, self.local = cluster, local
        self._lost: dict[int, str] = {}  # task id -> why it ended with its node
        self._swept_at = float("-inf")
        # A node whose agent did not answer a poll is not asked again for a while: a hung agent
        # must not hold every scheduler pass up for a poll's wait per task.
        self._quiet_until: dict[str, float] = {}

    def start(self, task: TaskRecord, device_ids: tuple[int, ...]) -> Launch:
        node, indices = self.cluster.placed(task, device_ids)
        if node is None:
            return self.local.start(task, device_ids)
        bundle = self.cluster.bundle(task, node, device_ids, indices)
        try:
            pid, started = self.cluster.sidecar.call(
                Op.START, task, node, indices, bundle, self.cluster.reservation_name(task.id),
                timeout_s=waits.START_S,
            )  # fmt: skip
        except NodeLost as exc:  # it left since the view placement used: try the others
            raise LaunchDeferred(str(exc)) from exc
        except AnswerLost as exc:
            raise LaunchUnknown(f"no answer from node {node}'s launch: {exc}") from exc
        return Launch(pid, started)

    def exit_code(self, task: TaskRecord) -> int | None:
        try:
            node, _ = self.cluster.placed(task, task.devices)
        except OSError as exc:  # its devices are no cards of this cluster (a queue reused)
            self._lost[task.id] = str(exc)
            return EXIT_UNKNOWN
        if node is None:
            return self.local.exit_code(task)
        if time.monotonic() < self._quiet_until.get(node, 0.0):
            return None
        asked = time.monotonic()
        try:
            code: int | None = self.cluster.sidecar.call(
                Op.EXIT_CODE, task, node, self.cluster.reservation_name(task.id),
                timeout_s=waits.POLL_S,
            )  # fmt: skip
        except NodeLost as exc:
            self._lost[task.id] = str(exc)
            return EXIT_UNKNOWN
        except (AgentUnavailable, AnswerLost):
            now = time.monotonic()
            self._quiet_until[node] = now + waits.quiet_after(now - asked)
            return None
        except ClusterError:  # no link to the cluster now: as far as we know, it runs
            return None
        return code

    def end_reason(self, task: TaskRecord, code: int) -> str:
        lost = self._lost.pop(task.id, None)
        if lost is not None:
            return f"{lost} while the task ran ({describe_exit(code)})"
        return self.local.end_reason(task, code)  # the package, on the shared filesystem

    def stop(self, task: TaskRecord) -> None:
        try:
            node, _ = self.cluster.placed(task, task.devices)
        except OSError as exc:
            log.warning("task %s: cannot stop it: %s", task.id, exc)
            return
        if node is None:
            self.local.stop(task)
            return
        self.cluster.stopping.add(task.id)  # its reservation stays until its group is gone
        threading.Thread(
            target=self._stop, args=(task, node), name=f"dlnest-stop-{task.id}", daemon=True
        ).start()

    def _stop(self, task: TaskRecord, node: str) -> None:
        try:
            self.cluster.sidecar.call(
                Op.STOP, task, node, self.cluster.reservation_name(task.id), timeout_s=waits.STOP_S
            )
        except ClusterError as exc:
            log.warning("task %s: could not stop it on node %s: %s", task.id, node, exc)
        finally:
            self.cluster.stopping.discard(task.id)

    def adopt(self, task: TaskRecord, claimed_at: float) -> tuple[int, float | None] | None:
        """Raises a ClusterError (an OSError) when the task's node cannot be asked now (the
        caller asks later)."""
        node, _ = self.cluster.placed(task, task.devices)
        if node is None:
            return self.local.adopt(task, claimed_at)
        found: tuple[int, float | None] | None = self.cluster.sidecar.call(
            Op.ADOPT, task, node, claimed_at, timeout_s=waits.ADOPT_S
        )
        return found

    def sweep(self, holding: frozenset[int]) -> None:
        """Release our placement groups whose tasks hold nothing (a stop cut short, a crash);
        not those of tasks still being stopped, whose processes may hold their cards."""
        if time.monotonic() - self._swept_at < SWEEP_INTERVAL_S:
            return
        self._swept_at = time.monotonic()
        view = self.cluster.view(max_age_s=0)
        stale = [
            self.cluster.reservation_name(int(g["task_id"]))
            for g in view.reservations
            if g["owner"] == self.cluster.owner
            and int(g["task_id"]) not in holding
            and int(g["task_id"]) not in self.cluster.stopping
        ]
        if stale:
            with contextlib.suppress(ClusterError):
                self.cluster.sidecar.call(Op.RELEASE, stale, timeout_s=waits.RELEASE_S)

    def close(self) -> None:
        self.local.close()
        self.cluster.close()

    def kernels(self, host: Executor) -> Executor:
        """How analyzer kernels start on this cluster: `ReservedKernels` around the host."""
        return ReservedKernels(host, self.cluster)


class ReservedKernels(Executor):
    """Analyzer kernels on a cluster: they run on this server's machine, and the cards they use
    there are reserved in Ray while they live, like a task's, so no server books them twice."""

    def __init__(self, host: Executor, cluster: RayCluster) -> None:
        self.host, self.cluster = host, cluster

    def start(self, task: TaskRecord, device_ids: tuple[int, ...]) -> Launch:
        node, indices = self.cluster.placed(task, device_ids)
        if node is None:
            return self.host.start(task, device_ids)
        if node != self.cluster.local_node:
            raise ClusterError(
                f"analyzers run on this server's machine (node {self.cluster.local_node}), "
                f"and card {names.card_name(node, indices[0])} is on node {node}: analyze on "
                "the CPU, or on a card of this machine"
            )
        name = self.cluster.reservation_name(task.id)
        bundle = self.cluster.bundle(task, node, device_ids, indices)
        try:
            self.cluster.sidecar.call(
                Op.RESERVE, node, bundle, name, timeout_s=waits.RESERVE_CALL_S
            )
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
        self.cluster.stopping.add(task.id)
        threading.Thread(
            target=self._release_once_ended,
            args=(task,),
            name=f"dlnest-release-{task.id}",
            daemon=True,
        ).start()

    def _release_once_ended(self, task: TaskRecord) -> None:
        """The card stays reserved until the kernel holding it has shut down (a second or so)."""
        deadline = time.monotonic() + KERNEL_STOP_WAIT_S
        try:
            while self.host.exit_code(task) is None and time.monotonic() < deadline:
                time.sleep(0.2)
            self._release(task)
        finally:
            self.cluster.stopping.discard(task.id)

    def adopt(self, task: TaskRecord, claimed_at: float) -> tuple[int, float | None] | None:
        return self.host.adopt(task, claimed_at)

    def close(self) -> None:
        self.host.close()

    def _release(self, task: TaskRecord) -> None:
        if any(d != CPU_ID for d in task.devices):
            with contextlib.suppress(ClusterError):
                self.cluster.sidecar.call(
                    Op.RELEASE, [self.cluster.reservation_name(task.id)], timeout_s=waits.RELEASE_S
                )


def build_cluster(
    address: str, store: TaskStore, zygote: bool
) -> tuple[RayExecutor, RayDeviceSource, ClusterLedger]:
    """The executor, devices and ledger of a service on the cluster at `address`."""
    if importlib.util.find_spec("ray") is None:
        raise ConfigError(
            f"a Ray cluster is configured ({address}) but Ray is not installed here: "
            "pip install 'dlnest-jupyter[ray]'",
            key="ray_address",
        )
    cluster = RayCluster(address, store, zygote)
    return (
        RayExecutor(cluster, LocalExecutor(zygote=zygote)),
        RayDeviceSource(cluster),
        ClusterLedger(cluster),
    )
