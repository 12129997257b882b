"""The `dlnest` command as a user runs it: a fresh interpreter per call."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from dlnest_jupyter.core.package import SavePackage

from .projects import failing_dataset, write_project

RunCli = Callable[..., subprocess.CompletedProcess[str]]


def assert_one_error_line(result: subprocess.CompletedProcess[str], pattern: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dlnest: error: "), result.stderr
    assert re.search(pattern, lines[0]), lines[0]


def packages_in(project_dir: Path) -> list[Path]:
    saves = project_dir / "Saves"
    return sorted(saves.iterdir()) if saves.exists() else []


def test_digits_template_trains_continues_and_analyses_to_high_accuracy(
    tmp_path: Path, run_cli: RunCli
) -> None:
    project = tmp_path / "digits"
    assert run_cli("new", "-d", project, "-MNIST").returncode == 0

    trained = run_cli("run", "-c", project / "root_config.json", "-CPU", "-d", "first run")
    assert trained.returncode == 0, trained.stderr
    [package] = packages_in(project)
    metrics = [json.loads(line) for line in (package / "_metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 8 and metrics[-1]["acc"] > 0.9
    assert (
        "Epoch #8 finished" in trained.stdout
        and "Epoch #8 finished" in (package / "_output.txt").read_text()
    )

    continued = run_cli("continue", "-r", package, "-devices", "0")  # placed on GPU 0; no CUDA here
    assert continued.returncode == 0, continued.stderr
    assert "Epoch #9 finished" in continued.stdout
    expected_warnings = 0 if torch.cuda.is_available() else 1  # then it runs on the CPU
    assert continued.stdout.count("CUDA is not available") == expected_warnings
    assert (package / "_output.txt").read_text().count("CUDA is not available") == expected_warnings

    analysed = run_cli(
        "analyze", "-r", package, "-s", project / "AnalyzeScripts" / "getAcc.py", "-CPU"
    )
    assert analysed.returncode == 0, analysed.stderr
    accuracy = float(re.search(r"accuracy (\d\.\d+)", analysed.stdout).group(1))  # type: ignore[union-attr]
    assert accuracy > 0.9


def test_a_plugin_that_is_neither_shipped_nor_a_file_is_named_and_nothing_runs(
    tmp_path: Path, run_cli: RunCli
) -> None:
    config = write_project(tmp_path / "p", epochs=1, args={"plugins": ["MailNotes"]})

    result = run_cli("run", "-c", config, "-CPU")

    assert result.returncode != 0
    said = "unknown plugin 'MailNotes': the shipped plugins are LogInit, SimpleCMDVisualize"
    assert said in result.stdout + result.stderr


def test_dry_run_shows_each_key_with_the_file_that_set_it(tmp_path: Path, run_cli: RunCli) -> None:
    config = write_project(tmp_path / "p", args={"child_jsons": ["child.json"]})
    (tmp_path / "p" / "child.json").write_text(json.dumps({"epochs": 9}))

    result = run_cli("run", "-c", config, "--dry-run")

    assert result.returncode == 0
    assert re.search(r"^epochs = 9 +# .*child\.json$", result.stdout, re.M)
    assert re.search(
        r"^checkpoint_args.max_ckpt_in_fast_track = 100 +# .*root_config\.json$",
        result.stdout,
        re.M,
    )
    assert packages_in(tmp_path / "p") == []


def test_new_with_plugins_then_add_plugins_then_a_dry_run_that_hides_the_password(
    tmp_path: Path, run_cli: RunCli
) -> None:
    project = tmp_path / "digits"
    config = project / "root_config.json"

    made = run_cli("new", "-d", project, "-t", "digits", "-p", "LogInit", "MailsNote")
    added = run_cli("addP", "-d", project, "-p", "SimpleCMDVisualize", "MailsNote", "-F")
    refused = run_cli("addP", "-d", project, "-p", "Nope")
    written = json.loads(config.read_text())
    written["plugins_config"]["MailsNote"]["password"] = "hunter2-in-a-file"
    config.write_text(json.dumps(written))
    shown = run_cli("run", "-c", config, "--dry-run")

    assert made.returncode == added.returncode == shown.returncode == 0, made.stderr
    assert f"dlnest: added LogInit, MailsNote to {config}" in made.stdout
    assert f"dlnest: added SimpleCMDVisualize to {config}" in added.stdout
    assert f"dlnest: MailsNote was already listed in {config}: left as is" in added.stdout
    assert refused.returncode == 2 and "unknown plugin 'Nope'" in refused.stderr
    assert written["plugins"] == ["LogInit", "MailsNote", "SimpleCMDVisualize"]
    assert "plugins_config.MailsNote.password = '***'" in shown.stdout
    assert "hunter2" not in shown.stdout + shown.stderr


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"child_jsons": ["bad.json"]}, r"bad\.json:2:8: invalid JSON"),
        (
            {"child_jsons": ["absent.json"]},
            r"root_config\.json: child config .*absent\.json does not exist",
        ),
        ({"child_jsons": ["loop.json"]}, r"child_jsons form a cycle: .*loop\.json -> .*loop\.json"),
        (
            {"runner_file_path": "./code/Nope.py"},
            r"runner_file_path names .*Nope\.py, which does not exist",
        ),
        (
            {"dataset_name": "Missing"},
            r"ToyDataset\.py: dataset_name is 'Missing', but this file defines no such class",
        ),
        (
            {"checkpoint_args": {"dilation_in_slow_track": 0}},
            r"checkpoint_args\.dilation_in_slow_track must be an integer >= 1",
        ),
    ],
)
def test_bad_config_gets_one_error_line_and_creates_nothing(
    tmp_path: Path, run_cli: RunCli, change: dict[str, object], pattern: str
) -> None:
    config = write_project(tmp_path / "p", args=change)
    (tmp_path / "p" / "bad.json").write_text('{\n  "a": ,\n}')
    (tmp_path / "p" / "loop.json").write_text(json.dumps({"child_jsons": ["loop.json"]}))

    result = run_cli("run", "-c", config, "-CPU")

    assert_one_error_line(result, pattern)
    assert packages_in(tmp_path / "p") == []


def test_a_class_that_is_not_a_subclass_of_the_base_is_refused_and_its_package_removed(
    tmp_path: Path, run_cli: RunCli
) -> None:
    config = write_project(tmp_path / "p", runner="class ToyRunner:\n    pass\n")

    result = run_cli("run", "-c", config, "-CPU")

    assert_one_error_line(
        result, r"ToyRunner\.py: ToyRunner is not a subclass of dlnest_jupyter\.ModelBase"
    )
    assert packages_in(tmp_path / "p") == []


def test_continue_and_analyze_name_a_missing_package_or_checkpoint(
    tmp_path: Path, run_cli: RunCli
) -> None:
    config = write_project(tmp_path / "p", epochs=1)
    assert run_cli("run", "-c", config, "-CPU").returncode == 0
    [package] = packages_in(tmp_path / "p")
    script = tmp_path / "empty.py"
    script.write_text("x = 1\n")

    assert_one_error_line(
        run_cli("continue", "-r", tmp_path / "gone", "-CPU"), r"gone: no save package here"
    )
    assert_one_error_line(
        run_cli("continue", "-r", package, "-c", "5", "-CPU"),
        r"no checkpoint 5 in this package \(checkpoints held: 0\)",
    )
    assert_one_error_line(
        run_cli("analyze", "-r", package, "-s", script, "-CPU"),
        r"empty\.py: defines no function experience",
    )
    assert_one_error_line(
        run_cli("analyze", "-r", package, "-s", tmp_path / "absent.py", "-CPU"),
        r"absent\.py: analysis script does not exist",
    )
    assert packages_in(tmp_path / "p") == [package]


def test_new_refuses_a_folder_that_already_has_files(tmp_path: Path, run_cli: RunCli) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")

    assert_one_error_line(run_cli("new", "-d", tmp_path / "taken"), r"taken: already exists")
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "taken").iterdir()) == ["notes.txt"]


def test_a_run_that_aborts_exits_non_zero_and_says_so(tmp_path: Path, run_cli: RunCli) -> None:
    broken = failing_dataset("ValueError('bad shard')")
    config = write_project(tmp_path / "p", dataset=broken)

    result = run_cli("run", "-c", config, "-CPU")

    assert result.returncode == 1
    # The run's own output (stderr included, in order) is echoed on stdout and kept in the package.
    assert "ValueError: bad shard" in result.stdout
    assert "stopped with exit code 1" in result.stdout
    [package] = packages_in(tmp_path / "p")
    assert "ValueError: bad shard" in (package / "_output.txt").read_text()


def test_ray_node_declares_each_card_s_memory_and_no_ray_gpus(run_cli: RunCli) -> None:
    result = run_cli(
        "ray-node", "--address", "10.0.0.1:6379", "--node", "boxa", "--dry-run", "--", "--num-cpus=8",
        env={"DLNEST_FAKE_GPUS": "2x24576"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert " start --address=10.0.0.1:6379 --num-gpus=0 " in line and line.endswith("--num-cpus=8")
    resources = json.loads(re.search(r"--resources=(\{.*?\})", line).group(1))  # type: ignore[union-attr]
    assert resources == {
        "dlnest_node_boxa": 1,
        "dlnest_mb_boxa_0": 24576,
        "dlnest_mb_boxa_1": 24576,
    }
    assert "boxa:0 24576 MiB" in result.stderr


def test_ray_node_refuses_a_node_name_ray_cannot_hold(run_cli: RunCli) -> None:
    result = run_cli("ray-node", "--node", "box_a", "--dry-run")
    assert result.returncode == 2 and "node name 'box_a'" in result.stderr


def test_a_freq_key_the_config_lacks_is_warned_of_and_the_run_still_goes(
    tmp_path: Path, run_cli: RunCli
) -> None:
    config = write_project(tmp_path / "p", epochs=1, args={"lr": 0.1})
    freq = tmp_path / "p" / "freq.json"
    freq.write_text(json.dumps({"lrr": 0.01}))

    dry = run_cli("run", "-c", config, "-f", freq, "--dry-run")
    result = run_cli("run", "-c", config, "-f", freq, "-CPU")

    warning = f"'lrr' in {freq} is not a key of the config; the nearest key is 'lr'"
    assert f"# warning: {warning}" in dry.stdout
    assert result.returncode == 0, result.stderr
    assert f"dlnest: warning: {warning}\n" in result.stderr
    assert len(packages_in(tmp_path / "p")) == 1


def test_continue_with_epochs_trains_until_that_epoch_and_refuses_one_not_past(
    tmp_path: Path, run_cli: RunCli
) -> None:
    config = write_project(tmp_path / "p", epochs=1)
    assert run_cli("run", "-c", config, "-CPU").returncode == 0
    [package] = packages_in(tmp_path / "p")

    continued = run_cli("continue", "-r", package, "--epochs", "3", "-CPU")
    refused = run_cli("continue", "-r", package, "--epochs", "3", "-CPU")

    assert continued.returncode == 0, continued.stderr
    assert "epoch 3 loss" in continued.stdout and "epoch 4 loss" not in continued.stdout
    assert json.loads((package / "args.json").read_text())["epochs"] == 1  # the first run's
    latest = SavePackage.open(package)
    assert latest.args_for(latest.state().head)["epochs"] == 3  # the fork's config
    assert_one_error_line(refused, r"--epochs 3 is not past checkpoint \d+, which ends epoch 3")
