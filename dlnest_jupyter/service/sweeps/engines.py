"""What suggests a sweep's next values and decides which trials to prune.

A grid alone is walked point by point (`GridEngine`): no Optuna needed. A search, or any
pruning, uses Optuna's ask-and-tell (`OptunaEngine`) as an engine only, never as a scheduler:
the study lives in a journal file beside the queue's database (Optuna's advice for several
processes on one host), and only the scheduling server drives it, so a server that takes over
loads the same study and carries on. Optuna cannot hand a live trial to another process
(optuna #2987): the driver reports each trial's metric here, from the trial's metric rows.
"""

from __future__ import annotations

import json
import logging
import statistics
from pathlib import Path
from typing import Any, Protocol

from ...core.errors import DLNestError
from ...core.sweep_space import Distribution
from ...core.sweeps import DEFAULT_PRUNE, SweepPlan, TrialState

# Pruning starts once two trials have ended, and never at a trial's first epoch (DLNest counts
# epochs from 1; Optuna prunes from step `n_warmup_steps` on): Optuna's median default of 5
# startup trials would prune nothing in most sweeps people run here.
MEDIAN_STARTUP_TRIALS = 2
MEDIAN_WARMUP_EPOCHS = 2
OPTUNA_MISSING = (
    "a search or pruning needs Optuna, which is not installed: "
    "pip install 'dlnest-jupyter[sweeps]' (a grid alone, without --prune, does not)"
)


class Engine(Protocol):
    def ask(self, number: int) -> tuple[int, dict[str, Any]]:
        """The next trial: its number (`number` if the engine keeps no numbers) and values."""
        ...

    def lost(self, known: set[int]) -> list[tuple[int, dict[str, Any]]]:
        """Trials asked for whose task was never queued (the server died in between)."""
        ...

    def report(self, number: int, epoch: int, value: float) -> str | None:
        """A trial's metric at an epoch; returns why to prune it, or None to let it run."""
        ...

    def tell(self, number: int, state: TrialState, value: float | None) -> None:
        """How a trial ended (told at most once per trial; telling again changes nothing)."""
        ...


class GridEngine:
    """Every point of the grid in turn (trial n is point n), with no pruning."""

    def __init__(self, plan: SweepPlan) -> None:
        self.plan = plan

    def ask(self, number: int) -> tuple[int, dict[str, Any]]:
        return number, self.plan.space.grid_point(number)

    def lost(self, known: set[int]) -> list[tuple[int, dict[str, Any]]]:
        return []  # a number is used only by the task stored with it

    def report(self, number: int, epoch: int, value: float) -> str | None:
        return None

    def tell(self, number: int, state: TrialState, value: float | None) -> None:
        pass


def engine_for(plan: SweepPlan, journal: Path, study_name: str) -> Engine:
    if not plan.needs_optuna:
        return GridEngine(plan)
    return OptunaEngine(plan, journal, study_name)


def optuna_available() -> bool:
    try:
        import optuna  # noqa: F401
    except ImportError:
        return False
    return True


