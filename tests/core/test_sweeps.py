from __future__ import annotations

from pathlib import Path

import pytest

from dlnest_jupyter.core.errors import SweepNotFoundError, SweepStateError
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.core.sweep_book import TrialRef
from dlnest_jupyter.core.sweep_space import space_from_json
from dlnest_jupyter.core.sweeps import (
    SweepPlan,
    SweepState,
    TrialState,
    TrialView,
    best_first,
    best_trial,
    default_direction,
    hopeless,
    objective_of,
    planned,
    trials_to_ask,
)
from dlnest_jupyter.core.tasks import TaskKind, TaskState

GRID = space_from_json({"a": [1, 2, 3], "b": ["x", "y"]}, None)
SEARCH = space_from_json(None, {"lr": {"distribution": "loguniform", "low": 1e-4, "high": 1e-1}})


def test_grid_point_n_is_the_nth_combination_with_the_first_key_slowest() -> None:
    assert [GRID.grid_point(n) for n in range(GRID.grid_size)] == list(GRID.grid_points())


def test_without_parallel_one_trial_waits_while_the_cards_decide_how_many_run() -> None:
    plan = planned("r.json", GRID)
    assert trials_to_ask(plan, asked=0, active=0, waiting=0) == 1
    assert trials_to_ask(plan, asked=3, active=3, waiting=1) == 0
    assert trials_to_ask(plan, asked=3, active=2, waiting=0) == 1
    assert trials_to_ask(plan, asked=6, active=0, waiting=0) == 0  # the grid is done


def test_parallel_caps_the_queued_and_running_trials_and_trials_the_total() -> None:
    plan = planned("r.json", SEARCH, trials=5, parallel=2, metric="acc")
    assert trials_to_ask(plan, asked=0, active=0, waiting=0) == 2
    assert trials_to_ask(plan, asked=2, active=1, waiting=0) == 1
    assert trials_to_ask(plan, asked=4, active=0, waiting=0) == 1


def test_a_trial_is_judged_by_its_best_or_its_last_epoch_in_the_sweeps_direction() -> None:
    values = [0.3, 0.9, 0.5]
    assert objective_of(values, planned("r", GRID, metric="acc")) == 0.9
    assert objective_of(values, planned("r", GRID, metric="val_loss")) == 0.3
    assert objective_of(values, planned("r", GRID, metric="acc", objective="last")) == 0.5
    assert objective_of([], planned("r", GRID, metric="acc")) is None


def test_the_direction_defaults_to_minimize_for_losses_and_errors_only() -> None:
    metrics = ("val_loss", "top1-err", "acc", "score", "answer_acc", "power", "cancer_auc")
    assert [default_direction(m) for m in metrics] == ["minimize"] * 2 + ["maximize"] * 5


def test_the_best_trial_is_a_succeeded_one_and_the_rest_follow_best_first() -> None:
    trials = [
        TrialView(0, 10, {}, TrialState.SUCCEEDED, 0.5),
        TrialView(1, 11, {}, TrialState.PRUNED, 0.9),
        TrialView(2, 12, {}, TrialState.RUNNING, None),
        TrialView(3, 13, {}, TrialState.SUCCEEDED, 0.7),
    ]
    assert best_trial(trials, "maximize") == trials[3]
    assert best_trial(trials, "minimize") == trials[0]
    assert [t.number for t in best_first(trials, "maximize")] == [1, 3, 0, 2]


def test_a_grid_asked_for_more_trials_than_points_runs_its_points_and_says_so() -> None:
    plan = planned("r.json", GRID, trials=10)
    assert plan.trials == 6 and plan.warnings == ("the grid has 6 points: it runs 6 trials",)


def test_a_plan_reads_back_as_it_was_stored() -> None:
    plan = planned("r.json", SEARCH, trials=4, metric="acc", prune="median", seed=3, cpu=True)
    assert SweepPlan.from_json(plan.to_json()) == plan


def test_a_trial_is_stored_with_its_task_and_not_once_its_sweep_has_ended(tmp_path: Path) -> None:
    store = TaskStore(tmp_path / "q.sqlite")
    sweep = store.sweeps.create(planned("r.json", GRID))
    task = store.submit(TaskKind.TRAIN, {}, trial=TrialRef(sweep.id, 0, {"a": 1, "b": "x"}))

    [trial] = store.sweeps.trials(sweep.id)
    assert (trial.number, trial.task_id, trial.params) == (0, task.id, {"a": 1, "b": "x"})
    assert (trial.task_state, trial.told, trial.view().state) == (
        TaskState.QUEUED,
        False,
        TrialState.QUEUED,
    )
    store.sweeps.end(sweep.id, SweepState.STOPPED, "stopped")
    with pytest.raises(
        SweepStateError, match=r"sweep 1 has already ended \(stopped\); it queues no more trials"
    ):
        store.submit(TaskKind.TRAIN, {}, trial=TrialRef(sweep.id, 1, {"a": 1, "b": "y"}))
    assert [t.id for t in store.list_tasks()] == [task.id]  # the task went with its trial
    with pytest.raises(SweepNotFoundError, match="no sweep with id 7"):
        store.sweeps.get(7)


def test_a_sweep_is_hopeless_once_its_first_trials_or_all_of_a_small_ones_failed() -> None:
    failed, succeeded = TrialState.FAILED, TrialState.SUCCEEDED
    assert hopeless([failed] * 3, trials=20)
    assert not hopeless([failed] * 2, trials=20)  # the third may yet run
    assert hopeless([failed] * 2, trials=2)  # every trial of a sweep of two
    assert not hopeless([failed, succeeded, failed, failed], trials=20)
