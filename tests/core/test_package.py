from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlnest_jupyter.core.checkpoints import Tracks
from dlnest_jupyter.core.config import load_config
from dlnest_jupyter.core.errors import (
    CheckpointNotFoundError,
    ConfigError,
    PackageError,
    UserCodeError,
)
from dlnest_jupyter.core.package import SavePackage
from dlnest_jupyter.core.package_state import Branch, PackageState
from dlnest_jupyter.core.project import project_layout

from ..conftest import new_package
from ..projects import write_project


def test_package_holds_code_at_relative_paths_and_rewritten_args(project: Path) -> None:
    package = new_package(project, description="first try")

    assert package.path.parent == project.parent / "Saves"
    for relative in (
        "code/ToyRunner.py",
        "code/ToyDataset.py",
        "code/recorder.py",
        "ToyLifeCycle.py",
    ):
        assert (package.path / relative).read_text() == (project.parent / relative).read_text()
    args = package.args()
    assert args["root_file_path"] == str(package.path)
    assert args["runner_file_path"] == "./code/ToyRunner.py"
    assert args["_description"] == "first try"
    assert args["_seed"] == 7  # the config's seed is recorded
    assert package.state() == PackageState()
    assert (package.path / "Checkpoints").is_dir()


def test_package_copy_is_isolated_from_later_edits(project: Path) -> None:
    package = new_package(project)
    (project.parent / "code" / "ToyRunner.py").write_text("# edited after submission\n")

    assert "class ToyRunner" in (package.path / "code" / "ToyRunner.py").read_text()


def test_a_config_without_a_seed_gets_a_random_one_recorded(tmp_path: Path) -> None:
    config = write_project(tmp_path / "p", args={"seed": None})

    seeds = {new_package(config).args()["_seed"] for _ in range(3)}

    assert all(isinstance(s, int) for s in seeds) and len(seeds) > 1


def test_packages_created_in_the_same_second_get_distinct_names(project: Path) -> None:
    paths = {new_package(project).path for _ in range(5)}

    assert len(paths) == 5
    assert all(SavePackage.open(p) for p in paths)


def test_nosave_replaces_the_nosave_folder_and_nothing_else(project: Path) -> None:
    kept = new_package(project)
    first = new_package(project, no_save=True)
    (first.path / "marker").write_text("old run")

    second = new_package(project, no_save=True)

    assert first.path == second.path == project.parent / "Saves" / "NOSAVE"
    assert not (second.path / "marker").exists()
    assert SavePackage.open(kept.path)


def test_nosave_never_clears_a_folder_a_queued_or_running_task_uses(project: Path) -> None:
    first = new_package(project, no_save=True)
    (first.path / "marker").write_text("running")

    second = new_package(project, no_save=True, in_use=frozenset({str(first.path)}))
    third = new_package(project, no_save=True, in_use=frozenset({str(first.path)}))

    assert (first.path / "marker").read_text() == "running"
    assert second.path == third.path == first.path.parent / "NOSAVE_2"  # replaced: not in use


@pytest.mark.parametrize("save_root", ["./root_config.json", "./root_config.json/sub", "/proc/x"])
def test_a_save_root_where_no_folder_can_be_made_is_a_config_error_naming_it(
    project: Path, save_root: str
) -> None:
    args = json.loads(project.read_text())
    project.write_text(json.dumps({**args, "save_root": save_root}))

    with pytest.raises(ConfigError, match="no save package can be made there") as raised:
        new_package(project)

    assert (raised.value.file, raised.value.key) == (project, "save_root")


def test_description_names_the_folder_with_a_suffix_when_taken(project: Path) -> None:
    first = new_package(project, description="lr 0.1/warmup", use_description=True)
    second = new_package(project, description="lr 0.1/warmup", use_description=True)

    assert first.path.name == "lr 0.1_warmup"
    assert second.path.name == "lr 0.1_warmup_1"
    assert SavePackage.open(first.path).args()["_description"] == "lr 0.1/warmup"


