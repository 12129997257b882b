from __future__ import annotations

from dlnest_jupyter.core.checkpoints import TrackLimits, Tracks
from dlnest_jupyter.core.package_state import (
    Branch,
    PackageState,
    continue_from,
    record_save,
)

KEEP_TWO = TrackLimits(fast=2, slow=0, consistent=0)


def saved(state: PackageState, epochs: range) -> PackageState:
    for epoch in epochs:
        state, _ = record_save(state, KEEP_TWO, state.next_id, epoch, hold=False)
    return state


def test_a_branch_pushes_out_only_its_own_checkpoints() -> None:
    original = saved(PackageState(), range(1, 5))  # ids 0..3, branch 0 keeps 2 and 3

    forked = continue_from(original, 2)
    state, plan = record_save(forked, KEEP_TWO, forked.next_id, 4, hold=False)
    state, plan = record_save(state, KEEP_TWO, state.next_id, 5, hold=False)
    state, plan = record_save(state, KEEP_TWO, state.next_id, 6, hold=False)

    assert plan.delete == (4,)  # the branch's own oldest, never the original's 3
    assert state.held_ids() == [2, 3, 5, 6]
    assert state.branches[1] == Branch(Tracks(fast=(5, 6)), parent=0, fork_checkpoint=2, head=6)
    assert state.checkpoints[4 + 1].parent == 4 and state.checkpoints[5].branch == 1


def test_continuing_a_branch_head_goes_on_in_that_branch() -> None:
    state = continue_from(saved(PackageState(), range(1, 4)), 2)  # 2 is branch 0's head

    assert state.branch == 0 and list(state.branches) == [0]


def test_a_retry_of_a_fork_that_never_saved_is_that_fork_again() -> None:
    original = saved(PackageState(), range(1, 5))
    empty = continue_from(original, 2)
    assert (empty.branch, empty.head) == (1, 2)  # "latest" is the fork point until it saves

    assert continue_from(empty, empty.head) == empty  # type: ignore[arg-type]
    again = continue_from(empty, 1)  # elsewhere: a new number (its epochs may be in metrics)
    assert (again.branch, again.branches[2].fork_checkpoint) == (2, 1)


def test_a_continue_that_changes_the_config_forks_even_from_a_head() -> None:
    original = saved(PackageState(), range(1, 5))  # head 3

    wider = continue_from(original, 3, {"hidden": 64, "optim": {"lr": 0.1}})
    wider, _ = record_save(wider, KEEP_TWO, wider.next_id, 5, hold=False)
    longer = continue_from(wider, 4, {"epochs": 9})

    assert (wider.branch, wider.branches[1].parent) == (1, 0)
    assert original.overrides_of(3) == {} and wider.overrides_of(3) == {}  # 3 stays as trained
    assert wider.overrides_of(4) == {"hidden": 64, "optim": {"lr": 0.1}}
    assert longer.branches[2].overrides == {"hidden": 64, "optim": {"lr": 0.1}, "epochs": 9}


def test_the_book_round_trips_and_keeps_dlnest_keys_for_the_current_branch() -> None:
    state = saved(continue_from(saved(PackageState(), range(1, 5)), 2), range(3, 5))

    raw = state.to_json()

    assert PackageState.from_json(raw, []) == state
    assert (raw["ckpt_fast"], raw["head"], raw["branch"]) == ([4, 5], 5, 1)


def test_a_package_from_before_branches_is_one_branch() -> None:
    raw = {
        "format": 1,
        "ckpt_fast": [4, 5],
        "ckpt_slow": [],
        "ckpt_consistent": [2],
        "next_id": 6,
        "head": 5,
        "checkpoints": {"2": {"epoch": 3, "parent": 1}, "5": {"epoch": 4, "parent": 4}},
    }

    state = PackageState.from_json(raw, [])

    assert (state.branch, state.head, state.held_ids()) == (0, 5, [2, 4, 5])
    assert continue_from(state, 2).branches[1].parent == 0


def test_a_package_from_before_branches_keeps_the_line_a_continue_had_left() -> None:
    # Format 1: a run kept 5, 6, 7; a continue from 6 was stopped before it saved (head 6).
    raw = {
        "format": 1,
        "ckpt_fast": [5, 6, 7],
        "ckpt_slow": [],
        "ckpt_consistent": [],
        "next_id": 8,
        "head": 6,
        "checkpoints": {str(i): {"epoch": i + 1, "parent": i - 1} for i in (5, 6, 7)},
    }
    state = continue_from(PackageState.from_json(raw, []), 6)
    limits = TrackLimits(fast=3, slow=0, consistent=0)

    for epoch in (7, 8, 9):  # the continued line saves 8, 9, 10
        state, _ = record_save(state, limits, state.next_id, epoch, hold=False)

    assert 7 in state.held_ids()  # the original run's last stays
    assert state.branches[1].fork_checkpoint == 6 and state.head == 10
