from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dlnest_jupyter.core.package import SavePackage

from ..conftest import new_package, train_in_process
from ..projects import failing_dataset, read_events, write_project

INIT = ["BAll", "BDatasetInit", "dataset.init", "ADatasetInit", "BModelInit", "AModelInit"]
STEP = ["BModelOneStep", "runOneStep", "AModelOneStep"]
VISUALIZE = ["BVisualize", "visualize", "AVisualize"]
VALIDATION = [
    "BValidation",
    "validationInit",
    "BValidateABatch",
    "validateABatch",
    "AValidateABatch",
    "BValidationAnalyze",
    "validationAnalyze",
    "AValidationAnalyze",
    "AValidation",
]
EPOCH = [
    "BOneEpoch",
    *STEP,
    *STEP,
    *VISUALIZE,
    "commandLineOutput",
    *VALIDATION,
    "BSaveModel",
    "ASaveModel",
    "AOneEpoch",
]


def toy(tmp_path: Path, **args: object) -> tuple[SavePackage, Path]:
    events = tmp_path / "events.txt"
    config = write_project(
        tmp_path / "p",
        epochs=2,
        args={"record_file": str(events), "samples": 32, "visualize_at_iter": 1, **args},
    )
    return new_package(config), events


def test_hooks_run_in_dlnest_order(tmp_path: Path) -> None:
    package, events = toy(tmp_path)

    assert train_in_process(package) == 0

    assert read_events(events) == [*INIT, "BTrain", *EPOCH, *EPOCH, "ATrain", "AAll"]
    assert package.state().held_ids() == [0, 1]


@pytest.mark.parametrize(
    ("hook", "skipped", "after"),
    [
        ("BModelOneStep", "runOneStep", "AModelOneStep"),
        ("BVisualize", "visualize", "AVisualize"),
        ("BValidation", "validationInit", "AValidation"),
        ("BValidateABatch", "validateABatch", "AValidateABatch"),
        ("BValidationAnalyze", "validationAnalyze", "AValidationAnalyze"),
        ("BOneEpoch", "BModelOneStep", "AOneEpoch"),
        ("BTrain", "BOneEpoch", "ATrain"),
        ("BAll", "BDatasetInit", "AAll"),
    ],
)
def test_skip_skips_the_stage_and_still_runs_its_after_hook(
    tmp_path: Path, hook: str, skipped: str, after: str
) -> None:
    package, events = toy(tmp_path, skip=[hook])

    assert train_in_process(package) == 0

    recorded = read_events(events)
    assert hook in recorded and after in recorded
    assert skipped not in recorded
    assert recorded[-1] == "AAll"


def test_skipping_one_epoch_moves_on_to_the_next_instead_of_looping(tmp_path: Path) -> None:
    package, events = toy(tmp_path, skip=["BOneEpoch"])

    assert train_in_process(package) == 0

    assert read_events(events).count("AOneEpoch") == 2
    assert package.state().held_ids() == []


def test_skipping_the_save_writes_no_checkpoint(tmp_path: Path) -> None:
    package, events = toy(tmp_path, skip=["BSaveModel"])

    assert train_in_process(package) == 0

    assert read_events(events).count("ASaveModel") == 2
    assert package.state().head is None and not list(package.checkpoints_dir.iterdir())


@pytest.mark.parametrize(
    ("hook", "missing"), [("BDatasetInit", "dataset.init"), ("BModelInit", "runOneStep")]
)
def test_skipping_an_init_stage_aborts_with_a_clear_error(
    tmp_path: Path, hook: str, missing: str
) -> None:
    package, events = toy(tmp_path, skip=[hook])

    assert train_in_process(package) == 1

    recorded = read_events(events)
    assert missing not in recorded
    assert recorded[-2:] == ["trainAborting:DLNestError", "AAll"]
    assert f"{hook} returned 'Skip'" in package.output_path().read_text()


