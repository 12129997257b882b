"""The sweep verbs the API calls: make a sweep, read one or all, stop one.

A sweep is checked whole before anything is stored: its keys must name something in the merged
config, its distributions must be well formed (`core/sweep_space.py`), a search needs a metric
and a trial count (`core/sweeps.planned`), what its trials reserve must fit a card, and a
search or a pruner needs Optuna. Its trials are queued by the scheduling server's driver
(`driver.py`), which may be another server on the queue.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from ...core.checkpoints import TrackLimits
from ...core.errors import RequestError, TaskStateError
from ...core.fields import FieldSpec, boolean, integer, one_of, optional, path, text
from ...core.sweep_book import SweepRow
from ...core.sweep_space import MAX_GRID_POINTS, check_keys, space_from_json
from ...core.sweeps import (
    DEFAULT_OBJECTIVE,
    DIRECTIONS,
    OBJECTIVES,
    PRUNE_RULES,
    SweepState,
    best_trial,
    planned,
)
from ...core.tasks import TaskState
from ..event_log import EventLog
from ..stopping import Stopper
from ..submissions import Intake, admit
from .driver import journal_path
from .engines import OPTUNA_MISSING, optuna_available


def _any(value: Any) -> str | None:
    return None  # grid and search are checked whole by core/sweep_space.py


# `POST sweeps`: the magic's flags as fields (DESIGN.md section 6).
SWEEP_FIELDS = {
    "config_path": FieldSpec(path, required=True),
    "freq_path": FieldSpec(optional(path)),
    "grid": FieldSpec(_any),
    "search": FieldSpec(_any),
    "trials": FieldSpec(optional(integer(1, MAX_GRID_POINTS))),
    "parallel": FieldSpec(optional(integer(1))),
    "metric": FieldSpec(optional(text(255))),
    "direction": FieldSpec(optional(one_of(*DIRECTIONS))),
    "objective": FieldSpec(one_of(*OBJECTIVES)),
    "prune": FieldSpec(one_of(*PRUNE_RULES)),
    "seed": FieldSpec(optional(integer(0, 2**32 - 1))),
    "memory_mb": FieldSpec(optional(integer(1))),
    "cpu": FieldSpec(boolean),
    "description": FieldSpec(text()),
}
SWEEP_PATHS = ("config_path", "freq_path")


class SweepVerbs:
    def __init__(
        self,
        intake: Intake,
        stopper: Stopper,
        paused: Callable[[], AbstractContextManager[None]],
        tick: Callable[[], object],
        events: EventLog,
    ) -> None:
        """`paused`: the scheduling loop's lock (no pass in between); `tick`: a pass, now or
        (where launches take seconds) at once on the scheduler's thread."""
        self.intake, self.stopper, self.events = intake, stopper, events
        self._paused, self._tick = paused, tick
        self.book = intake.store.sweeps

    def submit(
        self,
        config_path: str,
        *,
        grid: Any = None,
        search: Any = None,
        freq_path: str | None = None,
        metric: str | None = None,
        objective: str = DEFAULT_OBJECTIVE,
        memory_mb: int | None = None,
        cpu: bool = False,
        **rest: Any,
    ) -> tuple[dict[str, Any], list[str]]:
        """Check and store a sweep, then a pass at once (its first trials queue); returns the
        sweep as `GET sweeps/{id}` answers it, and what the request was warned of."""
        space = space_from_json(grid, search)
        checked = self.intake.projects.check(config_path, freq_path)
        loaded = checked.loaded
        check_keys(space, loaded.args)
        TrackLimits.from_args(loaded.args, loaded.blame("checkpoint_args"))
        if metric is not None and not metric.strip():
            raise RequestError("field 'metric' must name a metric, not be blank")
        if cpu and rest.get("parallel") is None:
            # The CPU "holds" any number of tasks: without a cap every trial would start at
            # once on the same cores; half of them run side by side instead.
            rest["parallel"] = max(1, (os.cpu_count() or 2) // 2)
        plan = planned(
            str(config_path),
            space,
            freq_path=freq_path and str(freq_path),
            metric=metric,
            objective=objective,
            memory_mb=memory_mb,
            cpu=cpu,
            **rest,
        )
        if plan.needs_optuna and not optuna_available():
            raise RequestError(OPTUNA_MISSING)
        admit(self.intake, memory_mb, {"cpu": cpu, "multi_gpu": False, "ddp": False})
        sweep = self.book.create(plan)
        what = f"{plan.trials} trials of {config_path}"
        self.events.write(f"sweep {sweep.id} made: {what}, varying {', '.join(plan.space.keys)}")
        self._tick()
        warnings = [*loaded.warnings, *plan.warnings]
        return self.get(sweep.id), warnings

    def get(self, sweep_id: int) -> dict[str, Any]:
        return self._json(self.book.get(sweep_id))

    def all(self) -> list[dict[str, Any]]:
        return [self._json(sweep) for sweep in self.book.all()]

    def stop(self, sweep_id: int) -> dict[str, Any]:
        """Queue no more trials, and stop those queued or running (they read `cancelled`)."""
        with self._paused():
            sweep = self.book.end(sweep_id, SweepState.STOPPED, "stopped")
            for trial in self.book.trials(sweep_id):
                if not trial.task_state.terminal:
                    with contextlib.suppress(TaskStateError):  # it ended meanwhile
                        self.stopper.stop(
                            trial.task_id, TaskState.CANCELLED, f"sweep {sweep_id} stopped"
                        )
        self.events.write(f"sweep {sweep_id} stopped")
        self._tick()
        return self._json(sweep)

    def _json(self, sweep: SweepRow) -> dict[str, Any]:
        """REST's SWEEP object."""
        plan = sweep.plan
        trials = [t.view() for t in self.book.trials(sweep.id)]
        best = best_trial(trials, plan.direction)
        journal = journal_path(self.intake.store.path, sweep)
        return {
            "id": sweep.id,
            "state": sweep.state.value,
            "note": sweep.note,
            "metric": plan.metric,
            "direction": plan.direction,
            "objective": plan.objective,
            "prune": plan.prune,
            "description": plan.description,
            "config_path": plan.config_path,
            "freq_path": plan.freq_path,
            **plan.space.to_json(),
            "trials_total": plan.trials,
            "parallel": plan.parallel,
            "created_at": sweep.created_at,
            "ended_at": sweep.ended_at,
            "journal": str(journal) if journal.exists() else None,
            "best": best.to_json() if best is not None else None,
            "trials": [trial.to_json() for trial in trials],
        }
