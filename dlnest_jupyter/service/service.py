"""DLNestService: the verbs of DESIGN.md section 6 over the task store, devices and an executor.

The same object serves the Jupyter server extension and embedded mode: in both, `start()` runs
`tick()` on a thread of its own. `tick()` is the whole scheduler (`scheduler.py`): notice tasks
that ended, then place and start what fits, in whichever service on the queue holds its lease
(`leadership.py`); the others serve the same verbs and wake the leader through the store.
Requests reach these verbs through the API dispatcher (`dispatcher.py`), which has checked their
fields; what differs between task kinds is the table in `task_kinds.py`. Nothing here imports
torch or user code; a submission is checked by reading configs and parsing code, and user code
first runs in the task's process.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..core.box_ledger import Ledger
from ..core.checkpoints import TrackLimits
from ..core.continuation import plan_continuation
from ..core.devices import DeviceSource
from ..core.errors import PackageBusyError, TaskError, TaskStateError
from ..core.package import METRICS_FILE, SavePackage
from ..core.package_creation import PackageOptions, create_package, discard_new_package
from ..core.package_state import checkpoints_json
from ..core.placement import admission_error
from ..core.placement_values import Demand
from ..core.project_check import ProjectChecks
from ..core.settings import Settings
from ..core.store import TaskStore
from ..core.tasks import AnalyzerState, Runner, TaskKind, TaskRecord, TaskState
from ..core.templates import DEFAULT_TEMPLATE, new_project
from .device_rows import device_rows
from .event_log import EventLog
from .kernels.experiment_verbs import ExperimentVerbs
from .kernels.host import AnalyzerHost
from .launch.executor import Executor, NoExecutor
from .leadership import Leadership
from .scheduler import Scheduler
from .task_kinds import KINDS

log = logging.getLogger(__name__)
DEFAULT_SCRIPTS_DIR = "AnalyzeScripts"
# How often the scheduler thread looks for writes by other services (a submission to another
# server on the queue, a delete of our analyzer): a PRAGMA, microseconds each.
POLL_INTERVAL_S = 0.05


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

        `scripts_dir`: where runExp finds scripts when an analyze request names no folder:
        relative to the package's project folder (DLNest's `AnalyzeScripts`), or absolute.
        `box`: the machine-wide ledger shared with other users' schedulers, if the box has one.
        `label`: how `GET scheduler` names this service to users. `kernels`: what analyzer
        kernels start through, given the host (a cluster reserves their cards); unset: the host.
        """
        self.store = store
        self.device_source = devices
        self.executor = executor
        self.analyzers = analyzers
        self._kernels = kernels
        self.experiments = ExperimentVerbs(store, analyzers)
        self.tick_interval_s = tick_interval_s
        self.scripts_dir = scripts_dir
        self._tick_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.log = EventLog()
        self.leadership = Leadership(store, label)
        self.scheduler = Scheduler(self, self.leadership, box)
        self._projects = ProjectChecks()

    def attach_analyzers(self, host: AnalyzerHost) -> None:
        """Where analyze tasks get their kernels (the server's kernel manager, known at start)."""
        self.analyzers = self.experiments.analyzers = host

    # -- verbs ------------------------------------------------------------------------------
    def submit(self, kind: TaskKind, fields: dict[str, Any]) -> TaskRecord:
        """Queue a task of `kind` (its table row says which verb checks and queues it)."""
        return KINDS[kind].submit(self, fields)

    def submit_train(
        self,
        config_path: str | Path,
        *,
        freq_path: str | Path | None = None,
        description: str = "",
        memory_mb: int | None = None,
        cpu: bool = False,
        multi_gpu: bool = False,
        ddp: bool = False,
        no_save: bool = False,
        use_description: bool = False,
        jump: bool = False,
    ) -> TaskRecord:
        """Check the config and code, refuse what can never fit, copy the package, queue it."""
        checked = self._projects.check(config_path, freq_path)
        loaded = checked.loaded
        TrackLimits.from_args(loaded.args, loaded.source_of("checkpoint_args") or loaded.root_path)
        placement = {"cpu": cpu, "multi_gpu": multi_gpu, "ddp": ddp}
        self._admit(memory_mb, placement)
        package = create_package(
            loaded, PackageOptions(description, no_save, use_description), checked.layout
        )
        spec: dict[str, Any] = {
            "config_path": str(config_path),
            "freq_path": freq_path and str(freq_path),
            **placement,
        }
        if loaded.warnings:  # the submission's reply carries them (api_routes.submit_task)
            spec["warnings"] = list(loaded.warnings)
        try:
            task = self.store.submit(
                TaskKind.TRAIN,
                spec,
                description=description,
                package_path=str(package.path),
                memory_mb=memory_mb,
                jump=jump,
            )
        except BaseException:
            discard_new_package(package)
            raise
        self.log.write(f"task {task.id} queued: train {config_path}")
        return self._start_now(task)

    def submit_continue(
        self,
        record_path: str | Path,
        *,
        checkpoint_id: int | None = None,
        freq_path: str | Path | None = None,
        epochs: int | None = None,
        description: str = "",
        memory_mb: int | None = None,
        cpu: bool = False,
        multi_gpu: bool = False,
        ddp: bool = False,
        jump: bool = False,
    ) -> TaskRecord:
        """Queue more training of a package; `freq_path` and `epochs` change its config when
        the run starts (core/continuation.py)."""
        package = SavePackage.open(record_path)
        resolved = package.resolve_checkpoint(checkpoint_id)
        continuation = plan_continuation(package, resolved, freq_path, epochs)
        busy = [  # analyzers only read the package: training it alongside is fine
            t
            for t in self.store.list_tasks(
                [TaskState.QUEUED, TaskState.STARTING, TaskState.RUNNING]
            )
            if t.package_path == str(package.path) and KINDS[t.kind].writes_package
        ]
        if busy:
            raise PackageBusyError(
                f"{package.path}: task {busy[0].id} already uses this package ({busy[0].state.value})"
            )
        placement = {"cpu": cpu, "multi_gpu": multi_gpu, "ddp": ddp}
        self._admit(memory_mb, placement)
        spec: dict[str, Any] = {
            "record_path": str(package.path),
            "checkpoint_id": resolved,
            **placement,
        }
        if continuation.overrides:
            spec.update(overrides=continuation.overrides, freq_path=freq_path and str(freq_path))
        if continuation.warnings:  # the submission's reply carries them (api_routes.submit_task)
            spec["warnings"] = list(continuation.warnings)
        task = self.store.submit(
            TaskKind.CONTINUE,
            spec,
            description=description,
            package_path=str(package.path),
            memory_mb=memory_mb,
            jump=jump,
        )
        self.log.write(f"task {task.id} queued: continue {package.path} from checkpoint {resolved}")
        return self._start_now(task)

    def submit_analyze(
        self,
        record_path: str | Path,
        *,
        checkpoint_id: int | None = None,
        scripts_dir: str | Path | None = None,
        description: str = "",
        memory_mb: int | None = None,
        cpu: bool = False,
        jump: bool = False,
    ) -> TaskRecord:
        """Queue an analyzer: once placed, a kernel loads the package and keeps its model."""
        if self.analyzers is None:
            raise TaskError("analyzers need a kernel manager; this service was built without one")
        package = SavePackage.open(record_path)
        resolved = package.resolve_checkpoint(checkpoint_id)
        project = package.path.parent.parent  # <project>/Saves/<package>
        scripts = Path(scripts_dir) if scripts_dir else project / self.scripts_dir
        placement = {"cpu": cpu, "multi_gpu": False, "ddp": False}
        self._admit(memory_mb, placement, on_this_machine=True)
        spec = {
            "record_path": str(package.path),
            "checkpoint_id": resolved,
            "scripts_dir": str(scripts.expanduser().resolve()),
            **placement,
        }
        task = self.store.submit(
            TaskKind.ANALYZE,
            spec,
            description=description,
            package_path=str(package.path),
            memory_mb=memory_mb,
            jump=jump,
        )
        self.log.write(f"task {task.id} queued: analyze {package.path} at checkpoint {resolved}")
        return self._start_now(task)

    def delete(self, task_id: int) -> TaskRecord:
        """Cancel a queued task, or stop a running one and free its devices at once.

        The cancellation is recorded before the process is signalled, so a stopped task always
        reads `cancelled` (and a queue that cannot be written stops nothing). A task being
        launched is stopped by its launcher, which finds it cancelled; an analyzer by the
        service whose kernel it is.
        """
        with self._tick_lock:  # a tick of ours must not start or finish the task in between
            task = self.store.get(task_id)
            if task.state.terminal:
                raise TaskStateError(task_id, task.state.value, TaskState.CANCELLED.value)
            if task.state is TaskState.RUNNING:  # how far it got stays on record, as at an end
                self.store.set_progress(task_id, _ended(task, self.with_progress(task).progress))
            cancelled = self.store.finish(
                task_id, TaskState.CANCELLED, error="deleted", output_tail=self.tail(task)
            )
            if task.state is TaskState.RUNNING and self._may_stop(task):
                self.executor_for(task).stop(task)
            self.experiments.forget(task_id)
        self.log.write(f"task {task_id} deleted")
        self.tick()  # the freed devices go to the next tasks now (DLNest waited for its 60 s tick)
        return cancelled

    def task(self, task_id: int) -> TaskRecord:
        return self.with_progress(self.store.get(task_id))

    def tasks(self) -> list[TaskRecord]:
        return [self.with_progress(t) for t in self.store.list_tasks()]

    def tasks_json(self, since: int | None = None) -> tuple[int, list[str]]:
        """(the queue's version, its tasks as REST TASK JSON texts, by id).

        Running tasks carry their live progress. `since`: only the tasks changed after that
        version (a refresh that re-sends nothing unchanged), running ones always.
        """
        version, rows = self.store.tasks_json(since)
        running = {
            t.id: t
            for t in self.store.get_many(i for i, state, _ in rows if state is TaskState.RUNNING)
        }
        return version, [
            json.dumps(self.with_progress(running[i]).to_json()) if i in running else text
            for i, _, text in rows
        ]

    def checkpoints(self, task_id: int) -> dict[str, Any]:
        """The checkpoints the task's package holds (what `continue -c` and `analyze -c` take),
        each with its branch, and the branches: where each forked (`core/package_state.py`)."""
        task = self.store.get(task_id)
        if task.package_path is None:
            return {"head": None, "checkpoints": [], "branches": []}
        return checkpoints_json(SavePackage.open(task.package_path).state())

    def metrics(self, task_id: int, offset: int = 0, name: str = METRICS_FILE) -> dict[str, Any]:
        """The task's package's metric rows (`_metrics.jsonl`, or `name`: `_steps.jsonl` holds
        the values step by step) after byte `offset`.

        `{"offset": next, "rows": [...], "skipped": [why...]}`: a broken line is passed over
        with a note. An analyzer's package holds its training's metrics: those are shown.
        """
        task = self.store.get(task_id)
        if task.package_path is None:
            return {"offset": offset, "rows": [], "skipped": []}
        read = SavePackage(Path(task.package_path)).read_metrics_from(offset, name=name)
        return {"offset": read.offset, "rows": read.rows, "skipped": read.skipped}

    def devices(self) -> list[dict[str, Any]]:
        """Every device with its memory, our reservations and tasks (REST `GET devices`), and
        what other users' schedulers reserved on it (with a box ledger)."""
        return device_rows(
            self.device_source.snapshot(),
            self.store.holding(),
            self.store.settings(),
            self.scheduler.others(),
        )

    def scheduler_status(self) -> dict[str, Any]:
        """Which service schedules this queue (REST `GET scheduler`)."""
        return self.leadership.describe()

    def settings(self) -> Settings:
        return self.store.settings()

    def update_settings(self, changes: dict[str, Any]) -> Settings:
        settings = self.store.update_settings(changes)
        self.tick()  # a raised cap or a newly enabled card may let tasks start now
        return settings

    def new_project(self, path: str | Path, template: str = DEFAULT_TEMPLATE) -> Path:
        return new_project(path, template)

    def output(self, task_id: int, offset: int = 0) -> tuple[int, str]:
        """This task's output after byte `offset` of its package's `_output.txt`: (next offset, text).

        Offsets are the file's, so they stay valid for every task of a package; an offset before
        the task's own start (0 included) reads from that start, so a continued run's watcher does
        not replay the runs before it. Long output comes in parts: follow the returned offset.
        """
        task = self.store.get(task_id)
        # An analyzer's package output is its training's; each experiment has an output of its own.
        if task.package_path is None or task.started_at is None or not self._writes_output(task):
            return max(offset, task.output_start), ""
        return SavePackage(Path(task.package_path)).read_output(max(offset, task.output_start))

    # -- scheduling -------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> list[TaskRecord]:
        """Notice ended tasks, then start every queued task that fits (if this service holds
        the queue's lease); returns those started."""
        with self._tick_lock:
            return self.scheduler.tick(time.time() if now is None else now)

    def start(self) -> None:
        """Run `tick()` on a daemon thread: every `tick_interval_s`, and at once when another
        service writes to the queue."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="dlnest-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop scheduling; running tasks keep running and are re-adopted by the next service."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._tick_lock:
            self.scheduler.close()
        self.executor.close()
        if self.analyzers is not None:
            self.analyzers.close()

    def _run(self) -> None:
        seen, next_tick = None, 0.0
        while not self._stop.is_set():
            try:
                version = self.store.data_version()
                # A leader's death frees the lease: a follower tries for it on every poll.
                took_over = not self.leadership.leading and self.leadership.lead()
                if version != seen or time.monotonic() >= next_tick or took_over:
                    seen, next_tick = version, time.monotonic() + self.tick_interval_s
                    self.tick()
            except Exception:  # the scheduler thread must outlive any one bad tick
                log.exception("dlnest scheduler tick failed")
                next_tick = time.monotonic() + self.tick_interval_s
            self._stop.wait(POLL_INTERVAL_S)

    def _start_now(self, task: TaskRecord) -> TaskRecord:
        """Place right after a submission, not at the next tick; returns the task as it is now.

        A whole tick, reaping included: a task submitted the moment the last one ended gets its
        card now, not a tick later. A service that does not schedule the queue leaves it to the
        leader, which sees the write within a poll.
        """
        started = self.tick()
        # As GET would show it now, live progress included (an analyzer's reply says it is
        # loading), even when the scheduler thread's own pass launched it first.
        now = next((t for t in started if t.id == task.id), None) or self.store.get(task.id)
        return self.with_progress(now)

    def _admit(
        self, memory_mb: int | None, placement: dict[str, Any], on_this_machine: bool = False
    ) -> None:
        """Refuse what can never run; `on_this_machine`: an analyzer, on a cluster only this
        server's machine's cards count."""
        snapshot = self.device_source.snapshot()
        node = snapshot.local_node if on_this_machine else None
        demand = Demand(task_id=0, memory_mb=memory_mb, node=node, **placement)
        reason = admission_error(demand, snapshot, self.store.settings())
        if reason is not None:
            raise TaskError(f"refused: {reason}")

    def _may_stop(self, task: TaskRecord) -> bool:
        """A process any service of this user may signal; a kernel only its own service."""
        return KINDS[task.kind].runner is Runner.PROCESS or self.leadership.answers_for(task.owner)

    def executor_for(self, task: TaskRecord) -> Executor:
        if KINDS[task.kind].runner is Runner.PROCESS:
            return self.executor
        # Queued by a server that had kernels, taken over by one that has none.
        host: Executor = self.analyzers if self.analyzers is not None else _NO_ANALYZERS
        return self._kernels(host) if self._kernels is not None else host

    def _writes_output(self, task: TaskRecord) -> bool:
        """Training processes write the package's output; an analyzer's output is per experiment."""
        return KINDS[task.kind].runner is Runner.PROCESS

    def with_progress(self, task: TaskRecord) -> TaskRecord:
        if task.state is not TaskState.RUNNING or task.package_path is None:
            return task
        if not self._writes_output(task):  # an analyzer reports its own progress
            progress = self.analyzers.progress(task.id) if self.analyzers is not None else {}
            # Another server's kernel: what its owner last recorded (Scheduler tick).
            return task._replace(progress=progress or task.progress)
        return task._replace(progress=SavePackage(Path(task.package_path)).progress())

    def tail(self, task: TaskRecord) -> str | None:
        if not self._writes_output(task) or task.package_path is None:
            return None  # the package's output is its training's, not this analyzer's
        return SavePackage(Path(task.package_path)).output_tail()


def _ended(task: TaskRecord, progress: Mapping[str, Any]) -> dict[str, Any]:
    """A stopped task's last progress; an analyzer's says its kernel ended (not "ready")."""
    if KINDS[task.kind].runner is not Runner.KERNEL:
        return dict(progress)
    return {**{k: v for k, v in progress.items() if k != "kernel"}, "analyzer": AnalyzerState.ENDED}


_NO_ANALYZERS = NoExecutor("this service has no kernel manager for analyzers")
