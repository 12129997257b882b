"""The dashboard's widgets without a kernel: fed by a real in-process API, refreshed by hand.

The service places tasks on two fake GPUs and a recording executor "runs" them, so a test can
write a task's progress, output and metrics into its package and watch the widgets follow.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
from pathlib import Path

import pytest

from dlnest_jupyter.client.client import Client, InProcessTransport
from dlnest_jupyter.core.box_ledger import BoxLedger
from dlnest_jupyter.core.devices import FakeSource, GpuSnapshot, InventorySnapshot
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.dashboard import Dashboard
from dlnest_jupyter.dashboard import dashboard as dashboard_module
from dlnest_jupyter.service.api import Api
from dlnest_jupyter.service.service import DLNestService

from ..recording_executor import RecordingExecutor, SleepingExecutor
from ..waiting import wait_until
from .conftest import HOSTILE, Transport, rows_html, seen, submit


def test_the_queue_lists_tasks_newest_first_escaped_and_keeps_the_selection(
    client: Client, config: Path
) -> None:
    first = submit(client, config, memory_mb=1000, description=HOSTILE)
    second = submit(client, config, memory_mb=1000, description="lr 1e-3")
    board = Dashboard(client, start=False)
    panel = board.queue_panel

    assert panel.row_ids[:2] == [second["id"], first["id"]]  # newest first
    assert [row.state for row in panel.shown_rows] == ["running", "running"]
    shown = seen(rows_html(board))
    assert HOSTILE in shown.text and "img" not in shown.tags  # its markup shown as text
    panel.selected.value = first["id"]
    submit(client, config, memory_mb=1000)
    board.refresh()
    assert panel.selected.value == first["id"] and len(panel.selected.options) == 3

    panel.state.value = "queued"
    board.refresh()
    assert panel.selected.options == () and "0 tasks" in panel.count.value
    assert panel.rows.children == ()

    client.delete(second["id"])
    panel.state.value = "not ended"  # a long queue's history hidden
    board.refresh()
    assert sorted(panel.row_ids) == sorted(
        t["id"] for t in client.tasks() if t["id"] != second["id"]
    )
    assert "cancelled" not in [row.state for row in panel.shown_rows]
    board.close()


def test_a_running_task_shows_progress_rate_and_eta_from_its_package(
    client: Client, config: Path
) -> None:
    task = submit(client, config, cpu=True)
    progress = {"epoch": 2, "iter": 4, "steps_per_s": 12.5, "epochs": 4, "steps_per_epoch": 10}
    (Path(task["package_path"]) / "_progress.json").write_text(json.dumps(progress))

    board = Dashboard(client, start=False)

    [row] = board.queue_panel.shown_rows
    assert row.progress == 0.375  # 1 epoch and 5 of 10 of 4 epochs
    assert (row.progress_label, row.rate) == ("epoch 2 step 5/10", "12.5/s")
    assert seen(rows_html(board)).roles["progressbar"]["aria-valuenow"] == "38"
    board.close()


def test_gpu_bars_show_ours_and_a_card_is_disabled_from_its_toggle(
    client: Client, config: Path
) -> None:
    task = submit(client, config, memory_mb=4000)
    board = Dashboard(client, start=False)
    bar, toggle = board.devices_panel.cards[0]

    assert "0 others / 4,000 reserved / 12,384 free of 16,384 MiB" in bar.value
    assert f"tasks: {task['id']}" in bar.value and toggle.value is True
    assert "Pretend GPUs" in board.devices_panel.note.value
    board.tabs.selected_index = 1  # GPUs
    toggle.value = False  # the user's click
    board.refresh()

    assert client.settings()["devices"] == [-1, 1]
    assert board.message.value == "GPU 0 disabled; tasks may use: the CPU, GPU 1"
    assert "disabled" in board.devices_panel.cards[0][0].value
    board.refresh()  # the refresher setting the toggle back from the server is not a click
    assert client.settings()["devices"] == [-1, 1]
    board.close()


def test_stop_asks_once_for_a_running_task_which_then_reads_cancelled_with_its_progress(
    client: Client, config: Path
) -> None:
    task = submit(client, config, cpu=True)
    progress = {"epoch": 3, "iter": 1, "epochs": 4, "steps_per_epoch": 2}
    (Path(task["package_path"]) / "_progress.json").write_text(json.dumps(progress))
    board = Dashboard(client, start=False)
    panel = board.queue_panel
    panel.selected.value = task["id"]

    panel.stop.click()
    board.refresh()
    assert client.task(task["id"])["state"] == "running"  # asked, not stopped
    assert panel.stop.description == f"Confirm: stop {task['id']}"
    assert "is running: press" in board.message.value
    assert panel.stop.button_style == "danger"
    panel.stop.click()
    board.refresh()

    assert client.task(task["id"])["state"] == "cancelled"
    assert board.message.value == f"task {task['id']} cancelled"
    assert panel.stop.disabled and panel.stop.description == "Stop"
    assert panel.stop.button_style == ""  # not drawn red when it can stop nothing
    [row] = panel.shown_rows
    assert (row.state, row.progress_label, row.progress) == ("cancelled", "epoch 3 step 2/2", 0.75)
    assert row.error == "" and "deleted" not in rows_html(board)  # the state says it
    panel.stop.click()  # a second, late press (sent before the button was disabled)
    board.refresh()
    assert "has already ended (cancelled); nothing to stop" in board.message.value
    board.close()


def test_a_queued_task_stops_at_the_first_press(client: Client, config: Path) -> None:
    client.update_settings({"devices": []})  # it stays queued
    task = submit(client, config, memory_mb=100)
    board = Dashboard(client, start=False)
    board.queue_panel.selected.value = task["id"]

    board.queue_panel.stop.click()
    board.refresh()

    assert client.task(task["id"])["state"] == "cancelled"
    board.close()


def test_output_is_read_by_offset_and_escaped(
    client: Client, config: Path, transport: Transport
) -> None:
    task = submit(client, config, cpu=True)
    output = Path(task["package_path"]) / "_output.txt"
    output.write_text("epoch 1 <b>loss</b>\n")
    board = Dashboard(client, start=False)
    board.queue_panel.selected.value = task["id"]
    board.queue_panel.show_output.click()  # to the Output tab, with the next refresh
    board.refresh()
    with output.open("a") as handle:
        handle.write("epoch 2\n")
    transport.sent.clear()
    board.refresh()

    assert "epoch 1 &lt;b&gt;loss&lt;/b&gt;\nepoch 2" in board.output_panel.text.value
    reads = [t for m, t in transport.sent if "/output" in t]
    assert reads[0] != f"tasks/{task['id']}/output?offset=0"  # only the new bytes are asked for
    board.close()


def test_metric_curves_overlay_runs_and_grow_as_epochs_end(client: Client, config: Path) -> None:
    runs = [submit(client, config, cpu=True) for _ in range(2)]
    for index, run in enumerate(runs):
        rows = [{"epoch": e, "loss": 1.0 / (e + index), "acc": 0.5 + e / 10} for e in (1, 2)]
        (Path(run["package_path"]) / "_metrics.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows) + "broken line\n"
        )
    board = Dashboard(client, start=False)
    metrics = board.metrics_panel
    metrics.runs.value = tuple(r["id"] for r in runs)
    board.tabs.selected_index = 4  # Metrics
    board.refresh()

    assert list(metrics.key.options) == ["loss", "acc"] and metrics.key.value == "loss"  # first
    assert [c.ys for c in metrics.drawn_curves()] == [[1.0, 0.5], [0.5, 1 / 3]]
    assert "byte" in metrics.note.value and "not JSON" in metrics.note.value
    assert "0.5" in seen(metrics.summary.value).pieces  # best loss of run 1
    with (Path(runs[0]["package_path"]) / "_metrics.jsonl").open("a") as handle:
        handle.write(json.dumps({"epoch": 3, "loss": 0.25, "acc": 0.9}) + "\n")
    board.refresh()
    assert metrics.drawn_curves()[0].ys == [1.0, 0.5, 0.25]
    board.close()


def test_a_lost_server_reads_disconnected_backs_off_and_recovers(
    client: Client, config: Path, transport: Transport
) -> None:
    submit(client, config, cpu=True)
    board = Dashboard(client, start=False)
    transport.down = True

    board.refresh()
    board.refresh()
    assert "disconnected: cannot reach" in board.status.value
    assert board.backoff_s() == 4 * board.refresh_s  # doubles per failure
    transport.down = False
    board.refresh()

    assert "disconnected" not in board.status.value and board.backoff_s() == board.refresh_s
    board.close()


def test_an_unchanged_refresh_asks_only_for_changes(
    client: Client, config: Path, transport: Transport
) -> None:
    for _ in range(30):
        submit(client, config, memory_mb=100)
    client.update_settings({"devices": []})  # new ones stay queued
    queued = submit(client, config, memory_mb=100)
    board = Dashboard(client, start=False)
    transport.sent.clear()

    board.refresh()

    [(method, listing)] = transport.sent  # the Queue tab in view: the queue's changes only
    assert method == "GET" and listing.startswith("tasks?since=")
    reply = client.tasks_since(int(listing.split("=")[1]))
    assert len(reply["tasks"]) == 30 and queued["id"] not in [t["id"] for t in reply["tasks"]]


def test_the_refresher_thread_updates_by_itself_and_stops_when_closed(
    client: Client, config: Path
) -> None:
    board = Dashboard(client, refresh_s=0.05)
    task = submit(client, config, cpu=True)
    wait_until(lambda: task["id"] in board.queue_panel.row_ids, 30, "the new task in the queue")
    assert board.refreshing

    board.close()
    wait_until(lambda: not board.refreshing, 10, "the refresher to stop")


IDENT = "def experience(self):\n    print('loaded', type(self.model).__name__)\n    return 42\n"
SPIN = """
import time
def experience(self):
    print("spinning", flush=True)
    while True:
        time.sleep(0.01)
