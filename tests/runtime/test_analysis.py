from __future__ import annotations

from pathlib import Path

import pytest

from dlnest_jupyter import analyze
from dlnest_jupyter.core.errors import AnalysisScriptError, CheckpointNotFoundError, PackageError

from ..conftest import new_package, train_in_process
from ..projects import write_project


@pytest.fixture
def trained_package(tmp_path: Path):  # type: ignore[no-untyped-def]
    package = new_package(write_project(tmp_path / "p", epochs=3))
    assert train_in_process(package) == 0
    return package


def test_experience_gets_args_model_dataset_and_log_of_the_latest_checkpoint(
    trained_package,
) -> None:  # type: ignore[no-untyped-def]
    def experience(self):  # type: ignore[no-untyped-def]
        return {
            "model_is_runner": self.model is self.runner,
            "epochs_logged": len(self.log["val"]),
            "epochs_arg": self.args["epochs"],
            "checkpoint": self.checkpoint_id,
            "has_loader": self.dataset.valLoader is not None,
        }

    result = analyze(trained_package.path, exp_func=experience, cpu=True)

    assert result == {
        "model_is_runner": True,
        "epochs_logged": 3,
        "epochs_arg": 3,
        "checkpoint": 2,
        "has_loader": True,
    }


def test_an_older_checkpoint_loads_its_own_weights(trained_package) -> None:  # type: ignore[no-untyped-def]
    def weights(self):  # type: ignore[no-untyped-def]
        return self.runner.model[0].weight.clone()

    import torch

    first = analyze(trained_package.path, exp_func=weights, checkpoint_id=0, cpu=True)
    saved = torch.load(trained_package.checkpoint_path(0), weights_only=True)["runner"]["modules"][
        "model"
    ]["0.weight"]
    assert torch.equal(first, saved)
    assert not torch.equal(first, analyze(trained_package.path, exp_func=weights, cpu=True))


def test_a_script_runs_from_its_file(trained_package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "epochs.py"
    script.write_text("def experience(self):\n    return len(self.log['loss'])\n")

    assert analyze(trained_package.path, script_path=script, cpu=True) == 3 * 4


def test_a_script_without_experience_is_refused_before_loading(
    trained_package, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "nothing.py"
    script.write_text("def other(self):\n    pass\n")

    with pytest.raises(
        AnalysisScriptError, match=r"nothing\.py: defines no function experience\(self\)"
    ):
        analyze(trained_package.path, script_path=script, cpu=True)


def test_missing_package_and_checkpoint_are_named(trained_package, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PackageError, match="folder does not exist"):
        analyze(tmp_path / "missing", exp_func=lambda self: None, cpu=True)
    with pytest.raises(CheckpointNotFoundError, match=r"no checkpoint 9 .*held: 0, 1, 2"):
        analyze(trained_package.path, exp_func=lambda self: None, checkpoint_id=9, cpu=True)
