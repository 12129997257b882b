"""How a placed task's process is started, watched and stopped.

`LocalExecutor` starts `python -m dlnest_jupyter.runtime.task_entry` in a new session (its own
process group, so `stop` reaches DDP ranks and DataLoader workers too, and a dying service
takes no task with it), with `CUDA_VISIBLE_DEVICES` naming the placed cards (empty for CPU
tasks) and stdout/stderr appended to the package's `_output.txt`.

A task started by an earlier service process is not our child: its end is noticed by its pid
and start time, and its exit status read from the launch record it wrote into `_task.json`.
"""

from __future__ import annotations

import abc
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ...core import processes
from ...core.devices import CPU_ID
from ...core.errors import EXIT_DISK_FULL, EXIT_OUT_OF_MEMORY
from ...core.package import SavePackage
from ...core.tasks import MEMORY_CAP_MB, PRETEND_GPUS, TaskRecord
from .zygote_client import ZygoteClient

EXIT_UNKNOWN = -1  # the process is gone and never recorded how it ended (SIGKILL, OOM killer)


@dataclass(frozen=True)
class Launch:
    pid: int
    started: float | None  # the kernel's start time of the process, to recognise it later
    kernel_id: str | None = None  # analyzers: the Jupyter kernel holding the loaded model


class Executor(abc.ABC):
    """What starts, watches and stops tasks: the one seam between the scheduler and where
    tasks run (this machine's processes, a kernel manager's kernels, a Ray cluster's nodes).
    A backend of one's own subclasses it (`DLNestApp.executor_class`, or a `Backend`)."""

    # True where a launch may take seconds (a cluster: a placement group, a node agent's first
    # start): a submission then answers once its task is stored, and the scheduler's thread
    # places and launches it. Where launches take milliseconds, the reply waits for the launch
    # and says where the task runs.
    answers_before_launch: bool = False

    @abc.abstractmethod
    def start(self, task: TaskRecord, device_ids: tuple[int, ...]) -> Launch:
        """Start `task` on `device_ids`. LaunchDeferred: nothing started, queue it again;
        LaunchUnknown: it may have started, `adopt` settles it; another OSError fails it."""

    @abc.abstractmethod
    def exit_code(self, task: TaskRecord) -> int | None:
        """None while the task's process runs; its exit status once it has ended."""

    @abc.abstractmethod
    def end_reason(self, task: TaskRecord, code: int) -> str:
        """Why the task ended with a non-zero `code`, for its `error`."""

    @abc.abstractmethod
    def stop(self, task: TaskRecord) -> None:
        """Stop the task's whole process group (SIGTERM, then SIGKILL after a grace period)."""

    def adopt(self, task: TaskRecord, claimed_at: float) -> tuple[int, float | None] | None:
        """(pid, start time) of what a scheduler that died while launching `task` (claimed at
        `claimed_at`) launched for it, running or ended; None if nothing was. By default, a
        process of this machine found by its session and folder, or its launch record."""
        return find_launch(task, claimed_at)

    def sweep(self, holding: frozenset[int]) -> None:
        """Release what the executor still reserves for tasks that hold nothing any more (by
        default it reserves nothing beyond the tasks' processes)."""
        return  # a no-op a backend may replace, not a method it must write

    def close(self) -> None:
        """Release what the executor holds; started tasks keep running."""
        return  # a no-op a backend may replace, not a method it must write


