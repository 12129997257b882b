"""An executor that records launches instead of starting processes: a seam for fast tests.

Plugged in where the real one would be (`DLNestService(executor=...)`, or the extension's
`DLNestApp.executor_class`), it lets the scheduler, the API and the server run for real while
no training process starts. A "started" task runs until `finish` (or `stop`) ends it.
"""

from __future__ import annotations

import itertools
import subprocess
import threading

from dlnest_jupyter.core import processes
from dlnest_jupyter.core.tasks import TaskRecord
from dlnest_jupyter.service.launch.executor import Executor, Launch

_FAKE_PIDS = itertools.count(4_000_000)  # above any real pid_max: never a live process


class RecordingExecutor(Executor):
    def __init__(self, zygote: bool = False) -> None:
        self.launches: list[tuple[int, tuple[int, ...]]] = []  # (task id, device ids)
        self.stopped: list[int] = []
        self._exit_codes: dict[int, int] = {}
        self._lock = threading.Lock()

    def start(self, task: TaskRecord, device_ids: tuple[int, ...]) -> Launch:
        with self._lock:
            self.launches.append((task.id, device_ids))
        return Launch(next(_FAKE_PIDS), None)

    def exit_code(self, task: TaskRecord) -> int | None:
        with self._lock:
            return self._exit_codes.get(task.id)

    def end_reason(self, task: TaskRecord, code: int) -> str:
        return f"exit code {code}"

    def stop(self, task: TaskRecord) -> None:
        with self._lock:
            self.stopped.append(task.id)
            self._exit_codes[task.id] = 143

    def adopt(self, task: TaskRecord, claimed_at: float) -> tuple[int, float | None] | None:
        return None

    def finish(self, task_id: int, code: int = 0) -> None:
        """The task's pretend process ends with `code`; the next tick notices."""
        with self._lock:
            self._exit_codes[task_id] = code

    def close(self) -> None:
        pass


class SleepingExecutor(RecordingExecutor):
    """Records launches like RecordingExecutor, but each task is a real `sleep` in a session of
    its own: a live pid (with its start time) that other processes can see, and kill."""

    def __init__(self, zygote: bool = False) -> None:
        super().__init__(zygote)
        self._sleepers: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, task: TaskRecord, device_ids: tuple[int, ...]) -> Launch:
        with self._lock:
            self.launches.append((task.id, device_ids))
        sleeper = subprocess.Popen(["sleep", "600"], start_new_session=True)
        with self._lock:
            self._sleepers[task.id] = sleeper
        return Launch(sleeper.pid, processes.start_time(sleeper.pid))

    def exit_code(self, task: TaskRecord) -> int | None:
        with self._lock:
            sleeper = self._sleepers.get(task.id)
        if sleeper is None:
            return super().exit_code(task)
        code = sleeper.poll()
        return None if code is None else (128 - code if code < 0 else code)

    def stop(self, task: TaskRecord) -> None:
        super().stop(task)
        with self._lock:
            sleeper = self._sleepers.get(task.id)
        if sleeper is not None and sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()

    def close(self) -> None:
        with self._lock:
            sleepers, self._sleepers = list(self._sleepers.values()), {}
        for sleeper in sleepers:
            if sleeper.poll() is None:
                sleeper.kill()
            sleeper.wait()
