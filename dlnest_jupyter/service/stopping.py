"""Stopping a task: record how it ended, then signal what runs it.

`delete` (a user's `del`) and a sweep's pruner (service/sweeps) both end tasks this way; the
caller holds the scheduling loop's lock (`loop.paused()`, or a pass itself), so no pass starts
or finishes the task in between. The end is recorded before the process is signalled, so a
stopped task always reads as stopped (and a queue that cannot be written stops nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.errors import TaskStateError
from ..core.store import TaskStore
from ..core.tasks import RUNNERS, AnalyzerState, Runner, TaskRecord, TaskState
from .kernels.experiment_verbs import ExperimentVerbs
from .leadership import Leadership
from .runners import RunnerRouter


class Stopper:
    def __init__(
        self,
        store: TaskStore,
        runners: RunnerRouter,
        experiments: ExperimentVerbs,
        leadership: Leadership,
    ) -> None:
        self.store, self.runners = store, runners
        self.experiments, self.leadership = experiments, leadership

    def stop(
        self, task_id: int, state: TaskState = TaskState.CANCELLED, error: str = "deleted"
    ) -> TaskRecord:
        """Cancel a queued task, or stop a running one (ending it as `state`, `error` saying
        why) and free its devices. A task being launched is stopped by its launcher, which
        finds it ended; an analyzer by the service whose kernel it is."""
        runners = self.runners
        task = self.store.get(task_id)
        if task.state.terminal:
            raise TaskStateError(task_id, task.state.value, state.value, ended=True)
        if task.state is TaskState.RUNNING:  # how far it got stays on record, as at an end
            self.store.set_progress(task_id, _ended(task, runners.with_progress(task).progress))
        stopped = self.store.finish(task_id, state, error=error, output_tail=runners.tail(task))
        if task.state is TaskState.RUNNING and self._may_stop(task):
            runners.executor_for(task).stop(task)
        self.experiments.forget(task_id)
        return stopped

    def _may_stop(self, task: TaskRecord) -> bool:
        """A process any service of this user may signal; a kernel only its own service."""
        return RUNNERS[task.kind] is Runner.PROCESS or self.leadership.answers_for(task.owner)


def _ended(task: TaskRecord, progress: Mapping[str, Any]) -> dict[str, Any]:
    """A stopped task's last progress; an analyzer's says its kernel ended (not "ready")."""
    if RUNNERS[task.kind] is not Runner.KERNEL:
        return dict(progress)
    return {**{k: v for k, v in progress.items() if k != "kernel"}, "analyzer": AnalyzerState.ENDED}
