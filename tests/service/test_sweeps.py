"""Sweeps on a real service: real training processes on the CPU and on pretend cards."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from dlnest_jupyter.core import processes
from dlnest_jupyter.core.devices import FakeSource
from dlnest_jupyter.core.errors import RequestError, SweepStateError
from dlnest_jupyter.core.package import SavePackage
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.core.tasks import TaskState
from dlnest_jupyter.service.launch.executor import LocalExecutor
from dlnest_jupyter.service.service import DLNestService

from ..projects import failing_dataset, scored_project, write_project
from ..waiting import wait_until
from .conftest import wait_for

pytestmark = pytest.mark.slow


def _ended(service: DLNestService, sweep_id: int) -> dict[str, Any] | None:
    sweep = service.sweeps.get(sweep_id)
    return sweep if sweep["state"] != "running" else None


def test_a_grid_runs_every_point_as_a_package_of_its_own_and_names_the_best(
    service: DLNestService, tmp_path: Path
) -> None:
    config = scored_project(tmp_path / "p", epochs=2)

    sweep, warnings = service.sweeps.submit(
        str(config),
        grid={"quality": [0.2, 0.9], "batch_size": [8, 16]},
        metric="score",
        cpu=True,
        description="quality",
    )
    wait_for(service, lambda: _ended(service, sweep["id"]))

    done = service.sweeps.get(sweep["id"])
    assert warnings == []
    assert done["state"] == "finished"
    assert [t["params"] for t in done["trials"]] == [
        {"quality": 0.2, "batch_size": 8},
        {"quality": 0.2, "batch_size": 16},
        {"quality": 0.9, "batch_size": 8},
        {"quality": 0.9, "batch_size": 16},
    ]
    assert all(t["state"] == "succeeded" for t in done["trials"])
    for trial in done["trials"]:
        task = service.store.get(trial["task_id"])
        package = SavePackage(Path(task.package_path or ""))
        assert {k: package.args()[k] for k in trial["params"]} == trial["params"]
        recorded = {"id": sweep["id"], "trial": trial["number"], "params": trial["params"]}
        assert package.task_record()["sweep"] == recorded
        assert task.to_json()["sweep"] == recorded
        assert trial["value"] == trial["params"]["quality"]
    assert done["best"]["number"] == 2  # 0.9, the first of the two equal bests
    assert done["best"]["value"] == 0.9
    assert done["direction"] == "maximize"


def test_a_search_keeps_at_most_parallel_trials_queued_or_running_and_runs_exactly_trials(
    service: DLNestService, tmp_path: Path
) -> None:
    config = scored_project(tmp_path / "p", epochs=1)
    sweep, _ = service.sweeps.submit(
        str(config),
        search={"quality": {"distribution": "uniform", "low": 0.0, "high": 1.0}},
        grid={"batch_size": [8, 16]},
        trials=5,
        parallel=2,
        metric="score",
        seed=3,
        cpu=True,
    )
    most = 0

    def ended() -> bool:
        nonlocal most
        now = service.sweeps.get(sweep["id"])
        most = max(most, sum(t["state"] in ("queued", "running") for t in now["trials"]))
        return now["state"] != "running"

    wait_for(service, ended)

    done = service.sweeps.get(sweep["id"])
    assert done["state"] == "finished"
    assert most == 2
    assert len(done["trials"]) == 5
    assert [t["number"] for t in done["trials"]] == [0, 1, 2, 3, 4]
    assert all(0.0 <= t["params"]["quality"] <= 1.0 for t in done["trials"])
    assert {t["params"]["batch_size"] for t in done["trials"]} <= {8, 16}
    best = max(done["trials"], key=lambda t: t["value"])
    assert done["best"]["number"] == best["number"]
    assert Path(done["journal"]).is_file()


def test_median_pruning_stops_the_trial_whose_metric_lags_and_keeps_its_package(
    service: DLNestService, tmp_path: Path
) -> None:
    config = scored_project(tmp_path / "p", epochs=8, epoch_sleep_s=0.5)
    sweep, _ = service.sweeps.submit(
        str(config),
        grid={"quality": [0.9, 0.8, 0.1]},
        metric="score",
        prune="median",
        parallel=1,
        cpu=True,
    )
    wait_for(service, lambda: _ended(service, sweep["id"]))

    done = service.sweeps.get(sweep["id"])
    states = [t["state"] for t in done["trials"]]
    assert states == ["succeeded", "succeeded", "pruned"]
    lagging = service.store.get(done["trials"][2]["task_id"])
    assert lagging.state is TaskState.PRUNED
    assert lagging.error is not None
    assert lagging.error.startswith("pruned by the median rule at epoch ")
    assert "score 0.1 < median 0.85" in lagging.error
    package = SavePackage(Path(lagging.package_path or ""))  # kept, with what it wrote
    assert [row["score"] for row in package.read_metrics()][:2] == [0.1, 0.1]
    assert done["best"]["number"] == 0


def test_del_sweep_stops_its_trials_and_leaves_no_process(
    service: DLNestService, tmp_path: Path
) -> None:
    config = scored_project(tmp_path / "p", epochs=50, epoch_sleep_s=1.0)
    sweep, _ = service.sweeps.submit(
        str(config), grid={"quality": [0.1, 0.2, 0.3, 0.4]}, parallel=2, cpu=True
    )
    wait_for(
        service,
        lambda: (
            sum(t["state"] == "running" for t in service.sweeps.get(sweep["id"])["trials"]) == 2
        ),
    )
    running = [service.store.get(t["task_id"]) for t in service.sweeps.get(sweep["id"])["trials"]]

    stopped = service.sweeps.stop(sweep["id"])

    assert stopped["state"] == "stopped"
    assert [t["state"] for t in stopped["trials"]] == ["cancelled", "cancelled"]
    for task in running:
        assert task.pid is not None
        wait_until(lambda task=task: not processes.group_members(task.pid), 30, "the group to end")
    service.tick()
    assert len(service.sweeps.get(sweep["id"])["trials"]) == 2  # no more were queued
    with pytest.raises(SweepStateError, match=r"has already ended \(stopped\); nothing to stop"):
        service.sweeps.stop(sweep["id"])


def test_a_metric_no_trial_reports_fails_the_sweep_naming_what_is_reported(
    service: DLNestService, tmp_path: Path
) -> None:
    config = scored_project(tmp_path / "p", epochs=3, epoch_sleep_s=0.5)
    sweep, _ = service.sweeps.submit(
        str(config), grid={"quality": [0.1, 0.2, 0.3]}, metric="accuracy", parallel=1, cpu=True
    )
    wait_for(service, lambda: service.sweeps.get(sweep["id"])["note"])
    said_early = service.sweeps.get(sweep["id"])  # at its first epoch's row, while it runs
    wait_for(service, lambda: _ended(service, sweep["id"]))

    done = service.sweeps.get(sweep["id"])
    assert said_early["state"] == "running"
    assert said_early["trials"][0]["state"] == "running"
    assert said_early["note"] == (
        "not seen yet: metric 'accuracy' is not among what trial 0 reported so far: "
        "loss, lr, score, val"
    )
    assert done["state"] == "failed"
    assert "metric 'accuracy' is not among what trial 0" in done["note"]
    assert "loss, lr, score, val" in done["note"]
    assert len(done["trials"]) == 1


def test_the_trials_a_failed_sweep_stops_say_that_it_failed(
    service: DLNestService, tmp_path: Path
) -> None:
    config = scored_project(tmp_path / "p", epochs=3, epoch_sleep_s=0.5)
    sweep, _ = service.sweeps.submit(  # the first trial's end fails it; the second runs on
        str(config), grid={"epochs": [1, 40]}, metric="accuracy", parallel=2, cpu=True
    )
    wait_for(service, lambda: _ended(service, sweep["id"]))

    done = service.sweeps.get(sweep["id"])
    stopped = [
        service.queries.task(t["task_id"]) for t in done["trials"] if t["state"] == "cancelled"
    ]
    assert done["state"] == "failed" and stopped, done["trials"]  # the second trial
    assert {t.error for t in stopped} == {f"sweep {sweep['id']} failed"}


def test_a_trial_whose_metric_is_nan_fails_alone_and_the_sweep_goes_on(
    service: DLNestService, tmp_path: Path
) -> None:
    config = scored_project(tmp_path / "p", epochs=1)
    sweep, _ = service.sweeps.submit(
        str(config), grid={"quality": [0.9, "nan", 0.5]}, metric="score", parallel=1, cpu=True
    )
    wait_for(service, lambda: _ended(service, sweep["id"]))

    done = service.sweeps.get(sweep["id"])
    assert done["state"] == "finished" and done["note"] is None
    assert [t["value"] for t in done["trials"]] == [0.9, None, 0.5]
    assert done["best"]["number"] == 0


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"grid": {"model.lr": [1, 2]}}, "sweep key 'model.lr' names nothing in the merged config"),
        ({"grid": {"quality": []}}, "grid key 'quality': give a non-empty list"),
        (
            {
                "search": {"quality": {"distribution": "uniform", "low": 1, "high": 1}},
                "trials": 2,
                "metric": "score",
            },
            "LO must be below HI",
        ),
        (
            {
                "search": {"quality": {"distribution": "loguniform", "low": 0, "high": 1}},
                "trials": 2,
                "metric": "score",
            },
            "loguniform needs LO above 0",
        ),
        (
            {
                "search": {"quality": {"distribution": "normal", "low": 0, "high": 1}},
                "trials": 2,
                "metric": "score",
            },
            "'distribution' must be uniform",
        ),
        (
            {"search": {"quality": {"choices": []}}, "trials": 2, "metric": "score"},
            "give at least one choice",
        ),
        (
            {"grid": {"quality": list(range(101)), "batch_size": list(range(100))}},
            "the grid has 10,100 points, more than 10,000",
        ),
        (
            {
                "search": {"quality": {"distribution": "uniform", "low": 0, "high": 1}},
                "metric": "score",
            },
            "a search needs --trials N",
        ),
        ({"grid": {"quality": [1, 2]}, "prune": "median"}, "pruning needs --metric KEY"),
        ({}, "a sweep varies something"),
    ],
)
def test_a_bad_sweep_is_refused_before_anything_is_stored(
    service: DLNestService, tmp_path: Path, fields: dict[str, Any], words: str
) -> None:
    config = scored_project(tmp_path / "p")
    with pytest.raises(RequestError, match=words.replace("(", r"\(")):
        service.sweeps.submit(str(config), cpu=True, **fields)
    assert service.sweeps.all() == []
    assert service.store.list_tasks() == []


def test_a_grid_alone_runs_without_optuna(
    service: DLNestService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "optuna" or m.startswith("optuna.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    config = scored_project(tmp_path / "p", epochs=1)

    with pytest.raises(RequestError, match="needs Optuna, which is not installed"):
        service.sweeps.submit(
            str(config), grid={"quality": [0.1, 0.2]}, metric="score", prune="median"
        )
    sweep, _ = service.sweeps.submit(
        str(config), grid={"quality": [0.1, 0.2]}, metric="score", cpu=True
    )
    wait_for(service, lambda: _ended(service, sweep["id"]))

    assert service.sweeps.get(sweep["id"])["best"]["params"] == {"quality": 0.2}


def test_a_sweep_whose_scheduler_was_killed_is_carried_on_by_the_next_with_no_trial_twice(
    tmp_path: Path,
) -> None:
    database = tmp_path / "dlnest.sqlite"
    config = scored_project(tmp_path / "p", epochs=4, epoch_sleep_s=0.3)
    with subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("sweep_process.py")),
            str(database),
            str(config),
        ],
        stdout=subprocess.PIPE,
        text=True,
    ) as first:
        assert first.stdout is not None
        sweep_id = json.loads(first.stdout.readline())
        first.send_signal(signal.SIGKILL)

    store = TaskStore(database)
    second = DLNestService(store, FakeSource((16384, 16384)), LocalExecutor(stop_grace_s=5))
    wait_for(second, lambda: _ended(second, sweep_id), timeout_s=400)

    done = second.sweeps.get(sweep_id)
    assert done["state"] == "finished"
    assert [t["number"] for t in done["trials"]] == list(range(6))
    assert all(t["state"] in ("succeeded", "pruned") for t in done["trials"])
    assert len({t["params"]["quality"] for t in done["trials"]}) == 6  # none suggested again
    task_ids = [t["task_id"] for t in done["trials"]]
    assert sorted(t.id for t in store.list_tasks()) == sorted(task_ids)  # no task beside them
    for task_id in task_ids:  # each trial's package was launched once
        package = SavePackage(Path(store.get(task_id).package_path or ""))
        assert len(package.launches()) == 1
    told = Counter(
        op["trial_id"]
        for op in map(json.loads, Path(done["journal"]).read_text().splitlines())
        if op["op_code"] == 6 and op["state"] != 0  # SET_TRIAL_STATE_VALUES, not to RUNNING
    )
    assert sorted(told.values()) == [1] * 6  # each trial told once


def test_a_trial_asked_for_but_never_queued_is_queued_by_the_next_driver(
    service: DLNestService, tmp_path: Path
) -> None:
    """The scheduling server died between asking Optuna and queueing the task: the trial is in
    the journal, running, with no task. The next pass queues it, with its values, once."""
    from dlnest_jupyter.core.sweep_space import space_from_json
    from dlnest_jupyter.core.sweeps import planned
    from dlnest_jupyter.service.sweeps.driver import journal_path, study_name
    from dlnest_jupyter.service.sweeps.engines import OptunaEngine

    config = scored_project(tmp_path / "p", epochs=1)
    space = space_from_json(None, {"quality": {"distribution": "uniform", "low": 0, "high": 1}})
    plan = planned(str(config), space, trials=2, parallel=1, metric="score", cpu=True)
    sweep = service.store.sweeps.create(plan)  # stored, no pass yet
    dead = OptunaEngine(plan, journal_path(service.store.path, sweep), study_name(sweep))
    number, params = dead.ask(0)

    wait_for(service, lambda: _ended(service, sweep.id))

    done = service.sweeps.get(sweep.id)
    assert done["state"] == "finished"
    assert [t["number"] for t in done["trials"]] == [0, 1]
    assert done["trials"][number]["params"] == params  # the values the dead driver was given
    assert "trial 0 was asked for, never queued" in service.log.read(0)[1]


def test_a_sweep_whose_first_trials_all_fail_stops_queueing_more(
    service: DLNestService, tmp_path: Path
) -> None:
    config = write_project(
        tmp_path / "p", epochs=1, dataset=failing_dataset("RuntimeError('no data here')")
    )
    sweep, _ = service.sweeps.submit(
        str(config), grid={"batch_size": [1, 2, 3, 4, 5, 6]}, parallel=1, cpu=True
    )
    wait_for(service, lambda: _ended(service, sweep["id"]))

    done = service.sweeps.get(sweep["id"])
    assert done["state"] == "failed"
    assert [t["state"] for t in done["trials"]] == ["failed"] * 3
    assert done["note"].startswith(
        f"its first 3 trials failed; task {done['trials'][0]['task_id']}: "
    )
    assert "no data here" in done["note"]


def test_a_small_sweep_whose_every_trial_failed_or_could_not_be_made_fails_saying_why(
    service: DLNestService, tmp_path: Path
) -> None:
    config = write_project(
        tmp_path / "p", epochs=1, dataset=failing_dataset("RuntimeError('no data here')")
    )
    nowhere = write_project(tmp_path / "q", epochs=1, args={"save_root": "./root_config.json"})

    small, _ = service.sweeps.submit(str(config), grid={"batch_size": [1, 2]}, cpu=True)
    unmade, _ = service.sweeps.submit(str(nowhere), grid={"batch_size": [1, 2]}, cpu=True)
    wait_for(service, lambda: _ended(service, small["id"]))

    done = service.sweeps.get(small["id"])
    assert (done["state"], [t["state"] for t in done["trials"]]) == ("failed", ["failed"] * 2)
    assert done["note"].startswith(f"all its trials failed; task {done['trials'][0]['task_id']}")
    never = service.sweeps.get(unmade["id"])
    assert (never["state"], never["trials"]) == ("failed", [])
    assert "save_root" in never["note"] and "no save package can be made there" in never["note"]


def test_an_unexpected_error_holding_a_sweep_up_is_its_note_until_it_goes_on(
    service: DLNestService, tmp_path: Path
) -> None:
    """Its Optuna journal cannot be opened (a folder stands where it goes): the sweep says so,
    where the user looks, and goes on once the folder is gone."""
    from dlnest_jupyter.core.sweep_space import space_from_json
    from dlnest_jupyter.core.sweeps import planned
    from dlnest_jupyter.service.sweeps.driver import journal_path

    config = scored_project(tmp_path / "p", epochs=1)
    space = space_from_json(None, {"quality": {"distribution": "uniform", "low": 0, "high": 1}})
    plan = planned(str(config), space, trials=1, parallel=1, metric="score", cpu=True)
    sweep = service.store.sweeps.create(plan)  # stored, no pass yet
    in_the_way = journal_path(service.store.path, sweep)
    in_the_way.mkdir()

    service.tick()
    service.tick()  # said once, not again each pass
    held = service.sweeps.get(sweep.id)
    assert (held["state"], held["trials"]) == ("running", [])
    assert held["note"].startswith("could not go on: IsADirectoryError"), held["note"]
    assert held["note"].endswith("; tried again each pass")
    assert service.log.read(0)[1].count(f"sweep {sweep.id}: could not go on") == 1

    in_the_way.rmdir()
    wait_for(service, lambda: _ended(service, sweep.id))
    done = service.sweeps.get(sweep.id)
    assert (done["state"], done["note"]) == ("finished", None)