def test_absolute_code_paths_land_at_the_package_root(tmp_path: Path) -> None:
    helper = tmp_path / "elsewhere" / "helper.py"
    helper.parent.mkdir()
    helper.write_text("VALUE = 1\n")
    config = write_project(
        tmp_path / "p", args={"other_file_paths": ["./code/recorder.py", str(helper)]}
    )

    package = new_package(config)

    assert (package.path / "helper.py").read_text() == "VALUE = 1\n"
    assert package.args()["other_file_paths"] == ["./code/recorder.py", "./helper.py"]


def test_helpers_keep_their_mode_and_folders_their_nested_files(tmp_path: Path) -> None:
    config = write_project(tmp_path / "p")
    script = tmp_path / "p" / "tools" / "prepare.sh"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\necho ready\n")
    script.chmod(0o755)
    (tmp_path / "p" / "lib" / "deep").mkdir(parents=True)
    (tmp_path / "p" / "lib" / "deep" / "util.py").write_text("X = 2\n")
    args = {"other_file_paths": ["./code/recorder.py", "./tools/prepare.sh", "./lib"]}
    config = write_project(tmp_path / "p", args=args)

    package = new_package(config)

    copied = package.path / "tools" / "prepare.sh"
    assert copied.read_text() == "#!/bin/sh\necho ready\n"
    assert copied.stat().st_mode & 0o111  # still executable
    assert (package.path / "lib" / "deep" / "util.py").read_text() == "X = 2\n"


def test_symlinked_and_escaping_code_paths_copy_the_file_they_reach(tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "common.py"
    shared.parent.mkdir()
    shared.write_text("COMMON = 3\n")
    project = tmp_path / "p"
    project.mkdir()
    (project / "linked.py").symlink_to(shared)
    config = write_project(
        project, args={"other_file_paths": ["./code/recorder.py", "linked.py", "../shared"]}
    )

    package = new_package(config)

    # Both name a file outside the project: each lands at the package root under its own name.
    assert (package.path / "common.py").read_text() == "COMMON = 3\n"
    assert not (package.path / "common.py").is_symlink()
    assert (package.path / "shared" / "common.py").read_text() == "COMMON = 3\n"
    assert package.args()["other_file_paths"] == [
        "./code/recorder.py",
        "./common.py",
        "./shared",
    ]


def test_two_absolute_paths_with_one_name_are_refused_not_overwritten(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "util.py").write_text(f"NAME = {folder!r}\n")
    config = write_project(
        tmp_path / "p",
        args={
            "other_file_paths": [str(tmp_path / "a" / "util.py"), str(tmp_path / "b" / "util.py")]
        },
    )

    with pytest.raises(ConfigError, match=r"would both be copied to util\.py"):
        new_package(config)
    assert not (tmp_path / "p" / "Saves").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"runner_file_path": "./code/Missing.py"},
            "runner_file_path names .*Missing.py, which does not exist",
        ),
        (
            {"dataset_name": "NoSuchDataset"},
            "dataset_name is 'NoSuchDataset', but this file defines no such class",
        ),
        ({"life_cycle_name": None}, "life_cycle_name must be a non-empty string"),
        (
            {"other_file_paths": ["./nothing_here"]},
            "other_file_paths names .*nothing_here, which does not exist",
        ),
        (
            {"runner_file_path": "./code"},
            "runner_file_path names .*code, which is not a Python file",
        ),
    ],
)
def test_bad_code_references_are_refused_before_anything_is_created(
    tmp_path: Path, override: dict[str, object], message: str
) -> None:
    config = write_project(tmp_path / "p", args=override)

    with pytest.raises(ConfigError, match=message):
        new_package(config)
    assert not (tmp_path / "p" / "Saves").exists()


def test_missing_class_key_is_named(tmp_path: Path) -> None:
    config = write_project(tmp_path / "p")
    args = json.loads(config.read_text())
    del args["runner_name"]
    config.write_text(json.dumps(args))

    with pytest.raises(ConfigError, match="missing key 'runner_name'") as raised:
        new_package(config)
    assert raised.value.file == config  # the root config, where it belongs