"""


def test_the_analyzers_tab_runs_a_picked_script_on_a_loaded_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dlnest_jupyter.service.kernels.private_host import PrivateAnalyzerHost

    from ..conftest import REPO, trained_package

    monkeypatch.setenv("JUPYTER_PATH", str(REPO / "labextension_config"))  # the analyzer spec
    package = trained_package(tmp_path, {"ident": IDENT, "helper": "x = 1\n"})
    service = DLNestService(
        TaskStore(tmp_path / "q.sqlite"), FakeSource((16384,)), RecordingExecutor(),
        analyzers=PrivateAnalyzerHost(),
    )  # fmt: skip
    client = Client(Transport(Api(service, tmp_path, [tmp_path])))
    try:
        analyzer = client.submit({"kind": "analyze", "record_path": str(package), "cpu": True})
        board = Dashboard(client, start=False)
        panel = board.analyzer_panel
        assert panel.task_id == analyzer["id"]
        assert list(panel.script.options) == ["ident"]  # helper.py defines no experience
        assert "DLNest analyzer" in panel.attach.value

        panel.run.click()  # queued while the model loads, then run on it

        def ended() -> bool:
            board.refresh()
            return panel.experiment is None and bool(panel.output.outputs)

        wait_until(ended, 120, lambda: panel.state.value, every_s=0.2)

        assert panel.output.outputs[0]["text"] == "loaded ToyRunner\n"
        assert "succeeded" in panel.state.value
        assert "ready" in panel.kernel.value and "1 experiment " in panel.kernel.value

        # A script saved after the load appears while the tab is in view.
        (tmp_path / "proj" / "AnalyzeScripts" / "later.py").write_text(IDENT)
        board.tabs.selected_index = 3  # Analyzers
        board.scripts_every_s = 0  # (every refresh, not every 5 s)
        board.refresh()
        assert list(panel.script.options) == ["ident", "later"]

        panel.interrupt.click()  # nothing of ours runs: said at once, nothing sent
        board.refresh()
        assert "nothing was interrupted" in board.message.value

        # Interrupt stops what runs, not the experiment sent last (queued behind it).
        (tmp_path / "proj" / "AnalyzeScripts" / "spin.py").write_text(SPIN)
        board.refresh()
        panel.script.value = "spin"
        panel.run.click()
        board.refresh()  # (the refresher thread runs the actions)
        spin = panel.experiment
        assert spin is not None
        wait_until(lambda: board.refresh() or "spinning" in panel.text, 60, "spin's output")
        panel.script.value = "ident"
        panel.run.click()
        board.refresh()
        assert panel.experiment != spin and "queued" in panel.state.value  # said at once
        panel.interrupt.click()
        assert panel.interrupt.disabled  # held: a double click's second lands on nothing
        sent = f"interrupt sent to analyzer {analyzer['id']} (experiment {spin[1]})"
        board.refresh()
        assert board.message.value == sent
        states = lambda: [  # noqa: E731
            client.experiment(analyzer["id"], e, 0, 0, 0)["state"] for e in (2, 3)
        ]
        wait_until(lambda: states() == ["interrupted", "succeeded"], 60, states)
        board.close()
    finally:
        service.stop()


def test_without_gpus_the_gpu_tab_says_so_and_the_cpu_row_works(tmp_path: Path) -> None:
    service = DLNestService(TaskStore(tmp_path / "q.sqlite"), FakeSource(()), RecordingExecutor())
    try:
        board = Dashboard(Client(Transport(Api(service, tmp_path, [tmp_path]))), start=False)

        assert "No GPU" in board.devices_panel.note.value
        assert list(board.devices_panel.cards) == [-1]
        assert "CPU: CPU" in board.devices_panel.cards[-1][0].value
        board.close()
    finally:
        service.stop()


def test_gpu_bars_show_other_users_reservations_and_settings_say_who_schedules(
    tmp_path: Path, config: Path
) -> None:
    box = tmp_path / "box"
    services = [
        DLNestService(
            TaskStore(tmp_path / f"{name}.sqlite"),
            FakeSource((16384,)),
            SleepingExecutor(),
            box=BoxLedger(box, tmp_path / f"{name}.sqlite"),
        )
        for name in ("mine", "theirs")
    ]
    mine, theirs = (Client(InProcessTransport(Api(s, tmp_path, [tmp_path]))) for s in services)
    try:
        submit(theirs, config, memory_mb=6000)  # another scheduler of this box (another user's)
        submit(mine, config, memory_mb=4000)
        board = Dashboard(mine, start=False)
        bar = board.devices_panel.cards[0][0].value
        user = pwd.getpwuid(os.getuid()).pw_name

        assert f"0 others / 6,000 reserved by {user} / 4,000 reserved / 6,384 free" in bar
        assert f"reserved by other users ({user}): 6,000 MiB" in bar
        assert "This queue is scheduled here, by the in-process scheduler of process" in (
            board.settings_panel.scheduler.value
        )
        board.close()
    finally:
        for service in services:
            service.stop()


class ClusterCards:
    """Cards of two machines, as a cluster's device source gives them (no Ray needed here)."""

    def snapshot(self) -> InventorySnapshot:
        cards = [("boxa", 0, 16384), ("boxa", 1, 16384), ("boxb", 0, 8192)]
        return InventorySnapshot(
            gpus=tuple(
                GpuSnapshot(i, f"{node}:{index}", mb, 0, None, (), node=node, index=index)
                for i, (node, index, mb) in enumerate(cards)
            ),
            source="ray",
            local_node="jupyter",
        )