class OptunaEngine:
    def __init__(self, plan: SweepPlan, journal: Path, study_name: str) -> None:
        try:
            import optuna
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend
        except ImportError:
            raise DLNestError(OPTUNA_MISSING) from None
        optuna.logging.set_verbosity(logging.WARNING)  # not a line per trial in the server's log
        self.plan, self._optuna = plan, optuna
        journal.parent.mkdir(parents=True, exist_ok=True)
        self._choices: dict[str, dict[str, Any]] = {}  # key -> encoded choice -> its value
        self._distributions = {
            **{
                key: self._categorical(key, list(values)) for key, values in plan.space.grid.items()
            },
            **{key: self._distribution(key, d) for key, d in plan.space.search.items()},
        }
        # constant_liar: trials running side by side are not given the same values; its
        # default changed between Optuna 4.9 and 5.0, so it is set here. A grid that prunes
        # enqueues each trial's point itself (`ask`), in the grid's order, as `GridEngine` does.
        # The seed goes on from the trials already asked: a driver that takes over with the
        # sampler seeded afresh would suggest the first trials' values again.
        storage = JournalStorage(JournalFileBackend(str(journal)))
        asked = _trials_in(storage, study_name)
        seed = None if plan.seed is None else plan.seed + asked
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
        self.study = optuna.create_study(
            study_name=study_name,
            storage=storage,
            direction=plan.direction,  # type: ignore[arg-type]  # checked: DIRECTIONS
            sampler=sampler,
            pruner=self._pruner(),
            load_if_exists=True,  # a server that takes over carries the same study on
        )
        self._live: dict[int, Any] = {}  # trial number -> optuna.Trial, while it runs
        self._reported: dict[int, set[int]] = {}  # trial number -> epochs reported

    def ask(self, number: int) -> tuple[int, dict[str, Any]]:
        if not self.plan.searched:  # trial n is the grid's point n, as without Optuna
            trials = self.study.get_trials(deepcopy=False)
            if not any(t.state == self._state("WAITING") for t in trials):  # else: its turn now
                point = self.plan.space.grid_point(len(trials))
                self.study.enqueue_trial({key: _encoded(value) for key, value in point.items()})
        trial = self.study.ask(self._distributions)
        self._live[trial.number] = trial
        self._reported[trial.number] = set()
        return trial.number, self._decoded(trial.params)

    def lost(self, known: set[int]) -> list[tuple[int, dict[str, Any]]]:
        running = self.study.get_trials(deepcopy=False, states=(self._state("RUNNING"),))
        return [(t.number, self._decoded(t.params)) for t in running if t.number not in known]

    def report(self, number: int, epoch: int, value: float) -> str | None:
        if self.plan.prune == DEFAULT_PRUNE:
            return None
        trial = self._trial(number)
        if trial is None or epoch in self._reported[number]:
            return None  # already told, or this epoch reported before a takeover
        trial.report(value, epoch)
        self._reported[number].add(epoch)
        if not trial.should_prune():
            return None
        return self._why_pruned(number, epoch, value)

    def tell(self, number: int, state: TrialState, value: float | None) -> None:
        finished = self._optuna.trial.TrialState
        if state is TrialState.SUCCEEDED and value is not None:
            self.study.tell(number, value, skip_if_finished=True)
        elif state is TrialState.PRUNED:
            self.study.tell(number, state=finished.PRUNED, skip_if_finished=True)
        else:  # failed, cancelled, or succeeded without its metric: nothing to learn from
            self.study.tell(number, state=finished.FAIL, skip_if_finished=True)
        self._live.pop(number, None)
        self._reported.pop(number, None)

    # -- plumbing ---------------------------------------------------------------------------
    def _trial(self, number: int) -> Any:
        """The live trial, also after a takeover (rebuilt from the journal: optuna #2987)."""
        if number in self._live:
            return self._live[number]
        frozen = next(
            (t for t in self.study.get_trials(deepcopy=False) if t.number == number), None
        )
        if frozen is None or frozen.state != self._state("RUNNING"):
            return None
        trial = self._optuna.trial.Trial(self.study, frozen._trial_id)
        self._live[number] = trial
        self._reported[number] = set(frozen.intermediate_values)
        return trial

    def _why_pruned(self, number: int, epoch: int, value: float) -> str:
        """The rule's words: the median rule compares the trial's best so far with the median
        of the completed trials at that epoch, as Optuna's MedianPruner does."""
        metric, trials = self.plan.metric, self.study.get_trials(deepcopy=False)
        reached = next(t for t in trials if t.number == number).intermediate_values.values()
        best = (
            max(reached, default=value)
            if self.plan.direction == "maximize"
            else min(reached, default=value)
        )
        if self.plan.prune == "hyperband":
            return f"pruned by the hyperband rule at epoch {epoch}: {metric} {best:.4g}"
        complete = self.study.get_trials(deepcopy=False, states=(self._state("COMPLETE"),))
        others = [t.intermediate_values[epoch] for t in complete if epoch in t.intermediate_values]
        if not others:
            return f"pruned by the median rule at epoch {epoch}: {metric} {best:.4g}"
        worse = "<" if self.plan.direction == "maximize" else ">"
        return (
            f"pruned by the median rule at epoch {epoch}: {metric} {best:.4g} {worse} "
            f"median {statistics.median(others):.4g}"
        )

    def _pruner(self) -> Any:
        pruners = self._optuna.pruners
        if self.plan.prune == "median":
            return pruners.MedianPruner(
                n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=MEDIAN_WARMUP_EPOCHS
            )
        if self.plan.prune == "hyperband":
            return pruners.HyperbandPruner(min_resource=1, max_resource="auto", reduction_factor=3)
        return pruners.NopPruner()

    def _state(self, name: str) -> Any:
        return getattr(self._optuna.trial.TrialState, name)

    def _distribution(self, key: str, distribution: Distribution) -> Any:
        d = self._optuna.distributions
        low, high = distribution.low, distribution.high
        if distribution.kind == "choice":
            return self._categorical(key, list(distribution.choices))
        assert low is not None and high is not None
        if distribution.kind == "int":
            return d.IntDistribution(int(low), int(high))
        return d.FloatDistribution(low, high, log=distribution.kind == "loguniform")

    def _categorical(self, key: str, values: list[Any]) -> Any:
        """Each choice goes to Optuna as its JSON text and comes back as itself: Optuna takes
        only None, bools, numbers and strings, and as dict keys 1, 1.0 and True are one."""
        encoded = {_encoded(value): value for value in values}
        self._choices[key] = encoded
        return self._optuna.distributions.CategoricalDistribution(list(encoded))

    def _decoded(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            key: self._choices[key].get(value, value) if key in self._choices else value
            for key, value in params.items()
        }


def _encoded(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _trials_in(storage: Any, study_name: str) -> int:
    """How many trials the study holds already (0 for a new one)."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))
