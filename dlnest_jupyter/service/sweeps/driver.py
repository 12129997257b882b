"""The scheduling server's part of each pass for the sweeps: follow, prune, tell, queue.

Run by the scheduler between noticing ends and placing (`scheduler.py`), under the loop's lock
and only while this service holds the queue's lease, so one driver at a time moves a sweep.
For each sweep still running or with trials not yet told:

1. trials asked for but never queued (the server died between asking and queueing) are queued;
2. each trial's new metric rows are read from its package's `_metrics.jsonl`: its objective so
   far is stored, and with a pruner each new epoch is reported; a trial to prune is stopped,
   ending `pruned` with the rule's words;
3. each ended trial is told to the engine once (`told`, kept with the trial, survives restarts);
4. new trials are queued (`core/sweeps.trials_to_ask`), each an ordinary train task whose
   package's config holds its values; the sweep finishes when its last trial is told.

Everything it decides is stored before it acts on the engine, and the engine is told nothing
twice (`skip_if_finished`), so a driver that takes over after a crash carries on where the
last one stopped: no trial lost, none run twice, none told twice.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ...core.errors import DLNestError, SweepStateError, TaskStateError
from ...core.package import SavePackage
from ...core.sweep_book import SweepRow, TrialRef, TrialRow
from ...core.sweeps import (
    SweepPlan,
    SweepState,
    TrialState,
    hopeless,
    metric_value,
    objective_of,
    params_text,
    trial_state,
    trials_to_ask,
)
from ...core.tasks import TaskState
from ..event_log import EventLog
from ..stopping import Stopper
from ..submissions import Intake, submit_train
from .engines import Engine, engine_for

log = logging.getLogger(__name__)
_ACTIVE = (TaskState.QUEUED, TaskState.STARTING, TaskState.RUNNING)
_TROUBLE = "could not go on:"  # the note of a sweep an unexpected error holds up
_UNSEEN = "not seen yet: metric"


@dataclass
class _Followed:
    """What the driver has read of one trial's metric rows."""

    offset: int = 0
    values: list[float] = field(default_factory=list)  # the metric, epoch by epoch
    epochs: list[int] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)  # every metric its rows hold


def journal_path(database: Path, sweep: SweepRow) -> Path:
    """A sweep's Optuna journal, beside the queue's database (optuna-dashboard opens it). Named
    by its creation time too: a queue made afresh numbers its sweeps from 1 again, and must not
    carry on an old queue's study left beside it."""
    return database.with_name(f"{database.stem}.{study_name(sweep)}.journal")


def study_name(sweep: SweepRow) -> str:
    return f"sweep-{sweep.id}-{int(sweep.created_at)}"