def test_a_clusters_cards_are_grouped_under_their_machines(tmp_path: Path, config: Path) -> None:
    service = DLNestService(TaskStore(tmp_path / "q.sqlite"), ClusterCards(), SleepingExecutor())
    client = Client(InProcessTransport(Api(service, tmp_path, [tmp_path])))
    try:
        submit(client, config, memory_mb=4000)
        board = Dashboard(client, start=False)
        panel = board.devices_panel
        texts = [
            child.value if hasattr(child, "value") else child.children[1].value
            for child in panel.widget.children
        ]
        assert "The Ray cluster's cards: 3 on 2 machines" in texts[0]
        assert "<b>boxa</b>: 2 cards, 28768 of 32768 MiB free" in texts[1]
        assert ">GPU 0: boxa:0: " in texts[2] and ">GPU 1: boxa:1: " in texts[3]
        assert "<b>boxb</b>: 1 card, 8192 of 8192 MiB free" in texts[4]
        assert ">GPU 2: boxb:0: " in texts[5] and ">CPU: CPU" in texts[6]
        board.close()
    finally:
        service.stop()


def test_a_task_whose_package_was_deleted_is_said_once_and_the_rest_keeps_updating(
    client: Client, config: Path
) -> None:
    task = submit(client, config, cpu=True)
    board = Dashboard(client, start=False)
    board.queue_panel.selected.value = task["id"]
    board.refresh()
    shutil.rmtree(task["package_path"])  # removed by hand while the dashboard shows it
    later = submit(client, config, cpu=True)
    board.refresh()
    board.queue_panel.selected.value = later["id"]
    board.refresh()
    board.queue_panel.selected.value = task["id"]  # its checkpoints are read again

    board.refresh()

    assert "disconnected" not in board.status.value and board.failures == 0
    assert f"task {task['id']}:" in board.message.value  # the refusal, said
    assert board.queue_panel.row_ids == [later["id"], task["id"]]  # the queue goes on
    board.close()


def test_what_an_action_said_goes_from_the_message_line_after_a_while(
    client: Client, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard_module, "MESSAGE_KEEP_S", 0.0)
    task = submit(client, config, cpu=True)
    board = Dashboard(client, start=False)
    board.queue_panel.selected.value = task["id"]
    board.queue_panel.stop.click()  # asks for a confirmation, in the message line

    board.refresh()
    assert "is running: press" in board.message.value
    board.refresh()  # later: it no longer stands under every tab
    assert board.message.value == ""
    client.delete(task["id"])
    board.close()
