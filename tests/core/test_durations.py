"""How far a run is and when it should end: its pace first, its job's history else."""

from __future__ import annotations

from dlnest_jupyter.core.durations import expected_end, fraction_done, seconds_left

PACE = {"epoch": 3, "epochs": 10, "iter": 4, "steps_per_epoch": 10, "epoch_s": 6.0}


def test_a_run_with_a_known_pace_ends_when_its_epochs_left_at_that_pace_are_done() -> None:
    assert fraction_done(PACE) == (2 + 0.5) / 10
    assert seconds_left(PACE) == 6.0 * 10 * 0.75
    assert expected_end(PACE, started_at=100.0, history_s=9999.0, now=1000.0) == 1045.0


def test_without_a_pace_the_jobs_earlier_runs_say_but_never_before_now() -> None:
    warming = {"epoch": 1, "epochs": 10, "iter": 3}  # no epoch has ended yet

    assert seconds_left(warming) is None
    assert expected_end(warming, started_at=100.0, history_s=500.0, now=300.0) == 600.0
    assert expected_end(warming, started_at=100.0, history_s=50.0, now=300.0) == 300.0
    assert expected_end(warming, started_at=100.0, history_s=None, now=300.0) is None
    assert expected_end({}, started_at=None, history_s=500.0, now=300.0) is None
