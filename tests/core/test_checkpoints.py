from __future__ import annotations

import pytest

from dlnest_jupyter.core.checkpoints import TrackLimits, Tracks, plan_save
from dlnest_jupyter.core.errors import ConfigError


def save_many(limits: TrackLimits, holds: list[bool]) -> tuple[Tracks, set[int], list[int]]:
    """Replay saves 0..n-1; returns final tracks, the ids whose files exist, and ids never written."""
    tracks, files, skipped = Tracks(), set(), []
    for new_id, hold in enumerate(holds):
        plan = plan_save(tracks, limits, new_id, hold)
        if plan.write:
            files.add(new_id)
        else:
            skipped.append(new_id)
        files -= set(plan.delete)
        tracks = plan.tracks
    return tracks, files, skipped


def test_defaults_with_holds_on_ids_0_and_2_keep_the_held_and_the_newest() -> None:
    tracks, files, _ = save_many(TrackLimits(), [True, False, True, False])

    assert tracks == Tracks(fast=(3,), slow=(), consistent=(2,))
    assert files == {2, 3}


def test_fast_track_of_zero_writes_nothing_that_no_other_track_holds() -> None:
    limits = TrackLimits(fast=0, slow=0, consistent=1)

    tracks, files, skipped = save_many(limits, [False, True, False, False])

    assert files == {1}
    assert skipped == [0, 2, 3]
    assert tracks.fast == ()


def test_slow_track_takes_every_dilation_th_id_and_keeps_its_newest() -> None:
    limits = TrackLimits(fast=1, slow=2, dilation=3, consistent=0)

    tracks, files, _ = save_many(limits, [False] * 8)

    assert tracks.slow == (3, 6)
    assert files == {3, 6, 7}


def test_consistent_track_overflow_drops_the_oldest_held() -> None:
    limits = TrackLimits(fast=1, slow=0, consistent=2)

    tracks, files, _ = save_many(limits, [True, True, True, False])

    assert tracks.consistent == (1, 2)
    assert files == {1, 2, 3}


def test_a_file_stays_while_any_track_holds_it() -> None:
    limits = TrackLimits(fast=2, slow=1, dilation=2, consistent=1)
    tracks = Tracks()
    plan = plan_save(tracks, limits, 0, hold=True)  # in fast, slow and consistent
    tracks = plan.tracks
    for new_id in (1, 2, 3):
        plan = plan_save(tracks, limits, new_id, hold=False)
        tracks = plan.tracks
        assert 0 not in plan.delete  # fast and slow give it up by id 2; consistent still holds it
    assert tracks.fast == (2, 3) and tracks.slow == (2,) and tracks.consistent == (0,)

    plan = plan_save(tracks, limits, 4, hold=True)  # consistent moves on: nothing holds 0 now

    assert 0 in plan.delete


def test_every_deleted_id_was_held_before_and_is_held_by_no_track_after() -> None:
    limits = TrackLimits(fast=2, slow=2, dilation=3, consistent=1)
    tracks = Tracks()
    for new_id in range(40):
        plan = plan_save(tracks, limits, new_id, hold=new_id % 5 == 0)
        assert set(plan.delete) <= tracks.held()
        assert not set(plan.delete) & plan.tracks.held()
        assert plan.write == (new_id in plan.tracks.held())
        tracks = plan.tracks


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("dilation_in_slow_track", 0),
        ("max_ckpt_in_fast_track", -1),
        ("max_ckpt_in_slow_track", "3"),
        ("max_ckpt_in_consistent_track", 1.5),
        ("max_ckpt_in_fast_track", True),
    ],
)
def test_bad_limits_are_a_config_error_naming_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"checkpoint_args.{key} must be an integer") as caught:
        TrackLimits.from_args({"checkpoint_args": {key: value}})
    assert caught.value.key == f"checkpoint_args.{key}"


def test_missing_limits_take_dlnest_defaults() -> None:
    assert TrackLimits.from_args({}) == TrackLimits(fast=1, slow=0, dilation=100, consistent=1)
