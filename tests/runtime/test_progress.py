"""`_progress.json`: a rate over a recent window and the last epoch's time, on a fake clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlnest_jupyter.runtime.progress import RATE_WINDOW_S, ProgressFile


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def read(folder: Path) -> dict[str, float | None]:
    return dict(json.loads((folder / "_progress.json").read_text()))


def test_the_rate_is_steps_per_second_over_the_recent_window(tmp_path: Path) -> None:
    clock = Clock()
    progress = ProgressFile(tmp_path, interval_s=0.5, clock=clock)
    for step in range(200):  # 20 s at 10 steps/s
        progress(1, step)
        clock.now += 0.1
    for step in range(200, 240):  # then 4 s at 100 steps/s
        progress(1, step)
        clock.now += 0.01
    progress.flush()  # an epoch end right after a write: the old rate jumped here

    rate = read(tmp_path)["steps_per_s"]
    assert rate is not None
    # The last ~10 s: about 9.6 s at 10/s and 0.4 s at 100/s (the window's edge moves with the
    # writes), so about 13.6/s: neither the whole run's pace nor the last burst's.
    assert 12 < rate < 16
    assert read(tmp_path)["rate_window_s"] == RATE_WINDOW_S


def test_a_flush_just_after_a_write_keeps_the_rate_steady(tmp_path: Path) -> None:
    clock = Clock()
    progress = ProgressFile(tmp_path, interval_s=0.5, clock=clock)
    for step in range(101):
        progress(1, step)  # the last one writes (0.5 s since the previous write)
        clock.now += 0.05  # 20 steps/s
    before = read(tmp_path)["steps_per_s"]
    clock.now += 0.001
    progress(1, 101)  # one more step, then the epoch ends 1 ms later
    clock.now += 0.001
    progress.flush()

    after = read(tmp_path)["steps_per_s"]
    assert before is not None and after is not None
    assert abs(after - 20) < 1 and abs(before - 20) < 1


def test_epoch_time_is_known_only_once_an_epoch_has_ended(tmp_path: Path) -> None:
    clock = Clock()
    progress = ProgressFile(tmp_path, interval_s=0.5, epochs=3, clock=clock)
    for step in range(10):
        progress(1, step)
        clock.now += 0.3
    progress.flush()
    assert read(tmp_path)["epoch_s"] is None  # one epoch in flight: no estimate yet

    clock.now += 2.0  # validation and the save count in an epoch's time
    progress(2, 0)
    progress.flush()
    assert read(tmp_path)["epoch_s"] == pytest.approx(
        5.0
    )  # from the first step of epoch 1 to that of 2


def test_epoch_time_is_the_mean_of_this_runs_epochs_and_a_new_run_starts_blank(
    tmp_path: Path,
) -> None:
    clock = Clock()
    progress = ProgressFile(tmp_path, interval_s=0.5, epochs=4, clock=clock)
    for epoch, seconds in ((1, 4.0), (2, 10.0), (3, 4.0)):  # a busy machine's middle epoch
        progress(epoch, 0)
        clock.now += seconds
    progress(4, 0)
    progress.flush()
    assert read(tmp_path)["epoch_s"] == pytest.approx(6.0)  # not the last epoch's 4 s

    ProgressFile(tmp_path, epochs=8, clock=clock)  # a continue of the package starts

    assert not (tmp_path / "_progress.json").exists()  # the last run's figures are gone
