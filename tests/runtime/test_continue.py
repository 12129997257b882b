from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dlnest_jupyter.core.package import SavePackage

from ..conftest import new_package, train_in_process
from ..projects import write_project


def checkpoint(package: SavePackage, checkpoint_id: int) -> dict:  # type: ignore[type-arg]
    return torch.load(package.checkpoint_path(checkpoint_id), weights_only=True)  # type: ignore[no-any-return]


def trained(tmp_path: Path, epochs: int = 4) -> SavePackage:
    package = new_package(write_project(tmp_path / "p", epochs=epochs))
    assert train_in_process(package) == 0
    return package


def test_continue_from_checkpoint_k_reproduces_the_uninterrupted_losses_exactly(
    tmp_path: Path,
) -> None:
    package = trained(tmp_path)
    uninterrupted = checkpoint(package, 3)["log_dict"]

    assert train_in_process(package, checkpoint_id=1, kind="continue") == 0

    resumed = checkpoint(package, package.state().head)["log_dict"]  # type: ignore[arg-type]
    assert resumed["loss"] == uninterrupted["loss"]  # dropout, shuffling and momentum all match
    assert resumed["lr"] == uninterrupted["lr"]  # the StepLR schedule was restored, not restarted
    assert len(resumed["loss"]) == 4 * 4


def test_continue_from_an_older_checkpoint_never_reloads_the_abandoned_branch(
    tmp_path: Path,
) -> None:
    package = trained(tmp_path)  # ids 0..3 for epochs 1..4
    assert train_in_process(package, checkpoint_id=1, kind="continue") == 0  # branch B: ids 4, 5

    state = package.state()
    assert (state.head, state.next_id) == (5, 6)
    assert state.checkpoints[4].parent == 1
    assert 3 in state.held_ids()  # the abandoned id stays loadable by explicit id...
    assert package.resolve_checkpoint(None) == 5  # ...but "latest" is branch B's newest
    assert checkpoint(package, 5)["finished_epoch"] == 4
    assert (
        checkpoint(package, 5)["checkpoint_id"] == 5
    )  # ids never repeat, so no file was overwritten


def test_a_continue_that_saved_nothing_leaves_its_branch_point_as_latest(tmp_path: Path) -> None:
    package = trained(tmp_path)
    args = package.args()
    (package.path / "args.json").write_text(json.dumps({**args, "skip": ["BTrain"]}))

    assert train_in_process(package, checkpoint_id=1, kind="continue") == 0

    assert package.resolve_checkpoint(None) == 1


def test_default_continue_starts_after_the_head_and_appends_output(tmp_path: Path) -> None:
    package = trained(tmp_path, epochs=2)
    first_output = package.output_path().read_text()

    assert train_in_process(package, checkpoint_id=-1, kind="continue") == 0

    assert checkpoint(package, package.state().head)["finished_epoch"] == 3  # type: ignore[arg-type]
    output = package.output_path().read_text()
    assert output.startswith(first_output) and "epoch 3 loss" in output
    assert [launch["kind"] for launch in package.launches()] == ["train", "continue"]
    assert package.launches()[-1]["checkpoint_id"] == 1


def test_checkpoints_hold_modules_by_name_and_optimizer_and_scheduler_state(tmp_path: Path) -> None:
    package = trained(tmp_path, epochs=2)

    saved = checkpoint(package, 1)

    assert set(saved) >= {"runner", "dataset", "life_cycle", "log_dict", "finished_epoch", "rng"}
    assert set(saved["runner"]["modules"]) == {"model", "cost"}
    assert saved["runner"]["optimizer"]["optimizer"]["state"]  # momentum buffers
    assert (
        saved["runner"]["scheduler"]["scheduler"]["last_epoch"] == 2
    )  # DLNest saved {} on torch 2


NOTE_CLASS = """

class Note:
    def __init__(self, text):
        self.text = text
"""
UNSAFE_STATE = """
def getSaveDict(self):
    return {"note": Note("pickled object")}

def loadSaveDict(self, saveDict):
    self.note = saveDict["note"]
"""


def test_checkpoints_load_weights_only_unless_the_user_opts_out(tmp_path: Path) -> None:
    from dlnest_jupyter.core.errors import PackageError
    from dlnest_jupyter.runtime.train import prepare
    from dlnest_jupyter.runtime.train_request import TrainRequest

    from ..projects import life_cycle_source

    package = new_package(
        write_project(
            tmp_path / "p", epochs=1, life_cycle=life_cycle_source(UNSAFE_STATE) + NOTE_CLASS
        )
    )
    assert train_in_process(package) == 0
    request = TrainRequest(kind="continue", checkpoint_id=-1)

    with pytest.raises(PackageError, match=r"set checkpoint_args\.weights_only to false"):
        prepare(package, request)

    args = package.args()
    args["checkpoint_args"]["weights_only"] = False
    (package.path / "args.json").write_text(json.dumps(args))
    assert prepare(package, request).checkpoint is not None


def test_continue_from_an_older_checkpoint_keeps_every_checkpoint_of_the_original_run(
    tmp_path: Path,
) -> None:
    # The researcher's day: 8 epochs keeping the newest 3 (ids 5, 6, 7), then a continue from 6.
    config = write_project(
        tmp_path / "p",
        epochs=8,
        args={"checkpoint_args": {"max_ckpt_in_fast_track": 3, "max_ckpt_in_consistent_track": 0}},
    )
    package = new_package(config)
    assert train_in_process(package) == 0
    assert package.state().held_ids() == [5, 6, 7]

    assert train_in_process(package, checkpoint_id=6, kind="continue") == 0  # epoch 8 again: id 8

    state = package.state()
    assert state.held_ids() == [5, 6, 7, 8]  # the original run's 5, 6 and 7 are all still there
    assert all(package.checkpoint_path(i).is_file() for i in (5, 6, 7, 8))
    assert (state.branch, state.head) == (1, 8)
    assert state.branches[1].fork_checkpoint == 6 and state.branches[1].parent == 0
    assert state.branches[0].head == 7
    assert [row["_branch"] for row in package.read_metrics()] == [0] * 8 + [1]

    # Continuing the original run's newest checkpoint goes on in the original branch.
    assert train_in_process(package, checkpoint_id=7, kind="continue") == 0
    state = package.state()
    assert (state.branch, state.head) == (0, 9)
    assert state.held_ids() == [6, 7, 8, 9]  # branch 0 pushed out its own 5, nothing of branch 1
    assert package.read_metrics()[-1]["_branch"] == 0


def test_a_continue_with_a_new_config_keeps_the_old_checkpoints_loading_with_theirs(
    tmp_path: Path,
) -> None:
    from dlnest_jupyter.runtime.session import open_session
    from dlnest_jupyter.runtime.train import run_training
    from dlnest_jupyter.runtime.train_request import TrainRequest

    package = trained(tmp_path, epochs=2)  # ids 0, 1 with batch_size 16
    request = TrainRequest(kind="continue", checkpoint_id=0, overrides={"batch_size": 8})

    assert run_training(package, request) == 0

    state = package.state()
    assert state.branches[state.branch].overrides == {"batch_size": 8}
    assert json.loads((package.path / "args.json").read_text())["batch_size"] == 16
    assert open_session(package, (-1,), 1).args["batch_size"] == 16  # the first run's
    assert open_session(package, (-1,), state.head).args["batch_size"] == 8  # the fork's
