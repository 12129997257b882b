"""The Sweeps tab: a sweep's trials best first with the best marked, their objectives on two
charts, the trials' curves overlaid in the Metrics tab in one click, and Stop, asked once.

Over a real service whose trials are pretend processes (the recording executor): a test writes
each trial's metric rows into its package and ends it, and the service judges the sweep as it
would a real one. The last test runs real training processes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dlnest_jupyter.client.client import Client
from dlnest_jupyter.core.devices import FakeSource
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.dashboard import Dashboard
from dlnest_jupyter.dashboard import sweeps_view as sv
from dlnest_jupyter.dashboard.dashboard import TAB_TITLES
from dlnest_jupyter.dashboard.sweeps_panel import SweepsPanel
from dlnest_jupyter.dashboard.view_model import STATE_COLOURS, whole_ticks
from dlnest_jupyter.service.api import Api
from dlnest_jupyter.service.launch.executor import LocalExecutor
from dlnest_jupyter.service.service import DLNestService

from ..projects import scored_project
from ..recording_executor import RecordingExecutor
from ..waiting import wait_until
from .conftest import HOSTILE, Transport, seen

SWEEPS_TAB = 6
METRICS_TAB = 4
QUALITIES = [0.2, 0.9, 0.5]


@pytest.fixture
def executor() -> RecordingExecutor:
    return RecordingExecutor()


@pytest.fixture
def service(tmp_path: Path, executor: RecordingExecutor) -> Iterator[DLNestService]:
    service = DLNestService(TaskStore(tmp_path / "q.sqlite"), FakeSource((16384,)), executor)
    yield service
    service.stop()


@pytest.fixture
def client(service: DLNestService, tmp_path: Path) -> Client:
    return Client(Transport(Api(service, tmp_path, [tmp_path])))


def grid_sweep(service: DLNestService, tmp_path: Path, **fields: Any) -> dict[str, Any]:
    config = scored_project(tmp_path / "p", epochs=2)
    fields = {"grid": {"quality": QUALITIES}, "metric": "score", "parallel": 3, **fields}
    sweep, _ = service.sweeps.submit(str(config), cpu=True, **fields)
    service.tick()  # its trials start (pretend processes)
    return service.sweeps.get(sweep["id"])


def end_trials(
    service: DLNestService,
    executor: RecordingExecutor,
    sweep: dict[str, Any],
    score: Callable[[float, int], float] = lambda quality, epoch: quality * epoch,
) -> dict[str, Any]:
    """Each trial writes two epochs of `score` and ends well; the service then judges them."""
    for trial in sweep["trials"]:
        package = Path(service.store.get(trial["task_id"]).package_path or "")
        rows = [{"epoch": e, "score": score(trial["params"]["quality"], e)} for e in (1, 2)]
        (package / "_metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        executor.finish(trial["task_id"])
    service.tick()
    return service.sweeps.get(sweep["id"])


def sweeps_board(client: Client) -> Dashboard:
    board = Dashboard(client, start=False)
    board.tabs.selected_index = SWEEPS_TAB
    board.refresh()
    return board


# -- the pure views --------------------------------------------------------------------------


def a_sweep(**fields: Any) -> dict[str, Any]:
    trials = [
        {"number": 0, "task_id": 4, "params": {"lr": 0.1, "opt": "sgd"}, "state": "succeeded", "value": 0.7},
        {"number": 1, "task_id": 5, "params": {"lr": 0.001, "opt": HOSTILE}, "state": "succeeded", "value": 0.9},
        {"number": 2, "task_id": 6, "params": {"lr": 0.01, "opt": "sgd"}, "state": "pruned", "value": 0.2},
        {"number": 3, "task_id": 7, "params": {"lr": 0.01, "opt": "adam"}, "state": "queued", "value": None},
    ]  # fmt: skip
    return {
        "id": 3, "state": "running", "note": None, "metric": "acc", "direction": "maximize",
        "objective": "best", "prune": "median", "description": HOSTILE,
        "grid": {"opt": ["sgd", "adam", HOSTILE]},
        "search": {"lr": {"distribution": "loguniform", "low": 1e-4, "high": 1.0}},
        "trials_total": 6, "parallel": 2, "trials": trials,
        "best": {k: v for k, v in trials[1].items()},
        **fields,
    }  # fmt: skip


def test_the_trials_are_listed_best_first_and_the_best_row_is_bold_and_shaded() -> None:
    sweep = a_sweep()

    rows = sv.trial_rows(sweep)

    assert [r.number for r in rows] == [1, 0, 2, 3]  # by objective, the unjudged last
    assert [r.best for r in rows] == [True, False, False, False]
    assert rows[0].params == (HOSTILE, "0.001")  # grid keys, then searched ones
    table = sv.trials_table_html(sweep)
    shown = seen(table)
    assert "img" not in shown.tags and HOSTILE in shown.text  # a value is text, never markup
    best_row = table.split("<tr")[2]
    assert "font-weight:bold" in best_row and sv.BEST_SHADE in best_row and "1 (best)" in best_row
    assert STATE_COLOURS["pruned"] in table.split("<tr")[4]  # the pruned trial's badge
    assert shown.pieces[:6] == ["trial", "task", "state", "acc", "opt", "lr"]


def test_the_summary_says_how_far_how_judged_and_the_best() -> None:
    summary = seen(sv.sweep_summary_html(a_sweep(note="trial 2 " + HOSTILE)))

    assert "a search over opt, lr" in summary.text
    assert "3 of 6 trials done" in summary.text
    assert "judged by acc (maximize, best epoch, median pruning)" in summary.text
    assert "best: trial 1 (task 5), 0.9" in summary.text
    assert "img" not in summary.tags and HOSTILE in summary.text
    assert sv.sweep_options([a_sweep(), a_sweep(id=4, state="stopped")])[0][1] == 4  # newest first


def test_objectives_against_the_number_and_each_key_lr_on_log10_and_a_choice_by_index() -> None:
    sweep = a_sweep()

    by_number = sv.objective_points(sweep)
    by_lr = sv.objective_points(sweep, "lr")
    by_opt = sv.objective_points(sweep, "opt")

    assert (by_number.xs, by_number.ys) == ([0, 1, 2], [0.7, 0.9, 0.2])  # the queued one has none
    assert by_number.best == 1 and by_number.colours[2] == STATE_COLOURS["pruned"]
    assert by_lr.x_label == "log10 of lr" and by_lr.xs == pytest.approx([-1, -3, -2])
    assert by_opt.xs == [0, 1, 0] and by_opt.x_label.startswith("opt (0: sgd, 1: <img")
    assert (by_number.whole_x, by_opt.whole_x, by_lr.whole_x) == (True, True, False)
    assert whole_ticks(by_number.xs) == [0, 1, 2] and whole_ticks([0, 95]) == list(range(0, 91, 10))
    low, high = sv.padded_range(by_number.xs) or (0, 0)
    assert low < 0 and high > 2  # a point at either end is drawn whole
    svg = sv.svg_scatter(by_number)
    assert svg.count("<circle") == 3 and svg.count('stroke="black"') == 1  # the best is ringed
    assert sv.overlay_task_ids(sweep, 2) == [5, 4]  # the best two trials' tasks


# -- the tab over a service ------------------------------------------------------------------


def test_the_tab_shows_the_sweep_its_best_trial_and_both_charts(
    service: DLNestService, executor: RecordingExecutor, client: Client, tmp_path: Path
) -> None:
    assert TAB_TITLES[SWEEPS_TAB] == "Sweeps" and TAB_TITLES[METRICS_TAB] == "Metrics"
    before = sweeps_board(client)
    assert before.sweeps_panel.charts.layout.display == "none"  # no sweep, no empty charts
    assert "no sweeps yet" in before.sweeps_panel.summary.value
    before.close()
    sweep = end_trials(service, executor, grid_sweep(service, tmp_path, description=HOSTILE))

    board = sweeps_board(client)
    panel = board.sweeps_panel
    assert panel.charts.layout.display == ""

    assert panel.sweep_id == sweep["id"]
    assert HOSTILE in panel.sweep.options[0][0]
    summary = seen(panel.summary.value).text
    assert "finished" in summary and "3 of 3 trials done" in summary
    assert f"best: trial 1 (task {sweep['trials'][1]['task_id']}), 1.8" in summary
    assert [r.number for r in sv.trial_rows(sweep)] == [1, 2, 0]
    assert "1 (best)" in seen(panel.table.value).text
    assert panel.points_drawn(panel.by_number) == ([0, 1, 2], [0.4, 1.8, 1.0], 1)
    assert panel.against.value == "quality"
    assert panel.points_drawn(panel.by_key) == (QUALITIES, [0.4, 1.8, 1.0], 1)
    assert [a.label for a in panel.by_key.axes] == ["quality", "score"]
    assert panel.stop.disabled  # a finished sweep has nothing to stop

    newer = grid_sweep(service, tmp_path)  # started after the tab opened: followed
    board.refresh()
    assert panel.sweep_id == newer["id"]
    panel.sweep.value = sweep["id"]  # the user's pick stays, though a newer one starts
    grid_sweep(service, tmp_path)
    board.refresh()
    assert panel.sweep_id == sweep["id"]
    board.close()


def test_one_click_overlays_the_trials_curves_of_the_sweeps_metric_in_the_metrics_tab(
    service: DLNestService, executor: RecordingExecutor, client: Client, tmp_path: Path
) -> None:
    sweep = end_trials(service, executor, grid_sweep(service, tmp_path))
    board = sweeps_board(client)

    board.sweeps_panel.overlay.click()
    board.refresh()

    task_of = {t["number"]: t["task_id"] for t in sweep["trials"]}
    metrics = board.metrics_panel
    assert board.tabs.selected_index == METRICS_TAB
    assert metrics.selected == (task_of[1], task_of[2], task_of[0])  # best first
    assert metrics.key.value == "score"
    curves = {c.label: c.ys for c in metrics.drawn_curves()}  # named by their trial's values
    assert curves == {
        f"task {task_of[1]} sweep {sweep['id']} #1: quality=0.9": [0.9, 1.8],
        f"task {task_of[2]} sweep {sweep['id']} #2: quality=0.5": [0.5, 1.0],
        f"task {task_of[0]} sweep {sweep['id']} #0: quality=0.2": [0.2, 0.4],
    }
    assert f"Metrics: the curves of tasks {task_of[1]}, {task_of[2]}, {task_of[0]} (score)" in (
        board.message.value
    )
    board.close()


def test_stop_asks_once_then_stops_the_sweep_and_cancels_its_running_trials(
    service: DLNestService, client: Client, tmp_path: Path
) -> None:
    sweep = grid_sweep(service, tmp_path)
    board = sweeps_board(client)
    panel = board.sweeps_panel
    assert not panel.stop.disabled

    panel.stop.click()
    board.refresh()
    assert client.sweep(sweep["id"])["state"] == "running"  # asked, not stopped
    assert panel.stop.description == f"Confirm: stop sweep {sweep['id']}"
    assert "has 3 trials queued or running: press" in board.message.value
    panel.stop.click()
    board.refresh()

    stopped = client.sweep(sweep["id"])
    assert stopped["state"] == "stopped"
    assert {t["state"] for t in stopped["trials"]} == {"cancelled"}
    assert board.message.value == f"sweep {sweep['id']} stopped"
    assert panel.stop.disabled and panel.stop.description == "Stop sweep"
    assert "stopped" in seen(panel.summary.value).text
    board.close()


def test_without_bqplot_the_charts_are_svg_and_the_tab_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "bqplot", None)  # `import bqplot` raises ImportError
    panel = SweepsPanel(lambda action: None, client=None, show_curves=lambda ids, key: "")

    panel.update([a_sweep()])

    assert "bqplot is not installed" in panel.note.value
    assert panel.by_number.value.count("<circle") == 3
    assert panel.by_key.value.count("<circle") == 3  # against "opt", the first key


def test_no_sweeps_yet_says_how_to_start_one(client: Client) -> None:
    board = sweeps_board(client)

    assert "%dlnest sweep starts one" in board.sweeps_panel.summary.value
    assert board.sweeps_panel.stop.disabled and board.sweeps_panel.overlay.disabled
    board.close()


@pytest.mark.slow
def test_a_real_sweep_reaches_the_tab_and_its_curves_the_metrics_tab(tmp_path: Path) -> None:
    service = DLNestService(
        TaskStore(tmp_path / "q.sqlite"), FakeSource((16384,)), LocalExecutor(stop_grace_s=5)
    )
    client = Client(Transport(Api(service, tmp_path, [tmp_path])))
    try:
        config = scored_project(tmp_path / "p", epochs=2)
        sweep, _ = service.sweeps.submit(
            str(config), grid={"quality": [0.3, 0.8]}, metric="score", cpu=True
        )

        def ended() -> bool:
            service.tick()
            return bool(service.sweeps.get(sweep["id"])["state"] != "running")

        wait_until(ended, 180, "the sweep", every_s=0.1)
        board = sweeps_board(client)
        panel = board.sweeps_panel
        assert panel.points_drawn(panel.by_key) == ([0.3, 0.8], [0.3, 0.8], 1)
        panel.overlay.click()
        board.refresh()

        curves = board.metrics_panel.drawn_curves()
        assert sorted(c.ys for c in curves) == [[0.3, 0.3], [0.8, 0.8]]
        assert board.metrics_panel.key.value == "score"
        board.close()
    finally:
        service.stop()
