"""Sweeps: what one asks for (`SweepPlan`), the states of a sweep and its trials, and the rules
that decide what happens next, as pure functions over values.

A sweep is a grid of config values or a search over them, run as ordinary training tasks on the
queue, one per trial (service/sweeps). Here: how many trials to queue now (`trials_to_ask`),
what a trial's objective is from its metric rows (`objective_of`), which trial is best
(`best_trial`), the state of a trial from its task's, and when a sweep has ended. The space
itself (grid points, distributions, dotted keys) is `sweep_space.py`.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import RequestError
from .sweep_space import SweepSpace, space_from_json
from .tasks import TaskState

DIRECTIONS = ("maximize", "minimize")
OBJECTIVES = ("best", "last")  # a trial's objective: the best of its epochs, or its last epoch
PRUNE_RULES = ("none", "median", "hyperband")
DEFAULT_OBJECTIVE, DEFAULT_PRUNE = OBJECTIVES[0], PRUNE_RULES[0]
# Metric names that are better low, for the default direction; anything else is maximised.
_LOWER_IS_BETTER = frozenset(
    {"loss", "err", "error", "perplexity", "ppl", "mse", "mae", "rmse", "nll", "wer", "cer"}
)


class SweepState(enum.StrEnum):
    RUNNING = "running"
    FINISHED = "finished"  # every trial it asked for has ended
    STOPPED = "stopped"  # `del sweep`: its trials were stopped, no more are queued
    FAILED = "failed"  # it cannot go on (its metric is never reported, a trial cannot be queued)

    @property
    def ended(self) -> bool:
        return self is not SweepState.RUNNING


class TrialState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PRUNED = "pruned"
    FAILED = "failed"
    CANCELLED = "cancelled"


_TRIAL_STATES = {
    TaskState.QUEUED: TrialState.QUEUED,
    TaskState.STARTING: TrialState.QUEUED,
    TaskState.RUNNING: TrialState.RUNNING,
    TaskState.SUCCEEDED: TrialState.SUCCEEDED,
    TaskState.PRUNED: TrialState.PRUNED,
    TaskState.FAILED: TrialState.FAILED,
    TaskState.CANCELLED: TrialState.CANCELLED,
}


def trial_state(task_state: TaskState) -> TrialState:
    return _TRIAL_STATES[task_state]


ACTIVE_TRIAL_STATES = frozenset({TrialState.QUEUED, TrialState.RUNNING})


def trials_active(trials: Iterable[Mapping[str, Any]]) -> int:
    """How many of REST's trial objects are queued or running."""
    return sum(1 for trial in trials if trial["state"] in ACTIVE_TRIAL_STATES)


def default_direction(metric: str) -> str:
    """`minimize` for a metric named like a loss or an error (one of its words: `val_loss`,
    `top1_err`; not `answer_acc`), else `maximize`."""
    words = re.split(r"[^a-z0-9]+", metric.lower())
    return "minimize" if any(word in _LOWER_IS_BETTER for word in words) else "maximize"


