"""A remembered project check is reused only while every file it read is unchanged."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from dlnest_jupyter.core import project_check
from dlnest_jupyter.core.errors import ConfigError, UserCodeError
from dlnest_jupyter.core.project_check import ProjectChecks

from ..projects import write_project


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The configs actually read from disk, in order."""
    calls: list[str] = []
    real = project_check.load_config

    def counting(config_path: object, freq_path: object = None) -> object:
        calls.append(str(config_path))
        return real(config_path, freq_path)  # type: ignore[arg-type]

    monkeypatch.setattr(project_check, "load_config", counting)
    return calls


def _settled(config: Path, folder: Path | None = None) -> Path:
    """Age every file under `folder` (the project's) past the window of unremembered checks."""
    old_ns = time.time_ns() - 10 * project_check.SETTLE_NS
    for path in (folder or config.parent).rglob("*"):
        os.utime(path, ns=(old_ns, old_ns), follow_symlinks=False)
    return config


def _remembered(tmp_path: Path) -> tuple[Path, ProjectChecks]:
    """A settled project, checked once, so the next check may come from memory."""
    config = _settled(write_project(tmp_path / "p"))
    checks = ProjectChecks()
    checks.check(config)
    return config, checks


def _bump(path: Path, text: str) -> None:
    """An edit in place that keeps the size: only the modification time tells."""
    stat = path.stat()
    path.write_text(text)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def test_an_unchanged_project_is_checked_once_and_callers_get_their_own_args(
    tmp_path: Path, loads: list[str]
) -> None:
    config = _settled(write_project(tmp_path / "p"))
    checks = ProjectChecks()

    first = checks.check(config)
    first.loaded.args["checkpoint_args"]["max_ckpt_in_fast_track"] = -5  # a careless caller
    second = checks.check(config)

    assert len(loads) == 1
    assert second.loaded.args["checkpoint_args"]["max_ckpt_in_fast_track"] == 100
    assert second.layout == first.layout


def test_an_edited_config_is_read_again(tmp_path: Path, loads: list[str]) -> None:
    config, checks = _remembered(tmp_path)
    args = json.loads(config.read_text())
    args["description_hint"] = "second"
    config.write_text(json.dumps(args))

    assert checks.check(config).loaded.args["description_hint"] == "second"
    assert len(loads) == 2


def test_a_code_file_edited_in_place_to_drop_its_class_is_refused(
    tmp_path: Path, loads: list[str]
) -> None:
    config, checks = _remembered(tmp_path)
    runner = tmp_path / "p" / "code" / "ToyRunner.py"
    source = runner.read_text()
    _bump(runner, source.replace("class ToyRunner", "class ToyRunneX"))

    with pytest.raises(UserCodeError, match="defines no such class"):
        checks.check(config)


def test_a_symlink_pointed_elsewhere_is_noticed(tmp_path: Path, loads: list[str]) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (tmp_path / "v1.py").write_text("A = 1\n")
    (tmp_path / "v2.py").write_text("A = 2\n")
    (project / "helper.py").symlink_to(tmp_path / "v1.py")
    config = write_project(project, args={"other_file_paths": ["./code/recorder.py", "helper.py"]})
    _settled(config, tmp_path)
    checks = ProjectChecks()
    assert {s.name for s, _ in checks.check(config).layout.other_files} == {"recorder.py", "v1.py"}

    (project / "helper.py").unlink()
    (project / "helper.py").symlink_to(tmp_path / "v2.py")

    assert {s.name for s, _ in checks.check(config).layout.other_files} == {"recorder.py", "v2.py"}


def test_a_deleted_file_is_an_error_again_not_a_remembered_success(
    tmp_path: Path, loads: list[str]
) -> None:
    config, checks = _remembered(tmp_path)
    (tmp_path / "p" / "code" / "recorder.py").unlink()

    with pytest.raises(ConfigError, match=r"recorder\.py, which does not exist"):
        checks.check(config)


def test_a_project_written_a_moment_ago_is_checked_again_next_time(
    tmp_path: Path, loads: list[str]
) -> None:
    config = write_project(tmp_path / "p")  # its files may still be being written
    checks = ProjectChecks()

    checks.check(config)
    checks.check(_settled(config))
    checks.check(config)

    assert len(loads) == 2  # remembered only once the files had settled


def test_only_the_most_recent_projects_are_kept(tmp_path: Path, loads: list[str]) -> None:
    configs = [_settled(write_project(tmp_path / f"p{i}")) for i in range(3)]
    checks = ProjectChecks(max_projects=2)
    for config in configs:
        checks.check(config)

    checks.check(configs[2])
    checks.check(configs[0])

    assert len(loads) == 4  # p2 was kept; p0 had been pushed out
