"""The Metrics tab: honest curves (epoch means, raw under smoothed), branches as their own
lines from their fork point, x by epoch or time, a log scale, a legend beside the chart, and
the shown rows exported as CSV."""

from __future__ import annotations

import base64
import csv
import json
import math
import re
from pathlib import Path
from typing import Any

from dlnest_jupyter.client.client import Client
from dlnest_jupyter.core.checkpoints import Tracks
from dlnest_jupyter.core.package import SavePackage
from dlnest_jupyter.core.package_state import Branch, CheckpointInfo, PackageState
from dlnest_jupyter.dashboard import Dashboard
from dlnest_jupyter.dashboard.metrics_panel import MetricsPanel

from .conftest import submit

METRICS_TAB = 4
LONG = "a description far longer than any legend inside a chart would show whole"


def write_rows(task: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    lines = "".join(json.dumps({"_epoch_mean": True, **r}) + "\n" for r in rows)
    (Path(task["package_path"]) / "_metrics.jsonl").write_text(lines)


def metrics_board(client: Client, task: dict[str, Any]) -> Dashboard:
    board = Dashboard(client, start=False)
    board.queue_panel.selected.value = task["id"]
    board.tabs.selected_index = METRICS_TAB
    board.refresh()
    return board


def test_only_training_runs_are_offered() -> None:
    panel = MetricsPanel()
    tasks = [
        {"id": 2, "kind": "analyze", "state": "running", "package_path": "/p"},
        {"id": 1, "kind": "train", "state": "succeeded", "package_path": "/p"},
    ]
    panel.update_runs(tasks)

    assert [value for _, value in panel.runs.options] == [1]


def test_a_branch_is_its_own_line_from_its_fork_point(client: Client, config: Path) -> None:
    task = submit(client, config, cpu=True, description=LONG)
    rows = [{"epoch": e, "loss": 1.0 / e, "_branch": 0} for e in range(1, 8)]
    rows += [{"epoch": e, "loss": 0.5 / e, "_branch": 1} for e in (7, 8)]  # continued from 6
    write_rows(task, rows)
    state = PackageState(
        next_id=10,
        branch=1,
        branches={
            0: Branch(tracks=Tracks(fast=(6, 7)), head=7),
            1: Branch(tracks=Tracks(fast=(9,)), parent=0, fork_checkpoint=6, head=9),
        },
        checkpoints={
            6: CheckpointInfo(6, 5),
            7: CheckpointInfo(7, 6),
            9: CheckpointInfo(8, 6, branch=1),
        },
    )
    SavePackage(Path(task["package_path"])).write_state(state)

    board = metrics_board(client, task)

    curves = board.metrics_panel.drawn_curves()
    assert [c.xs for c in curves] == [[1, 2, 3, 4, 5, 6, 7], [6, 7, 8]]
    assert curves[1].ys == [1 / 6, 0.5 / 7, 0.5 / 8]  # from branch 0's epoch 6
    summary = board.metrics_panel.summary.value
    assert f"task {task['id']} {LONG}, branch 1" in summary  # the legend: names whole
    assert not any(c.in_chart_legend for c in curves)  # no legend over the curves
    assert "each point: the epoch's mean" in board.metrics_panel.about.value
    board.close()


def test_smoothing_keeps_the_raw_curve_and_log_and_time_axes_redraw(
    client: Client, config: Path
) -> None:
    task = submit(client, config, cpu=True)
    write_rows(task, [{"epoch": e, "loss": 10.0**-e, "_time": 100.0 + 5 * e} for e in (1, 2, 3)])
    board = metrics_board(client, task)
    panel = board.metrics_panel

    panel.smoothing.value = 0.5
    board.refresh()
    raw, smooth = panel.drawn_curves()
    assert raw.ys == [0.1, 0.01, 0.001]  # the measured curve stays, faint, under the smoothed
    assert smooth.ys[0] == 0.1 and raw.ys[2] < smooth.ys[2] < smooth.ys[1] < smooth.ys[0]
    assert raw.opacity < smooth.opacity == 1.0
    assert raw.label == f"{smooth.label} (raw)"

    assert panel.x_ticks() == [1, 2, 3]  # whole epochs, not 1.1, 1.2, ...

    panel.smoothing.value = 0.0
    panel.log_scale.value = True
    panel.x_axis.value = "time"
    board.refresh()
    [curve] = panel.drawn_curves()
    assert [round(v, 9) for v in curve.ys] == [-1, -2, -3] and curve.xs == [0, 5, 10]
    x_label, y_label = panel.axis_labels()
    assert y_label == "log10 of loss" and x_label.startswith("time") and panel.x_ticks() is None
    board.close()


def test_export_writes_the_shown_rows_to_a_csv_and_says_where(
    client: Client, config: Path, tmp_path: Path
) -> None:
    task = submit(client, config, cpu=True)
    write_rows(task, [{"epoch": 1, "loss": 0.5, "acc": 0.75, "_time": 1.5}])
    board = metrics_board(client, task)
    board.metrics_panel.folder = tmp_path

    board.metrics_panel.export.click()
    board.refresh()

    [written] = tmp_path.glob("dlnest-metrics-*.csv")
    assert f"wrote 1 rows of runs {task['id']} to {written}" == board.message.value
    with written.open() as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["task", "branch", "epoch", "time", "loss", "acc"],
        [str(task["id"]), "0", "1", "1.5", "0.5", "0.75"],
    ]
    assert not math.isnan(float(rows[1][4]))
    link = re.search(r"href='data:text/csv;base64,([^']+)'", board.metrics_panel.exported.value)
    assert link and base64.b64decode(link[1]) == written.read_bytes()  # a download too
    board.close()