@dataclass(frozen=True)
class SweepPlan:
    """A sweep as asked for: what its trials run and vary, how many, and how they are judged.

    `trials`: how many trials in all (a grid alone: its size). `parallel`: at most this many
    queued or running at once; None: as many as the cards hold (one waits in the queue while
    the others run). `metric` None: the trials are only run, none is judged or pruned.
    """

    config_path: str
    space: SweepSpace
    trials: int
    freq_path: str | None = None
    parallel: int | None = None
    metric: str | None = None
    direction: str = "maximize"
    objective: str = DEFAULT_OBJECTIVE
    prune: str = DEFAULT_PRUNE
    seed: int | None = None
    memory_mb: int | None = None
    cpu: bool = False
    description: str = ""
    warnings: tuple[str, ...] = field(default=())

    @property
    def searched(self) -> bool:
        """A search (TPE samples every key) rather than every point of a grid in turn."""
        return bool(self.space.search)

    @property
    def needs_optuna(self) -> bool:
        """A search or a pruner needs Optuna; a grid alone is walked point by point without it."""
        return self.searched or self.prune != DEFAULT_PRUNE

    def to_json(self) -> dict[str, Any]:
        return {
            "config_path": self.config_path,
            "freq_path": self.freq_path,
            **self.space.to_json(),
            "trials": self.trials,
            "parallel": self.parallel,
            "metric": self.metric,
            "direction": self.direction,
            "objective": self.objective,
            "prune": self.prune,
            "seed": self.seed,
            "memory_mb": self.memory_mb,
            "cpu": self.cpu,
            "description": self.description,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> SweepPlan:
        """A stored plan (checked when it was made; read back as it was written)."""
        names = ("freq_path", "parallel", "metric", "direction", "objective", "prune", "seed")
        return cls(
            config_path=raw["config_path"],
            space=space_from_json(raw["grid"], raw["search"]),
            trials=raw["trials"],
            memory_mb=raw.get("memory_mb"),
            cpu=bool(raw.get("cpu")),
            description=raw.get("description", ""),
            **{name: raw[name] for name in names if raw.get(name) is not None},
        )


def planned(
    config_path: str,
    space: SweepSpace,
    *,
    trials: int | None = None,
    metric: str | None = None,
    direction: str | None = None,
    prune: str = DEFAULT_PRUNE,
    **rest: Any,
) -> SweepPlan:
    """A plan from a request's checked fields, refusing what cannot make a sweep."""
    if space.search and trials is None:
        raise RequestError("a search needs --trials N (REST: 'trials'): how many to run in all")
    if metric is None and (space.search or prune != DEFAULT_PRUNE):
        what = "a search" if space.search else "pruning"
        raise RequestError(f"{what} needs --metric KEY: the value of _metrics.jsonl to judge by")
    if trials is None:
        trials = space.grid_size
    warnings: list[str] = []
    if not space.search and trials > space.grid_size:
        warnings.append(f"the grid has {space.grid_size} points: it runs {space.grid_size} trials")
        trials = space.grid_size
    if direction is None:
        direction = default_direction(metric) if metric else "maximize"
    return SweepPlan(
        config_path,
        space,
        trials,
        metric=metric,
        direction=direction,
        prune=prune,
        warnings=tuple(warnings),
        **rest,
    )


FAILURES_BEFORE_GIVING_UP = 3


def hopeless(states: Iterable[TrialState], trials: int) -> bool:
    """The first trials all failed (a typo in the project, a crash at import): each further
    trial would only fail the same way, so the sweep stops queueing them. A sweep of fewer
    trials than that whose every trial failed has failed too, not finished."""
    states = list(states)
    succeeded = any(state in (TrialState.SUCCEEDED, TrialState.PRUNED) for state in states)
    failed = states.count(TrialState.FAILED)
    return not succeeded and failed >= min(FAILURES_BEFORE_GIVING_UP, trials)


def trials_to_ask(plan: SweepPlan, asked: int, active: int, waiting: int) -> int:
    """How many trials to queue now: `asked` so far, `active` of them queued or running,
    `waiting` of those queued. Without `parallel`, one waits in the queue at a time: the
    scheduler starts it as soon as it fits, so the cards decide how many run."""
    left = plan.trials - asked
    room = plan.parallel - active if plan.parallel is not None else 1 - waiting
    return max(0, min(left, room))


def objective_of(values: Sequence[float], plan: SweepPlan) -> float | None:
    """A trial's objective from its metric's values, epoch by epoch: the best or the last."""
    if not values:
        return None
    if plan.objective == "last":
        return values[-1]
    return max(values) if plan.direction == "maximize" else min(values)


def metric_value(row: Mapping[str, Any], metric: str) -> float | None:
    """The metric in one `_metrics.jsonl` row, if it is a finite number there."""
    value = row.get(metric)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class TrialView:
    """One trial as a reader sees it (REST's trial object)."""

    number: int
    task_id: int
    params: Mapping[str, Any]
    state: TrialState
    value: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "task_id": self.task_id,
            "params": dict(self.params),
            "state": self.state.value,
            "value": self.value,
        }


def best_trial(trials: Iterable[TrialView], direction: str) -> TrialView | None:
    """The succeeded trial with the best objective (the earliest of equals)."""
    judged = [t for t in trials if t.state is TrialState.SUCCEEDED and t.value is not None]
    if not judged:
        return None
    sign = -1.0 if direction == "maximize" else 1.0
    return min(judged, key=lambda t: (sign * (t.value or 0.0), t.number))


def best_first(trials: Iterable[TrialView], direction: str) -> list[TrialView]:
    """Trials with a value best first, then those without, by number."""
    sign = -1.0 if direction == "maximize" else 1.0
    return sorted(
        trials,
        key=lambda t: (t.value is None, sign * t.value if t.value is not None else 0.0, t.number),
    )


def value_text(value: Any) -> str:
    """An objective as shown (4 significant digits; nothing for no value)."""
    finite = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return f"{value:.4g}" if finite else ""


def param_text(value: Any) -> str:
    """A trial's value of one key as shown: text as it is, a float to 4 significant digits (a
    searched learning rate is 0.01137, not 0.011367330868956235), anything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return json.dumps(value)


def params_text(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={param_text(value)}" for key, value in params.items())
