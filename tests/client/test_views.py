"""What the magics show for tasks, from hand-made replies: newer servers' fields and older ones'."""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from dlnest_jupyter.client import magics
from dlnest_jupyter.client.magics import DLNestMagics
from dlnest_jupyter.client.views import (
    checkpoints_table,
    devices_setting_text,
    reservation_sentence,
    tasks_table,
)


def task(**fields: Any) -> dict[str, Any]:
    base = {"id": 41, "kind": "train", "state": "queued", "devices": [], "memory_mb": None,
            "description": "", "error": None, "progress": {}, "package_path": "/p"}  # fmt: skip
    return {**base, **fields}


def test_tasks_show_what_each_holds_asks_or_the_default_and_why_a_queued_one_waits() -> None:
    table = tasks_table(
        [
            task(id=1, state="running", devices=[0], memory_mb=None, reserved_mb=14745),
            task(id=2, memory_mb=3000, waiting_for="needs 3,000 MiB; most free is 1,639 MiB"),
            task(id=3),  # an older server: no waiting_for, no reserved_mb
        ]
    )

    rows = {row[0]: dict(zip(table.columns, row, strict=True)) for row in table.rows}
    assert [rows[i]["MiB"] for i in ("1", "2", "3")] == [
        "14,745 held",
        "3,000",
        "default (90% of a card)",
    ]
    assert rows["2"]["waiting for"] == "needs 3,000 MiB; most free is 1,639 MiB"
    assert rows["3"]["waiting for"] == ""
    assert "waiting for" not in tasks_table([task(id=3)]).columns
    long_error = "exit code 1: " + "x" * 300 + "\nTraceback ..."
    [row] = tasks_table([task(id=4, state="failed", error=long_error)]).rows
    assert row[-1] == "exit code 1: " + "x" * 86 + "…"  # its first line, 100 characters


def test_a_submission_says_what_it_reserves() -> None:
    assert reservation_sentence(task()) == "reserves the default, 90% of a card, once placed"
    assert reservation_sentence(task(memory_mb=2000)) == "reserves 2,000 MiB once placed"
    assert reservation_sentence(task(state="running", memory_mb=2000, reserved_mb=2000)) == (
        "reserved 2,000 MiB"
    )
    assert reservation_sentence(task(state="running", reserved_mb=14745)) == (
        "reserved 14,745 MiB (the default, 90% of a card)"
    )
    learned = {"memory_source": "learned", "memory_learned_mb": 3412, "memory_learned_runs": 3}
    assert reservation_sentence(task(**learned)) == (
        "reserves 3,412 MiB once placed, learned from 3 earlier runs of this config"
    )
    assert reservation_sentence(task(state="running", reserved_mb=3412, **learned)) == (
        "reserved 3,412 MiB, learned from 3 earlier runs of this config"
    )
    # -DDP: the learned figure is each rank's, whatever the ranks hold together.
    assert reservation_sentence(task(state="running", reserved_mb=6824, **learned), ddp=True) == (
        "reserved 3,412 MiB for each DDP rank, learned from 3 earlier runs of this config"
    )


class QueuedThenDone:
    """A client whose task waits for two reasons, then runs and ends."""

    in_process = False

    def __init__(self) -> None:
        self.replies = [
            task(waiting_for="launch delay, 3 s"),
            task(waiting_for="launch delay, 3 s"),
            task(waiting_for="next in line"),
            task(state="succeeded", devices=[0]),
        ]

    def task(self, task_id: int) -> dict[str, Any]:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def output(self, task_id: int, offset: int) -> dict[str, Any]:
        return {"offset": 0, "text": ""}


def test_watch_on_a_queued_task_says_why_it_waits_and_updates_that_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(magics, "_WATCH_POLL_S", 0)
    shell = InteractiveShell.instance()
    try:
        dlnest = DLNestMagics(shell, client_factory=QueuedThenDone)  # type: ignore[arg-type]
        dlnest.dlnest("watch 41")
    finally:
        InteractiveShell.clear_instance()

    assert capsys.readouterr().out.splitlines() == [
        "dlnest: task 41 queued, waiting for: launch delay, 3 s",
        "dlnest: task 41 queued, waiting for: next in line",
        "dlnest: task 41 succeeded on GPU 0",
        "dlnest: task 41 succeeded",
    ]


def test_checkpoints_show_by_branch_where_each_branch_forked() -> None:
    reply = {
        "head": 8,
        "checkpoints": [
            {"id": 6, "epoch": 7, "branch": 0, "parent": 5},
            {"id": 7, "epoch": 8, "branch": 0, "parent": 6},
            {"id": 8, "epoch": 8, "branch": 1, "parent": 6},
        ],
        "branches": [
            {"id": 0, "parent": None, "head": 7, "fork_checkpoint": None, "fork_epoch": None},
            {"id": 1, "parent": 0, "head": 8, "fork_checkpoint": 6, "fork_epoch": 7},
        ],
    }

    assert checkpoints_table(reply).rows == [
        ["0", "6", "7", "the first run"],
        ["0", "7", "8", ""],
        [
            "1",
            "8",
            "8",
            "from checkpoint 6 (epoch 7); latest (continue and analyze use it by default)",
        ],
    ]


def test_a_device_list_without_the_cpu_says_the_cpu_is_disabled() -> None:
    assert devices_setting_text([0, 1]) == (
        "GPUs 0, 1 enabled; the CPU is disabled (-CPU tasks are refused; list -1 to keep it)"
    )
    assert devices_setting_text([-1, 0]) == "GPU 0 and the CPU are enabled"
    assert devices_setting_text([-1, 0], all_gpus=[0, 1]) == (
        "GPU 0 and the CPU are enabled; GPU 1 disabled"
    )
    assert devices_setting_text(None) == "every device is enabled"


class LongHistory:
    """A client whose queue holds 30 ended tasks, then one running and one queued."""

    in_process = False

    def tasks(self) -> list[dict[str, Any]]:
        ended = [
            task(id=i, state="failed" if i % 7 == 0 else "succeeded", ended_at=100.0 + i)
            for i in range(1, 31)
        ]
        return [*ended, task(id=31, state="running", devices=[0]), task(id=32)]


def test_tasks_shows_the_queue_and_the_last_ended_and_says_how_many_older_it_left_out(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shell = InteractiveShell.instance()
    try:
        dlnest = DLNestMagics(shell, client_factory=LongHistory)  # type: ignore[arg-type]
        dlnest.dlnest("tasks")
        recent = capsys.readouterr().out
        dlnest.dlnest("tasks -n 2")
        two = capsys.readouterr().out
        dlnest.dlnest("tasks --all")
        every = capsys.readouterr().out
        with pytest.raises(UsageError, match="argument -n: -1 is below 0"):
            dlnest.dlnest("tasks -n -1")
    finally:
        InteractiveShell.clear_instance()

    def ids(out: str) -> list[int]:
        return [int(line.split()[0]) for line in out.splitlines() if line[:1].isdigit()]

    assert ids(recent) == [*range(11, 31), 31, 32]  # the 20 that ended last, in queue order
    assert "dlnest: 10 older ended tasks not shown (%dlnest tasks --all;" in recent
    assert ids(two) == [29, 30, 31, 32]
    assert ids(every) == list(range(1, 33)) and "not shown" not in every
