"""The runner router: which executor runs a task, and what its runner says of it now.

A training task runs as a process from the service's executor (this machine's, or a cluster's)
and writes its package's output and `_progress.json`; an analyzer runs in a kernel from the
analyzer host, reports its own progress and writes no package output (`core/tasks.py` RUNNERS).
The scheduler, the queries and delete all ask here instead of comparing task kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..core.package import SavePackage
from ..core.tasks import RUNNERS, Runner, TaskRecord, TaskState
from .kernels.host import AnalyzerHost
from .launch.executor import Executor, NoExecutor

_NO_ANALYZERS = NoExecutor("this service has no kernel manager for analyzers")


def writes_output(task: TaskRecord) -> bool:
    """Training processes write the package's output; an analyzer's output is per experiment."""
    return RUNNERS[task.kind] is Runner.PROCESS


class RunnerRouter:
    def __init__(
        self,
        executor: Executor,
        analyzers: AnalyzerHost | None = None,
        kernels: Callable[[Executor], Executor] | None = None,
    ) -> None:
        """`executor`: where training processes start. `analyzers`: where analyzer kernels
        start (attached later by a server, whose kernel manager is known only at its start).
        `kernels`: what analyzer kernels start through, given the host (a cluster reserves
        their cards); unset: the host."""
        self.executor = executor
        self.analyzers = analyzers
        self._kernels = kernels

    def executor_for(self, task: TaskRecord) -> Executor:
        if RUNNERS[task.kind] is Runner.PROCESS:
            return self.executor
        # Queued by a server that had kernels, taken over by one that has none.
        host: Executor = self.analyzers if self.analyzers is not None else _NO_ANALYZERS
        return self._kernels(host) if self._kernels is not None else host

    def with_progress(self, task: TaskRecord) -> TaskRecord:
        """`task` with its live progress if it runs: the package's `_progress.json` for a
        training process, the host's state for an analyzer."""
        if task.state is not TaskState.RUNNING or task.package_path is None:
            return task
        if not writes_output(task):  # an analyzer reports its own progress
            progress = self.analyzers.progress(task.id) if self.analyzers is not None else {}
            # Another server's kernel: what its owner last recorded (Scheduler tick).
            return task._replace(progress=progress or task.progress)
        return task._replace(progress=SavePackage(Path(task.package_path)).progress())

    def tail(self, task: TaskRecord) -> str | None:
        """The end of the task's output, kept in its record when it ends."""
        if not writes_output(task) or task.package_path is None:
            return None  # the package's output is its training's, not this analyzer's
        return SavePackage(Path(task.package_path)).output_tail()

    def close(self) -> None:
        self.executor.close()
        if self.analyzers is not None:
            self.analyzers.close()
