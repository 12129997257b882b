"""DLNestService: the facade that composes the service's parts, as the API and the factory see it.

The same object serves the Jupyter server extension and embedded mode. Its parts, each with one
reason to change:

- `submissions.py`: the verbs that check a request and queue a task (named by the kind table,
  `task_kinds.py`);
- `queries.py`: the read verbs (tasks, output, metrics, checkpoints, devices, settings);
- `loop.py` and `scheduler.py`: the scheduling thread and its pass (notice ends, place, launch),
  run by whichever service on the queue holds its lease (`leadership.py`);
- `runners.py`: which executor or kernel host runs a task, and its live progress;
- `kernels/experiment_verbs.py`: the analyzers' experiments;
- `sweeps/`: sweeps (their verbs, and the driver the scheduler runs each pass);
- `stopping.py`: how a task is stopped (a delete, a pruned trial).

What is left here are the verbs that write and then want a pass at once (submit, delete, new
settings), and the lifecycle. Nothing here imports torch or user code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.box_ledger import Ledger
from ..core.devices import CPU_ID, DeviceSource
from ..core.settings import Settings, check_devices
from ..core.store import TaskStore
from ..core.tasks import TaskKind, TaskRecord
from .event_log import EventLog
from .kernels.experiment_verbs import ExperimentVerbs
from .kernels.host import AnalyzerHost
from .launch.executor import Executor
from .leadership import Leadership
from .loop import SchedulingLoop
from .queries import Queries
from .runners import RunnerRouter
from .scheduler import Scheduler
from .stopping import Stopper
from .submissions import DEFAULT_SCRIPTS_DIR, Intake
from .sweeps.driver import SweepDriver
from .sweeps.verbs import SweepVerbs
from .task_kinds import KINDS


class DLNestService:
    def __init__(
        self,
        store: TaskStore,
        devices: DeviceSource,
        executor: Executor,
        tick_interval_s: float = 1.0,
        analyzers: AnalyzerHost | None = None,
        scripts_dir: str = DEFAULT_SCRIPTS_DIR,
        box: Ledger | None = None,
        label: str | None = None,
        kernels: Callable[[Executor], Executor] | None = None,
    ) -> None:
        """`analyzers`: where analyze tasks get their kernels; without one they are refused.

        `scripts_dir`: where runExp finds scripts when an analyze request names no folder
        (`submissions.Intake`). `box`: the machine-wide ledger shared with other users'
        schedulers, if the box has one. `label`: how `GET scheduler` names this service to
        users. `kernels`: what analyzer kernels start through (`runners.RunnerRouter`).
        """
        self.store, self.device_source = store, devices
        self.log = EventLog()
        self.leadership = Leadership(store, label)
        self.runners = RunnerRouter(executor, analyzers, kernels)
        self.experiments = ExperimentVerbs(store, analyzers)
        self.queries = Queries(store, devices, self.runners, self.leadership, box)
        self.intake = Intake(store, devices, self.runners, self.log, scripts_dir)
        self.stopper = Stopper(store, self.runners, self.experiments, self.leadership)
        driver = SweepDriver(self.intake, self.stopper, self.log)
        scheduler = Scheduler(store, devices, self.runners, self.leadership, self.log, box, driver)
        self.loop = SchedulingLoop(scheduler, store, self.leadership, tick_interval_s)
        self.sweeps = SweepVerbs(
            self.intake, self.stopper, self.loop.paused, self._place_freed, self.log
        )

    def attach_analyzers(self, host: AnalyzerHost) -> None:
        """Where analyze tasks get their kernels (the server's kernel manager, known at start)."""
        self.runners.analyzers = self.experiments.analyzers = host

    def submit(self, kind: TaskKind, **fields: Any) -> TaskRecord:
        """Queue a task of `kind` (its table row names the verb that checks and queues it), and
        place it now rather than at the next pass; returns it as it is now.

        A whole pass, reaping included: a task submitted the moment the last one ended gets its
        card now, not a pass later. A service that does not schedule the queue leaves it to the
        leader, which sees the write within a poll. Where launches take seconds (a cluster), the
        reply says `queued` once the task is stored and the scheduler's thread launches it.
        """
        task = KINDS[kind].submit(self.intake, **fields)
        if self._launches_after_reply:
            self.loop.wake()
            return self.runners.with_progress(self.store.get(task.id))
        started = self.tick()
        # As GET would show it now, live progress included (an analyzer's reply says it is
        # loading), even when the scheduler thread's own pass launched it first.
        now = next((t for t in started if t.id == task.id), None) or self.store.get(task.id)
        return self.runners.with_progress(now)

    def delete(self, task_id: int) -> TaskRecord:
        """Cancel a queued task, or stop a running one and free its devices at once
        (`stopping.py`); then the freed devices go to the next tasks (DLNest waited for its
        60 s tick)."""
        with self.loop.paused():  # a pass of ours must not start or finish the task in between
            cancelled = self.stopper.stop(task_id)
        self.log.write(f"task {task_id} deleted")
        self._place_freed()
        return cancelled

    def update_settings(self, changes: dict[str, Any]) -> Settings:
        if changes.get("devices") is not None:  # ids this machine has, once they are ids
            wanted = self.store.settings().updated(changes).devices
            known = [CPU_ID, *(gpu.id for gpu in self.device_source.snapshot().gpus)]
            check_devices(wanted, known)
        settings = self.store.update_settings(changes)
        self._place_freed()  # a raised cap or a newly enabled card may let tasks start now
        return settings

    @property
    def _launches_after_reply(self) -> bool:
        """Whether a verb answers before the launches it makes possible (they take seconds
        here, and the scheduler's thread is there to make them)."""
        return self.runners.executor.answers_before_launch and self.loop.running

    def _place_freed(self) -> None:
        """Start what a verb made room for: now, or on the scheduler's thread at once."""
        if self._launches_after_reply:
            self.loop.wake()
        else:
            self.tick()

    def tick(self, now: float | None = None) -> list[TaskRecord]:
        """One scheduler pass now (`loop.SchedulingLoop.tick`); returns the tasks started."""
        return self.loop.tick(now)

    def start(self) -> None:
        """Run the scheduler's passes on a daemon thread of their own (`loop.py`)."""
        self.loop.start()

    def stop(self) -> None:
        """Stop scheduling; running tasks keep running and are re-adopted by the next service."""
        self.loop.stop()
        self.runners.close()
