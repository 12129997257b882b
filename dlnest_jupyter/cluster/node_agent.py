"""The actor on each node that starts, watches and stops that node's tasks.

One detached actor per node (`names.agent_name`), made by whichever server first needs it and
shared by all. It is a `LocalExecutor` on its node: tasks start as the same `task_entry`
process as on one box, forked from a pre-warmed zygote, each in a session of its own, so a task
outlives an agent that restarts and is found again by its pid and start time. What Ray gives a
worker that a training process must not inherit (`OMP_NUM_THREADS=1`, an empty
`CUDA_VISIBLE_DEVICES`) is taken out before the zygote starts; each task's cards are set by us.

A task must not outlive its node's membership: when the node's raylet dies, Ray forgets the
reservation, so the card counts as free. Ray kills only a dead worker's direct children, so each
task gets a watcher of its own, outside the worker's tree, that kills the task's group when the
raylet is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..core import processes
from ..core.devices import source_from_env
from ..core.tasks import TaskRecord
from ..service.launch.executor import LocalExecutor, find_launch

# What Ray sets in its workers' environment that would change how a training process runs.
_RAY_WORKER_ENV = ("OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
RELEASE_POLL_S = 1.0
# The zygote imports torch once per agent (seconds on a busy node); well within the sidecar's
# wait for a launch (waits.AGENT_START_S), after which a slow start goes to adoption.
ZYGOTE_WAIT_S = 20.0


class NodeAgent:
    def __init__(self, node: str, zygote: bool = True, stop_grace_s: float = 10.0) -> None:
        for name in _RAY_WORKER_ENV:
            os.environ.pop(name, None)
        self.node = node
        self.raylet_pid = os.getppid()  # Ray's workers are the raylet's children
        self.executor = LocalExecutor(zygote=zygote, stop_grace_s=stop_grace_s)
        self.devices = source_from_env()  # this node's NVML (or DLNEST_FAKE_GPUS)
        # Every task this agent started or adopted (its process group), with its reservation.
        self._task_groups: dict[int, str | None] = {}
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        threading.Thread(target=self._release_ended, name="dlnest-release", daemon=True).start()

    def inventory(self) -> dict[str, Any]:
        """This node's cards as NVML sees them, each with the processes that are not dlnest
        tasks (memory used by someone else, which no reservation accounts for)."""
        snapshot = self.devices.snapshot()
        ours = self._task_pids()
        return {
            "source": snapshot.source,
            "reason": snapshot.reason,
            "gpus": [
                {
                    "index": gpu.id,
                    "name": gpu.name,
                    "memory_total_mb": gpu.memory_total_mb,
                    "memory_used_mb": gpu.memory_used_mb,
                    "utilization_pct": gpu.utilization_pct,
                    "processes": None
                    if gpu.processes is None
                    else [(p.pid, p.used_memory_mb) for p in gpu.processes if p.pid not in ours],
                }
                for gpu in snapshot.gpus
            ],
        }

    def _task_pids(self) -> set[int]:
        with self._lock:
            groups = list(self._task_groups)
        return {pid for group in groups for pid in processes.group_members(group)}

    def _release_ended(self) -> None:
        """Free each task's reservation once its whole process group is gone, whether or not its
        server is there to see it end (a server closed overnight must not hold cards)."""
        from ray.util.placement_group import get_placement_group, remove_placement_group

        while True:
            time.sleep(RELEASE_POLL_S)
            with self._lock:
                groups = list(self._task_groups.items())
            for pgid, reservation in groups:
                if processes.group_members(pgid):
                    continue
                with self._lock:
                    self._task_groups.pop(pgid, None)
                if reservation is not None:
                    with contextlib.suppress(Exception):  # already released by its server
                        remove_placement_group(get_placement_group(reservation))

    def _track(self, pgid: int, reservation: str | None) -> None:
        with self._lock:
            self._task_groups[pgid] = reservation

    def start(
        self, task: TaskRecord, card_indices: tuple[int, ...], reservation: str
    ) -> tuple[int, float | None]:
        """Start `task` on this node's cards `card_indices`, holding the placement group
        `reservation`; (pid, start time)."""
        assert task.package_path is not None
        if not Path(task.package_path).is_dir():
            raise OSError(
                f"the save package {task.package_path} is not visible on node {self.node}: "
                "save roots must be on a filesystem every node mounts at the same path"
            )
        with self._start_lock:  # a repeated launch waits for the first, then finds it
            # A launch whose answer was lost (the server's link cut mid-call) is not repeated.
            running = processes.find_task_leader(task.package_path)
            if running is not None:
                self._track(running[0], reservation)
                return running
            if self.executor.zygote is not None:
                # Forked from the zygote, a task outlives this agent's worker (Ray kills a dead
                # worker's children); started by Popen, it would be one of those children.
                self.executor.zygote.wait_ready(ZYGOTE_WAIT_S)
            launch = self.executor.start(task, card_indices)
        self._track(launch.pid, reservation)
        self._watch(launch.pid)
        return launch.pid, launch.started

    def exit_code(self, task: TaskRecord) -> int | None:
        return self.executor.exit_code(task)

    def stop(self, task: TaskRecord) -> None:
        """Stop the task's group and return once it is gone (SIGKILL after the grace period)."""
        if task.pid is None:
            return
        self.executor.stop(task)
        deadline = time.monotonic() + self.executor.stop_grace_s + 5.0
        while processes.group_members(task.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        processes.kill_group(task.pid, signal.SIGKILL)

    def adopt(self, task: TaskRecord, claimed_at: float) -> tuple[int, float | None] | None:
        found = find_launch(task, claimed_at)
        if found is not None and found[1] is not None:
            self._track(found[0], None)  # its server releases its reservation when it ends
            self._watch(found[0])
        return found

    def _watch(self, pgid: int) -> None:
        """A watcher of its own (`watcher.py`) kills the task's group if the raylet dies."""
        subprocess.run(
            [
                sys.executable,
                "-m",
                "dlnest_jupyter.cluster.watcher",
                str(self.raylet_pid),
                str(pgid),
            ],
            stdin=subprocess.DEVNULL,
            check=False,
        )