class LocalExecutor(Executor):
    def __init__(
        self, python: str = sys.executable, stop_grace_s: float = 10.0, zygote: bool = False
    ) -> None:
        """`zygote`: fork tasks from a pre-warmed process (milliseconds, not seconds, to start)."""
        self.python = python
        self.stop_grace_s = stop_grace_s
        # By pid: task ids are unique within one queue only, and a node's agent serves many.
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._zygote_pids: set[int] = set()
        self._lock = threading.Lock()
        self.zygote = ZygoteClient(python) if zygote else None
        if self.zygote is not None:
            self.zygote.start()

    def close(self) -> None:
        """Let the zygote go; tasks already started keep running.

        Our own children are handed to daemon threads that wait for them, so one that ends while
        this process lives on (an embedded service in a notebook kernel) is reaped, not left a zombie.
        """
        if self.zygote is not None:
            self.zygote.close()
        with self._lock:
            children, self._children = list(self._children.values()), {}
        for child in children:
            threading.Thread(target=child.wait, name="dlnest-reap", daemon=True).start()

    def start(self, task: TaskRecord, device_ids: tuple[int, ...]) -> Launch:
        assert task.package_path is not None, "the service creates packages before placing"
        package = SavePackage(Path(task.package_path))
        spec = task.spec
        request = {
            "package_path": task.package_path,
            "kind": task.kind,
            "device_ids": list(device_ids),
            "checkpoint_id": spec.get("checkpoint_id"),  # continue's, resolved at submit
            "ddp": bool(spec.get("ddp")),
            "memory_mb": task.memory_mb,
            "overrides": spec.get("overrides"),  # a continue's config changes (-f, --epochs)
            "freq_path": spec.get("freq_path"),
            # The scheduler's word at launch (scheduler.py): pretend cards, and the guard's cap.
            "pretend_gpus": bool(spec.get(PRETEND_GPUS)),
            "memory_cap_mb": spec.get(MEMORY_CAP_MB),
            "reserved_mb": {str(card): mb for card, mb in task.reserved_mb.items() if card >= 0},
        }
        gpu_ids = [d for d in device_ids if d != CPU_ID]
        task_env = {
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
            "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpu_ids)),  # empty: a CPU task sees no GPU
            "DLNEST_TASK_ID": str(task.id),
            "PYTHONUNBUFFERED": "1",
        }
        if self.zygote is not None:
            forked = self.zygote.launch(
                request, str(package.output_path()), str(package.path), task_env
            )
            if forked is not None:
                with self._lock:
                    self._zygote_pids.add(forked[0])
                return Launch(*forked)
            self.zygote.start()  # not ready or gone: warm a new one for next time
        with open(package.output_path(), "ab") as output:
            child = subprocess.Popen(
                [self.python, "-m", "dlnest_jupyter.runtime.task_entry", json.dumps(request)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=package.path,
                env={**os.environ, **task_env},
                start_new_session=True,
            )
        with self._lock:
            self._children[child.pid] = child
        return Launch(child.pid, processes.start_time(child.pid))

    def exit_code(self, task: TaskRecord) -> int | None:
        with self._lock:
            child = self._children.get(task.pid) if task.pid is not None else None
        if child is not None:
            code = child.poll()
            if code is None:
                return None
            with self._lock:
                self._children.pop(child.pid, None)
            return 128 - code if code < 0 else code  # -15 (killed by SIGTERM) -> 143
        if task.pid in self._zygote_pids and self.zygote is not None:
            code = self.zygote.exit_codes.pop(task.pid, None)
            if code is not None:
                self._zygote_pids.discard(task.pid)
                return code
            if self.zygote.running():
                return None  # the zygote reports its children's end, a zombie's included
        if task.pid is not None and processes.is_alive(task.pid, task.pid_start_time):
            return None
        return _recorded_exit_code(task)

    def end_reason(self, task: TaskRecord, code: int) -> str:
        tail = SavePackage(Path(task.package_path)).output_tail() if task.package_path else ""
        lines = tail.strip().splitlines()
        last = lines[-1] if lines else "no output"
        if code == EXIT_OUT_OF_MEMORY and "out of GPU memory" in last:
            return last.removeprefix("dlnest: error: ")  # its figures, as the run said them
        if code == EXIT_DISK_FULL and "no space left" not in last and "quota" not in last:
            # Too full for the task to write why: say it for it.
            last = f"{task.package_path}: no space left on device (the disk holding this package is full)"
        return f"{describe_exit(code)}: {last}"

    def stop(self, task: TaskRecord) -> None:
        if task.pid is None:
            return
        with self._lock:
            ours = task.pid in self._children or task.pid in self._zygote_pids
        if not ours and not processes.is_alive(task.pid, task.pid_start_time):
            return  # ended (or its pid is another process's now): nothing of it to stop
        processes.kill_group(task.pid, signal.SIGTERM)
        threading.Thread(
            target=self._finish_stop, args=(task,), name=f"dlnest-stop-{task.id}", daemon=True
        ).start()

    def _finish_stop(self, task: TaskRecord) -> None:
        assert task.pid is not None
        with self._lock:
            child = self._children.pop(task.pid, None)
        try:
            if child is not None:
                child.wait(self.stop_grace_s)
            else:
                _wait_for_group(task.pid, self.stop_grace_s)
        except subprocess.TimeoutExpired:
            pass
        # Whatever is left of the group (ranks, workers, a stuck leader) goes now.
        processes.kill_group(task.pid, signal.SIGKILL)
        if child is not None:
            child.wait()


class NoExecutor(Executor):
    """Where tasks of a kind this service cannot run end up: they end at once, saying why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def start(self, task: TaskRecord, device_ids: tuple[int, ...]) -> Launch:
        raise OSError(self.reason)

    def exit_code(self, task: TaskRecord) -> int | None:
        return EXIT_UNKNOWN

    def end_reason(self, task: TaskRecord, code: int) -> str:
        return self.reason

    def stop(self, task: TaskRecord) -> None:
        pass

    def adopt(self, task: TaskRecord, claimed_at: float) -> tuple[int, float | None] | None:
        return None


def _wait_for_group(pgid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and processes.group_members(pgid):
        time.sleep(0.1)


def find_launch(task: TaskRecord, claimed_at: float) -> tuple[int, float | None] | None:
    """(pid, start time) of the process launched on this machine for `task` since `claimed_at`:
    running (its session leader in the package), or already ended (its launch record)."""
    if task.package_path is None:
        return None
    found = processes.find_task_leader(task.package_path)
    if found is not None:
        return found
    try:
        launches = SavePackage(Path(task.package_path)).launches()
    except Exception:  # unreadable: as if there were none
        return None
    for launch in reversed(launches):
        if isinstance(launch.get("pid"), int) and launch.get("started_at", 0) >= claimed_at:
            return launch["pid"], None  # it ran (and likely ended): reaping reads its record
    return None


def _recorded_exit_code(task: TaskRecord) -> int:
    if task.package_path is None:
        return EXIT_UNKNOWN
    try:
        launches = SavePackage(Path(task.package_path)).launches()
    except Exception:  # an unreadable record is the same as none
        return EXIT_UNKNOWN
    for launch in reversed(launches):
        if launch.get("pid") == task.pid and isinstance(launch.get("exit_code"), int):
            return int(launch["exit_code"])
    return EXIT_UNKNOWN


def describe_exit(code: int, signals: Mapping[int, str] | None = None) -> str:
    """A readable reason for a non-zero exit status."""
    names = signals or {9: "SIGKILL", 15: "SIGTERM", 2: "SIGINT", 6: "SIGABRT", 11: "SIGSEGV"}
    if code == EXIT_UNKNOWN:
        return "the process ended without recording its exit status (killed, or out of memory?)"
    if code == EXIT_DISK_FULL:
        return f"the disk filled up (exit {code})"
    if code == EXIT_OUT_OF_MEMORY:
        return f"out of GPU memory (exit {code})"
    if code > 128 and code - 128 in names:
        return f"killed by {names[code - 128]} (exit {code})"
    return f"exit code {code}"