def test_dlnest_model_keys_are_accepted_as_aliases(tmp_path: Path) -> None:
    config = write_project(tmp_path / "p")
    args = json.loads(config.read_text())
    args["model_name"] = args.pop("runner_name")
    args["model_file_path"] = args.pop("runner_file_path")
    config.write_text(json.dumps(args))

    layout = project_layout(load_config(config).args, config.parent)

    assert layout.by_role("runner").class_name == "ToyRunner"


def test_syntax_error_in_user_code_names_file_and_line(tmp_path: Path) -> None:
    config = write_project(tmp_path / "p", runner="class ToyRunner(:\n    pass\n")

    with pytest.raises(UserCodeError, match=r"ToyRunner.py:1:\d+: syntax error"):
        new_package(config)


def test_opening_a_missing_or_incomplete_package_is_a_package_error(
    tmp_path: Path, project: Path
) -> None:
    with pytest.raises(PackageError, match="folder does not exist"):
        SavePackage.open(tmp_path / "nope")
    package = new_package(project)
    (package.path / "_package.json").write_text('{"prefix": "sta')  # cut short by a crash
    with pytest.raises(PackageError, match=r"cannot read _package.json"):
        package.state()
    (package.path / "_package.json").unlink()
    with pytest.raises(PackageError, match=r"_package.json is missing"):
        SavePackage.open(package.path)


def test_resolving_checkpoints_names_what_the_package_holds(project: Path) -> None:
    package = new_package(project)
    with pytest.raises(PackageError, match="holds no checkpoint yet"):
        package.resolve_checkpoint(None)

    package.write_state(
        PackageState(next_id=3, branches={0: Branch(tracks=Tracks(fast=(1, 2)), head=2)})
    )
    for i in (1, 2):
        package.checkpoint_path(i).write_bytes(b"x")

    assert package.resolve_checkpoint(None) == 2
    assert package.resolve_checkpoint(-1) == 2
    assert package.resolve_checkpoint(1) == 1
    with pytest.raises(
        CheckpointNotFoundError, match=r"no checkpoint 7 in this package \(checkpoints held: 1, 2\)"
    ):
        package.resolve_checkpoint(7)


def test_a_dlnest_0_3_package_json_continues_after_the_highest_id(project: Path) -> None:
    package = new_package(project)
    (package.path / "_package.json").write_text(
        json.dumps({"ckpt_fast": [3], "ckpt_slow": [0], "ckpt_consistent": [2], "prefix": "state_"})
    )
    for i in (0, 2, 3, 5):  # 5: an abandoned file DLNest left on disk
        package.checkpoint_path(i).write_bytes(b"x")

    state = package.state()

    assert (state.next_id, state.head) == (6, 3)
    assert state.held_ids() == [0, 2, 3]


def test_output_comes_in_bounded_parts_and_never_splits_a_character(project: Path) -> None:
    package = new_package(project)
    text = "loss 0.5 → 0.25 ✓\n" * 50
    package.output_path().write_text(text, encoding="utf-8")

    parts, offset = [], 0
    while True:
        offset, part = package.read_output(offset, max_bytes=7)
        if not part:
            break
        parts.append(part)

    assert "".join(parts) == text and offset == package.output_size()
    assert all(len(part.encode()) <= 7 and "\ufffd" not in part for part in parts)


def test_progress_merges_each_ddp_ranks_gpu_memory_and_ignores_a_finished_runs_ranks(
    tmp_path: Path,
) -> None:
    package = SavePackage(tmp_path)
    main = {"epoch": 1, "ranks": 2, "memory_mb": {"0": 700}, "peak_memory_mb": {"0": 900}}
    (tmp_path / "_progress.json").write_text(json.dumps(main))
    rank_1 = {"epoch": 1, "memory_mb": {"1": 650}, "peak_memory_mb": {"1": 880}}
    (tmp_path / "_progress.rank1.json").write_text(json.dumps(rank_1))

    merged = package.progress()

    assert merged["memory_mb"] == {"0": 700, "1": 650}
    assert merged["peak_memory_mb"] == {"0": 900, "1": 880}
    (tmp_path / "_progress.json").write_text(json.dumps({**main, "ranks": None}))  # one process
    assert package.progress()["peak_memory_mb"] == {"0": 900}
    package.clear_progress()
    assert package.progress() == {} and not list(tmp_path.glob("_progress*"))