class SweepDriver:
    def __init__(self, intake: Intake, stopper: Stopper, events: EventLog) -> None:
        self.intake, self.stopper, self.events = intake, stopper, events
        self.book = intake.store.sweeps
        self._engines: dict[int, Engine] = {}
        self._followed: dict[int, _Followed] = {}  # task id -> what was read of its metrics
        self._troubles: dict[int, str] = {}  # sweep id -> the last unexpected error, logged once

    def drive(self) -> int:
        """One pass over the sweeps; returns how many trials it queued."""
        queued = 0
        for sweep in self.book.to_drive():
            try:
                queued += self._drive(sweep)
            except DLNestError as error:  # the sweep cannot go on (Optuna missing, a bad config)
                self._fail(sweep, str(error))
            except Exception as error:  # one sweep's trouble must not stop the pass for the others
                said = f"{type(error).__name__}: {error}"
                if self._troubles.get(sweep.id) != said:  # once, not every pass
                    log.exception("sweep %s: could not drive it", sweep.id)
                    self._troubles[sweep.id] = said
                    self.events.write(f"sweep {sweep.id}: {_TROUBLE} {said}")
                    # Said where the user looks, not only in the server's log: a sweep that
                    # shows running with no trials and no word would seem to hang.
                    self.book.set_note(sweep.id, f"{_TROUBLE} {said}; tried again each pass")
            else:
                if self._troubles.pop(sweep.id, None) is not None:
                    self._clear_trouble(sweep.id)
        return queued

    def _clear_trouble(self, sweep_id: int) -> None:
        """It went on: its trouble note goes, and only that (the pass may have ended it with
        a note of its own)."""
        if (self.book.get(sweep_id).note or "").startswith(_TROUBLE):
            self.book.set_note(sweep_id, None)

    def forget(self) -> None:
        """Drop what was loaded: another server drives the sweeps now (it may tell them)."""
        self._engines, self._followed = {}, {}

    # -- one sweep --------------------------------------------------------------------------
    def _drive(self, sweep: SweepRow) -> int:
        engine = self._engine(sweep)
        trials = self.book.trials(sweep.id)
        queued = self._queue_lost(sweep, engine, trials)
        for trial in trials:
            if not trial.told:
                self._follow(sweep, engine, trial)
        # Once more, after following: what it told, pruned and queued (and the sweep's state,
        # which following may have ended).
        trials, sweep = self.book.trials(sweep.id), self.book.get(sweep.id)
        if sweep.state is SweepState.RUNNING and hopeless(
            (t.view().state for t in trials), sweep.plan.trials
        ):
            failed = [t for t in trials if t.task_state is TaskState.FAILED]
            if len(failed) < sweep.plan.trials:
                why = f"its first {len(failed)} trials failed"
            else:
                why = "its only trial failed" if len(failed) == 1 else "all its trials failed"
            why += f"; task {failed[0].task_id}: "
            self._fail(sweep, why + (failed[0].error or "no error said"))
            sweep = self.book.get(sweep.id)
        if sweep.state is SweepState.RUNNING:
            queued += self._queue_next(sweep, engine, trials)
        else:
            self._stop_stragglers(sweep, trials)
        if not queued and all(t.told for t in trials):  # a trial just queued is not told
            self._engines.pop(sweep.id, None)
        return queued

    def _engine(self, sweep: SweepRow) -> Engine:
        if sweep.id not in self._engines:
            database = self.intake.store.path
            self._engines[sweep.id] = engine_for(
                sweep.plan, journal_path(database, sweep), study_name(sweep)
            )
        return self._engines[sweep.id]

    def _follow(self, sweep: SweepRow, engine: Engine, trial: TrialRow) -> None:
        """Read the trial's new metric rows, prune it if its engine says so, and tell its end."""
        plan, state = sweep.plan, trial.task_state
        followed = self._read(trial, plan.metric, whole=state.terminal)
        if followed.keys and not followed.values and sweep.note is None:
            self._metric_unseen(sweep, trial, followed)
        elif followed.values and (sweep.note or "").startswith(_UNSEEN):
            self.book.set_note(sweep.id, None)  # it came after all
        if state is TaskState.RUNNING and plan.metric is not None:
            for epoch, reached in zip(followed.epochs, followed.values, strict=True):
                why = engine.report(trial.number, epoch, reached)
                if why is not None:
                    state = self._prune(trial, why)
                    break
        if state is TaskState.PRUNED:  # all it wrote before it stopped counts
            followed = self._read(trial, plan.metric, whole=True)
        value = objective_of(followed.values, plan)
        if not state.terminal:
            if value != trial.value:
                self.book.set_value(sweep.id, trial.number, value)
            return
        ended = trial_state(state)
        if ended is TrialState.SUCCEEDED and plan.metric is not None and value is None:
            if plan.metric not in followed.keys:
                self._metric_missing(sweep, trial, followed)
            ended = TrialState.FAILED  # NaN, or not a number: nothing the engine can learn from
        engine.tell(trial.number, ended, value)
        self.book.mark_told(sweep.id, trial.number, value)
        self._followed.pop(trial.task_id, None)

    def _read(self, trial: TrialRow, metric: str | None, whole: bool = False) -> _Followed:
        """The trial's metric rows not read yet; `whole`: to the end of the file (an ended
        trial's objective must not come from the first chunk of a long file)."""
        followed = self._followed.setdefault(trial.task_id, _Followed())
        if trial.package_path is None or metric is None:
            return followed
        package = SavePackage(Path(trial.package_path))
        while True:
            read = package.read_metrics_from(followed.offset)
            advanced = read.offset != followed.offset
            followed.offset = read.offset
            for row in read.rows:
                followed.keys.update(k for k in row if not k.startswith("_") and k != "epoch")
                value = metric_value(row, metric)
                epoch = row.get("epoch")
                if value is not None and isinstance(epoch, int):
                    followed.values.append(value)
                    followed.epochs.append(epoch)
            if not (whole and advanced):
                return followed

    def _prune(self, trial: TrialRow, why: str) -> TaskState:
        try:
            self.stopper.stop(trial.task_id, TaskState.PRUNED, why)
        except TaskStateError:  # it ended meanwhile: it is told as it ended, next pass
            return TaskState.RUNNING
        self.events.write(f"task {trial.task_id} {why}")
        return TaskState.PRUNED

    def _metric_unseen(self, sweep: SweepRow, trial: TrialRow, followed: _Followed) -> None:
        """Said as soon as a trial's first metric rows lack the metric (it may come later: a
        validation every few epochs); the sweep fails if the trial ends without it."""
        note = (
            f"{_UNSEEN} {sweep.plan.metric!r} is not among what trial {trial.number} reported "
            f"so far: {', '.join(sorted(followed.keys))}"
        )
        self.book.set_note(sweep.id, note)
        self.events.write(f"sweep {sweep.id}: {note}")

    def _metric_missing(self, sweep: SweepRow, trial: TrialRow, followed: _Followed) -> None:
        """A trial ran to its end without the sweep's metric: every other will too."""
        metric = sweep.plan.metric
        keys = ", ".join(sorted(followed.keys)) or "no metrics at all"
        why = (
            f"metric {metric!r} is not among what trial {trial.number} (task {trial.task_id}) "
            f"reported in _metrics.jsonl: {keys}"
        )
        self._fail(sweep, why)

    # -- queueing ---------------------------------------------------------------------------
    def _queue_lost(self, sweep: SweepRow, engine: Engine, trials: list[TrialRow]) -> int:
        if sweep.state is not SweepState.RUNNING:
            return 0
        lost = engine.lost({t.number for t in trials})
        for number, params in lost:
            self.events.write(f"sweep {sweep.id}: trial {number} was asked for, never queued")
            self._submit(sweep, number, params)
        return len(lost)

    def _queue_next(self, sweep: SweepRow, engine: Engine, trials: list[TrialRow]) -> int:
        plan = sweep.plan
        active = [t for t in trials if t.task_state in _ACTIVE]
        waiting = [t for t in active if t.task_state is not TaskState.RUNNING]
        wanted = trials_to_ask(plan, len(trials), len(active), len(waiting))
        next_number = max((t.number for t in trials), default=-1) + 1
        for _ in range(wanted):
            number, params = engine.ask(next_number)
            try:
                self._submit(sweep, number, params)
            except SweepStateError:  # stopped meanwhile by another server
                engine.tell(number, TrialState.CANCELLED, None)
                return 0
            except DLNestError:
                engine.tell(number, TrialState.FAILED, None)
                raise
            next_number = number + 1
        if not wanted and len(trials) >= plan.trials and not active and all(t.told for t in trials):
            self.book.end(sweep.id, SweepState.FINISHED)
            self.events.write(f"sweep {sweep.id} finished: {len(trials)} trials")
        return wanted

    def _submit(self, sweep: SweepRow, number: int, params: dict[str, object]) -> None:
        plan = sweep.plan
        task = submit_train(
            self.intake,
            plan.config_path,
            freq_path=plan.freq_path,
            description=trial_description(sweep.id, plan, number, params),
            memory_mb=plan.memory_mb,
            cpu=plan.cpu,
            trial=TrialRef(sweep.id, number, params),
        )
        self.events.write(f"sweep {sweep.id}: trial {number} is task {task.id}")

    # -- ends -------------------------------------------------------------------------------
    def _stop_stragglers(self, sweep: SweepRow, trials: Iterable[TrialRow]) -> None:
        """A stopped or failed sweep's trials still queued or running are stopped (one queued
        by this driver while another server stopped the sweep, a stop cut short)."""
        for trial in trials:
            if trial.task_state in _ACTIVE:
                with contextlib.suppress(TaskStateError):
                    self.stopper.stop(trial.task_id, error=f"sweep {sweep.id} {sweep.state}")

    def _fail(self, sweep: SweepRow, why: str) -> None:
        try:
            failed = self.book.end(sweep.id, SweepState.FAILED, why)
        except SweepStateError:
            return
        self.events.write(f"sweep {sweep.id} failed: {why}")
        # Its trials say why they stopped: "sweep 2 failed", not the state it was read in.
        self._stop_stragglers(failed, self.book.trials(sweep.id))


def trial_description(
    sweep_id: int, plan: SweepPlan, number: int, params: dict[str, object]
) -> str:
    return f"{plan.description or f'sweep {sweep_id}'} #{number}: {params_text(params)}"
