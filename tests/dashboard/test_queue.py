"""The Queue tab as a researcher uses it: pick a row, read why a task waits and what it holds,
continue from a checkpoint the package still has, and an ETA only once it means something."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dlnest_jupyter.client.client import Client
from dlnest_jupyter.core.checkpoints import Tracks
from dlnest_jupyter.core.package import SavePackage
from dlnest_jupyter.core.package_state import Branch, CheckpointInfo, PackageState
from dlnest_jupyter.dashboard import Dashboard
from dlnest_jupyter.dashboard import queue_view as qv
from dlnest_jupyter.dashboard import view_model as vm
from dlnest_jupyter.dashboard.queue_panel import QueuePanel

from .conftest import HOSTILE, Transport, row_button, seen, submit

OUTPUT_TAB, METRICS_TAB = 2, 4


def queued(**fields: Any) -> dict[str, Any]:
    return {"id": 7, "kind": "train", "state": "queued", "description": "d", **fields}


def test_a_queued_task_shows_why_it_waits_whole_on_hover_and_escaped() -> None:
    reason = f"needs 14,745 MiB; most free is 1,639 MiB on GPU 0 {HOSTILE}" + " and more" * 20
    [row] = qv.queue_rows([queued(waiting_for=reason)], 0.0)
    assert row.waiting_for == reason

    shown = seen(qv.queue_row_html(row))
    assert "waiting: needs 14,745 MiB" in shown.text and reason not in shown.text  # cut short
    assert f"waiting: {reason}" in shown.hover  # whole on hover
    assert "img" not in shown.tags  # the reason's markup is text, not an element
    [older] = qv.queue_rows([queued()], 0.0)  # an older server: nothing
    [running] = qv.queue_rows([queued(waiting_for=reason, state="running")], 0.0)
    assert older.waiting_for == running.waiting_for == ""
    assert "waiting:" not in seen(qv.queue_row_html(older)).text


def test_the_mib_column_shows_what_is_held_else_asked_else_the_default() -> None:
    assert qv.memory_text({"state": "running", "reserved_mb": 14745, "memory_mb": None}) == (
        "14,745 held"
    )
    assert qv.memory_text({"state": "queued", "reserved_mb": None, "memory_mb": 3000}) == "3,000"
    assert qv.memory_text(queued(memory_mb=None)) == "default (90% of a card)"
    assert qv.memory_text({"state": "succeeded", "memory_mb": None}) == ""
    assert qv.memory_text(queued(memory_mb=None, cpu=True)) == "CPU"  # no GPU memory at all


def test_the_mib_column_adds_the_measured_peak_once_there_is_one() -> None:
    running = {"state": "running", "reserved_mb": 14745, "memory_mb": None, "peak_memory_mb": 812}
    ended = {"state": "succeeded", "reserved_mb": None, "memory_mb": 3000, "peak_memory_mb": 2900}

    assert qv.memory_text(running) == "14,745 held, peak 812"
    assert qv.memory_text(ended) == "peak 2,900"


def test_a_run_that_outgrew_its_reservation_is_flagged_and_the_note_shows_on_hover() -> None:
    note = "grew past its reservation: uses 3,000 MiB on GPU 0, reserved 1,000"
    task = {**queued(), "state": "running", "reserved_mb": 3000, "peak_memory_mb": 3000}
    [row] = qv.queue_rows([{**task, "memory_over": True, "memory_note": note}], 0.0)

    assert row.memory == "3,000 held, peak 3,000 ⚠ over" and row.memory_note == note
    shown = seen(qv.queue_row_html(row))
    assert "3,000 held, peak 3,000 ⚠ over" in shown.text and note in shown.hover


def test_a_long_description_shows_whole_on_hover() -> None:
    text = "lr sweep " * 20
    [row] = qv.queue_rows([queued(description=text)], 0.0)
    assert row.description == text

    shown = seen(qv.queue_row_html(row))
    assert text in shown.hover
    assert "lr sweep lr sweep" in shown.text and "…" in shown.text and text not in shown.text


def test_a_long_queue_scrolls_with_every_row_one_line_high_rather_than_squashed() -> None:
    # Twenty of a sweep's trials (long descriptions, each waiting), more than the list's fixed
    # height holds: the rows keep their height and the list scrolls.
    tasks = [
        queued(
            id=i,
            description=f"lr x hidden #{i}: model_config.lr=0.003, hidden=32 " * 2,
            waiting_for="next in line",
        )
        for i in range(20)
    ]
    panel = QueuePanel(lambda _: None, client=None)
    panel.update(tasks, now=0.0)

    assert panel.rows.layout.overflow == "auto" and len(panel.rows.children) == 20
    assert all(row.layout.flex == "0 0 auto" for row in panel.rows.children)  # none shrinks
    shown = qv.queue_row_html(panel.shown_rows[0])
    assert shown.count("white-space:nowrap") == 2  # the description, and why it waits
    assert ">20 tasks<" in qv.queue_count_html(20, 20) and ">1 task<" in qv.queue_count_html(1, 1)


def test_clicking_a_rows_button_selects_its_task(client: Client, config: Path) -> None:
    first, second = (submit(client, config, memory_mb=100) for _ in range(2))
    board = Dashboard(client, start=False)
    panel = board.queue_panel
    assert panel.task_id == second["id"]  # the newest, first in the list

    row_button(board, first["id"]).click()
    board.refresh()

    assert panel.task_id == first["id"]
    assert row_button(board, first["id"]).button_style == "info"
    assert row_button(board, second["id"]).button_style == ""
    assert [row.id for row in panel.shown_rows if row.selected] == [first["id"]]  # shaded
    board.close()


def test_until_a_task_is_picked_the_newest_is_chosen_and_the_output_tab_shows_it(
    client: Client, config: Path
) -> None:
    first = submit(client, config, memory_mb=100)
    board = Dashboard(client, start=False)
    panel = board.queue_panel
    assert panel.task_id == first["id"]

    second = submit(client, config, memory_mb=100)  # a run just submitted: the one to watch
    board.refresh()
    assert panel.task_id == second["id"] and board.output_panel.task_id == second["id"]

    row_button(board, first["id"]).click()  # picked: kept, whatever comes next
    board.refresh()
    submit(client, config, memory_mb=100)
    board.refresh()
    assert panel.task_id == first["id"]
    board.close()


def test_the_output_and_metrics_tabs_follow_the_queue_and_keep_their_own_pick(
    client: Client, config: Path
) -> None:
    first, second = (submit(client, config, cpu=True) for _ in range(2))
    for task, text in ((first, "first says hi\n"), (second, "second says hi\n")):
        (Path(task["package_path"]) / "_output.txt").write_text(text)
    board = Dashboard(client, start=False)
    board.tabs.selected_index = OUTPUT_TAB
    board.queue_panel.selected.value = first["id"]
    board.refresh()
    assert "first says hi" in board.output_panel.text.value
    assert board.metrics_panel.selected == (first["id"],)

    board.output_panel.picker.value = second["id"]  # the Output tab's own picker
    board.refresh()
    assert "second says hi" in board.output_panel.text.value
    assert board.queue_panel.task_id == first["id"]  # the queue's choice stays
    board.close()


def write_checkpoints(task: dict[str, Any], held: tuple[int, ...]) -> None:
    infos = {i: CheckpointInfo(epoch=i + 1, parent=i - 1 if i else None) for i in held}
    state = PackageState(
        next_id=max(held) + 1,
        branches={0: Branch(tracks=Tracks(fast=held), head=max(held))},
        checkpoints=infos,
    )
    package = SavePackage(Path(task["package_path"]))
    package.write_state(state)
    for checkpoint_id in held:  # the files a continue checks for (never loaded here)
        package.checkpoint_path(checkpoint_id, state).touch()


def test_the_checkpoint_picker_follows_the_package_while_the_run_goes_on(
    client: Client, config: Path
) -> None:
    task = submit(client, config, cpu=True)
    write_checkpoints(task, (0, 1))
    progress = Path(task["package_path"]) / "_progress.json"
    progress.write_text(json.dumps({"epoch": 2, "iter": 0}))
    board = Dashboard(client, start=False)
    board.queue_panel.selected.value = task["id"]
    board.refresh()
    assert [v for _, v in board.queue_panel.checkpoint.options] == [-1, 0, 1]

    write_checkpoints(task, (1, 2))  # the run saved 2 and its track dropped 0
    progress.write_text(json.dumps({"epoch": 3, "iter": 0}))
    board.refresh()

    options = board.queue_panel.checkpoint.options
    assert [v for _, v in options] == [-1, 1, 2] and options[0][0] == "latest (2)"
    board.close()


def test_the_checkpoint_picker_shows_each_branch_and_where_it_forked() -> None:
    reply = {
        "head": 9,
        "checkpoints": [
            {"id": 6, "epoch": 6, "branch": 0, "parent": 5},
            {"id": 7, "epoch": 7, "branch": 0, "parent": 6},
            {"id": 9, "epoch": 8, "branch": 1, "parent": 6},
        ],
        "branches": [
            {"id": 0, "parent": None, "head": 7, "fork_checkpoint": None, "fork_epoch": None},
            {"id": 1, "parent": 0, "head": 9, "fork_checkpoint": 6, "fork_epoch": 6},
        ],
    }

    labels = [label for label, _ in qv.checkpoint_options(reply, -1)]

    assert labels == [
        "latest (9)",
        "branch 0: 6 (epoch 6)",
        "branch 0: 7 (epoch 7, its head)",
        "branch 1: 9 (epoch 8, its head, forked at 6)",
    ]
    older = {"head": 1, "checkpoints": [{"id": 1, "epoch": 2}]}  # a server without branches
    assert [label for label, _ in qv.checkpoint_options(older, -1)] == ["latest (1)", "1 (epoch 2)"]


def test_continue_and_analyze_name_their_source_task_and_checkpoint(
    client: Client, config: Path, transport: Transport
) -> None:
    task = submit(client, config, cpu=True)
    write_checkpoints(task, (0, 1))
    client.delete(task["id"])  # a package no run writes to any more
    board = Dashboard(client, start=False)
    board.queue_panel.selected.value = task["id"]
    board.refresh()
    board.queue_panel.checkpoint.value = 0

    board.queue_panel.continue_.click()
    board.refresh()

    newest = max(client.tasks(), key=lambda t: t["id"])
    assert newest["kind"] == "continue"
    assert newest["description"] == f"continue of task {task['id']} from checkpoint 0"
    client.delete(newest["id"])

    board.queue_panel.epochs.value = 9  # more epochs than the config's: --epochs 9
    board.queue_panel.continue_.click()
    board.refresh()

    longer = max(client.tasks(), key=lambda t: t["id"])
    assert longer["description"].endswith("from checkpoint 0, to epoch 9")
    spec = transport.api.service.store.get(longer["id"]).spec
    assert spec["overrides"] == {"epochs": 9}
    client.delete(longer["id"])

    write_checkpoints(task, (0, 1, 2))  # checkpoint 2 ends epoch 3, the config's last
    board.refresh()
    board.queue_panel.epochs.value = 0
    board.queue_panel.checkpoint.value = 2
    board.queue_panel.continue_.click()
    board.refresh()

    assert (
        "warning: checkpoint 2 ends epoch 3, and the config plans 3 epochs: this continue "
        "trains one more epoch" in board.message.value
    )
    board.close()


def test_the_eta_shows_only_once_an_epoch_has_ended_and_bars_are_readable() -> None:
    progress = {"epoch": 1, "iter": 4, "epochs": 4, "steps_per_epoch": 10, "epoch_s": None}
    running = {"id": 1, "kind": "train", "state": "running", "progress": progress}
    assert qv.eta_s(running) is None  # the first epoch: no guess from warm-up

    running["progress"] = {**progress, "epoch": 2, "epoch_s": 30.0}
    assert qv.eta_s(running) == 30.0 * 2.5  # 2.5 epochs left, 30 s each

    [row] = qv.queue_rows([{**running, "started_at": 10.0}], 100.0)
    assert (row.progress, row.progress_label) == (0.375, "epoch 2 step 5/10")
    assert (row.elapsed, row.eta) == ("1m30s", "1m15s")
    bar = seen(qv.queue_row_html(row)).roles["progressbar"]
    assert (bar["aria-valuenow"], bar["aria-valuemin"], bar["aria-valuemax"]) == ("38", "0", "100")
    assert bar["aria-label"] == "epoch 2 step 5/10"
    assert "1m15s" in seen(qv.queue_row_html(row)).text


def test_the_rate_says_what_it_is() -> None:
    progress = {"epoch": 2, "iter": 1, "steps_per_s": 12.5, "rate_window_s": 10.0}
    task = {"id": 1, "kind": "train", "state": "running", "progress": progress}
    [row] = qv.queue_rows([task], 0.0)
    assert (row.rate, row.rate_hint) == ("12.5/s", "steps per second over the last 10 s")
    shown = seen(qv.queue_row_html(row))
    assert "12.5/s" in shown.text and row.rate_hint in shown.hover

    [ended] = qv.queue_rows([{**task, "state": "succeeded"}], 0.0)
    assert ended.rate == "" and "/s" not in seen(qv.queue_row_html(ended)).text


def test_the_checkpoint_picker_starts_at_latest_for_another_package() -> None:
    from dlnest_jupyter.dashboard.queue_panel import LATEST, QueuePanel

    panel = QueuePanel(lambda _: None, client=None)
    book = {"head": 5, "checkpoints": [{"id": 4, "epoch": 5}, {"id": 5, "epoch": 6}]}
    panel.set_checkpoints(book, "/saves/a")
    panel.checkpoint.value = 4

    panel.set_checkpoints(book, "/saves/a")  # read again: the user's choice stays
    assert panel.checkpoint.value == 4
    panel.set_checkpoints(book, "/saves/b")  # the same ids in another package
    assert panel.checkpoint.value == LATEST


def test_a_cards_bar_shows_what_our_tasks_use_of_what_they_reserved() -> None:
    card = {
        "id": 0, "kind": "gpu", "name": "Fake GPU 0", "memory_total_mb": 16384,
        "memory_reserved_mb": 4000, "memory_measured_mb": 1356, "memory_free_mb": 12384,
        "memory_reserved_by_others_mb": 0, "task_ids": [3], "enabled": True,
    }  # fmt: skip
    unmeasured = {**card, "memory_measured_mb": None}

    shown = seen(vm.device_bar_html(card))

    assert "4,000 reserved (1,356 used) / 12,384 free of 16,384 MiB" in shown.text
    assert "used by our tasks (measured): 1,356 MiB" in shown.hover
    assert "reserved by our tasks, not used: 2,644 MiB" in shown.hover
    assert "4,000 reserved / 12,384 free" in seen(vm.device_bar_html(unmeasured)).text