def test_an_error_during_dataset_init_reaches_train_aborting_and_fails_the_run(
    tmp_path: Path,
) -> None:
    events = tmp_path / "events.txt"
    broken = failing_dataset("RuntimeError('no data here')")
    package = new_package(
        write_project(tmp_path / "p", dataset=broken, args={"record_file": str(events)})
    )

    assert train_in_process(package) == 1

    assert read_events(events) == ["BAll", "BDatasetInit", "trainAborting:RuntimeError", "AAll"]
    output = package.output_path().read_text()
    assert "RuntimeError: no data here" in output and "Traceback" in output
    launch = package.launches()[-1]
    assert launch["exit_code"] == 1 and launch["error"] == "RuntimeError: no data here"


def test_a_dataset_init_that_returns_the_wrong_shape_is_named(tmp_path: Path) -> None:
    wrong = "from dlnest_jupyter import DatasetBase\nclass ToyDataset(DatasetBase):\n    def init(self, args):\n        return [1, 2]\n"
    package = new_package(write_project(tmp_path / "p", dataset=wrong))

    assert train_in_process(package) == 1

    assert (
        "ToyDataset.init(args) must return (info, train_loader, val_loader), got list"
        in package.output_path().read_text()
    )


def test_metrics_get_one_line_per_epoch_with_the_epochs_mean_values(tmp_path: Path) -> None:
    package, _ = toy(tmp_path)

    train_in_process(package)

    metrics = package.read_metrics()
    torch = __import__("torch")
    first, second = (
        torch.load(package.checkpoint_path(i), weights_only=True)["log_dict"] for i in (0, 1)
    )
    losses = second["loss"][len(first["loss"]) :]  # the steps of epoch 2
    assert [m["epoch"] for m in metrics] == [1, 2] and len(losses) > 1
    assert metrics[-1]["loss"] == pytest.approx(sum(losses) / len(losses))
    assert metrics[-1]["loss"] != losses[-1]  # not one minibatch's
    assert metrics[-1]["val"] == second["val"][-1]  # one value an epoch: its mean is itself
    assert all(m["_epoch_mean"] is True for m in metrics)
    steps = package.read_metrics("_steps.jsonl")  # and each value of each step, by epoch
    assert [(s["epoch"], s["_branch"]) for s in steps] == [(1, 0), (2, 0)]
    assert steps[-1]["values"]["loss"] == pytest.approx(losses)
    assert steps[-1]["counts"]["loss"] == len(losses)


def test_a_long_epochs_steps_are_thinned_evenly() -> None:
    from dlnest_jupyter.core.package import MAX_STEP_VALUES
    from dlnest_jupyter.runtime.loop import epoch_steps

    log = {"loss": [0.0] * 5 + [float(i) for i in range(2500)], "note": ["text"], "lr": 0.1}

    steps = epoch_steps(log, {"loss": (log["loss"], 5)})

    assert steps["counts"] == {"loss": 2500}  # the text list and the scalar are not steps
    assert len(steps["values"]["loss"]) <= MAX_STEP_VALUES
    assert steps["values"]["loss"][:3] == [0.0, 3.0, 6.0]
    assert epoch_steps(log, {"loss": (log["loss"], len(log["loss"]))}) == {}  # nothing new


def test_a_runner_with_validate_replaces_the_per_batch_trio(tmp_path: Path) -> None:
    from ..projects import RUNNER

    runner = (
        RUNNER
        + """
    def validate(self, loader, log):
        record(self.args, "validate:" + str(len(list(loader))))
        log["val"].append(0.0)
"""
    )
    events = tmp_path / "events.txt"
    package = new_package(
        write_project(tmp_path / "p", epochs=1, runner=runner, args={"record_file": str(events)})
    )

    assert train_in_process(package) == 0

    recorded = read_events(events)
    assert "validate:1" in recorded
    assert "validationInit" not in recorded and "BValidateABatch" not in recorded
    assert (
        recorded.index("BValidation") < recorded.index("validate:1") < recorded.index("AValidation")
    )


def test_a_list_replaced_each_epoch_counts_whole_in_the_epochs_row() -> None:
    from dlnest_jupyter.runtime.loop import epoch_means, list_marks

    log: dict[str, Any] = {"val": [0.5], "loss": [3.0, 2.0]}
    marks = list_marks(log)
    log["val"] = [0.75]  # the same length, a new list: what validation wrote this epoch
    log["loss"] = [*log["loss"][-1:], 1.0]  # trimmed, then one more step

    means = epoch_means(log, marks)

    assert (means["val"], means["loss"]) == (0.75, 1.5)