def write_steps(task: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    lines = "".join(json.dumps(r) + "\n" for r in rows)
    (Path(task["package_path"]) / "_steps.jsonl").write_text(lines)


def test_by_step_draws_the_chosen_runs_logged_values_and_a_branch_from_its_fork(
    client: Client, config: Path
) -> None:
    task = submit(client, config, cpu=True)
    write_rows(task, [{"epoch": e, "loss": 1.0, "_branch": b} for e, b in ((1, 0), (2, 0), (2, 1))])
    write_steps(
        task,
        [
            {"epoch": 1, "_branch": 0, "values": {"loss": [4.0, 3.0]}, "counts": {"loss": 2}},
            {"epoch": 2, "_branch": 0, "values": {"loss": [2.0, 1.0]}, "counts": {"loss": 2}},
            # continued from epoch 1's checkpoint; 4 steps thinned to 2 values
            {"epoch": 2, "_branch": 1, "values": {"loss": [2.5, 0.5]}, "counts": {"loss": 4}},
        ],
    )
    state = PackageState(
        next_id=3,
        branch=1,
        branches={
            0: Branch(tracks=Tracks(fast=(0, 1)), head=1),
            1: Branch(tracks=Tracks(fast=(2,)), parent=0, fork_checkpoint=0, head=2),
        },
        checkpoints={
            0: CheckpointInfo(1, None),
            1: CheckpointInfo(2, 0),
            2: CheckpointInfo(2, 0, 1),
        },
    )
    SavePackage(Path(task["package_path"])).write_state(state)
    board = metrics_board(client, task)
    panel = board.metrics_panel

    panel.x_axis.value = "step"
    board.refresh()

    curves = panel.drawn_curves()
    assert [c.xs for c in curves] == [[1, 2, 3, 4], [3, 5]]  # branch 1 goes on from step 2
    assert [c.ys for c in curves] == [[4.0, 3.0, 2.0, 1.0], [2.5, 0.5]]
    assert panel.axis_labels()[0] == "step (each value the run logged)"
    assert "a value run" in panel.about.value
    board.close()


def test_a_package_and_its_continues_are_one_run_named_once() -> None:
    panel = MetricsPanel()
    tasks = [  # newest first, as the queue holds them
        {"id": 11, "kind": "continue", "state": "running", "package_path": "/s/a"},
        {"id": 9, "kind": "train", "state": "running", "package_path": "/s/b", "description": "b"},
        {"id": 6, "kind": "continue", "state": "succeeded", "package_path": "/s/a"},
        {
            "id": 1,
            "kind": "train",
            "state": "succeeded",
            "package_path": "/s/a",
            "description": "a",
        },
    ]

    panel.update_runs(tasks)
    panel.follow(11)  # a continue chosen in the queue shows its package

    assert [value for _, value in panel.runs.options] == [1, 9]  # the newest activity first
    assert panel.labels[1] == "task 1 a (continued by 6, 11)"
    assert panel.runs.value == (1,)


def test_an_epoch_run_twice_in_a_branch_is_drawn_once_as_it_ran_last() -> None:
    from dlnest_jupyter.dashboard import metrics_view as mv

    rows = [{"epoch": 1, "loss": 3.0}, {"epoch": 2, "loss": 2.0}]  # died before saving epoch 2
    rows += [{"epoch": 2, "loss": 1.5}, {"epoch": 3, "loss": 1.0}]  # continued from epoch 1

    [line] = mv.lines(1, "run", rows, "loss")

    assert (line.xs, line.ys) == ([1.0, 2.0, 3.0], [3.0, 1.5, 1.0])
