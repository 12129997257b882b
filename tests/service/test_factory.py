from __future__ import annotations

from pathlib import Path

import pytest

from dlnest_jupyter.core.errors import ConfigError
from dlnest_jupyter.core.tasks import TaskKind
from dlnest_jupyter.service.factory import build_service, default_database_path
from dlnest_jupyter.service.launch.backend import LocalBackend

from ..conftest import trained_package
from ..recording_executor import RecordingExecutor


def test_fake_gpus_come_from_the_argument_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = build_service(tmp_path / "a.sqlite", fake_gpus="2x8192", zygote=False)
    assert [(d["id"], d["memory_total_mb"]) for d in service.queries.devices()] == [
        (0, 8192),
        (1, 8192),
        (-1, None),
    ]

    monkeypatch.setenv("DLNEST_FAKE_GPUS", "1x4096")
    from_env = build_service(tmp_path / "b.sqlite", zygote=False)
    assert [d["id"] for d in from_env.queries.devices()] == [0, -1]


def test_the_queue_lives_in_the_jupyter_data_dir_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))

    assert default_database_path() == tmp_path / "jupyter" / "dlnest" / "dlnest.sqlite"


def test_analyzers_find_scripts_in_the_configured_folder_of_their_project(
    tmp_path: Path,
) -> None:
    package = trained_package(tmp_path, {})
    service = build_service(
        tmp_path / "q.sqlite", "1x8192", False, analyzers=True, scripts_dir="Exp"
    )
    other = build_service(
        tmp_path / "q.sqlite", "1x8192", False, analyzers=True, scripts_dir=str(tmp_path / "s")
    )
    service.update_settings({"devices": []})  # stay queued: no kernel starts
    try:
        default = service.submit(TaskKind.ANALYZE, record_path=package)
        absolute = service.submit(
            TaskKind.ANALYZE, record_path=package, scripts_dir=tmp_path / "mine"
        )
        configured_absolute = other.submit(TaskKind.ANALYZE, record_path=package)
    finally:
        service.stop()
        other.stop()

    assert default.spec["scripts_dir"] == str(tmp_path / "proj" / "Exp")
    assert absolute.spec["scripts_dir"] == str(tmp_path / "mine")
    assert configured_absolute.spec["scripts_dir"] == str(tmp_path / "s")


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"executor": RecordingExecutor()}, "an executor of its own (executor_class)"),
        ({"box_ledger": "/var/lib/dlnest-box"}, "a box ledger"),
        ({"backend": LocalBackend(RecordingExecutor)}, "a backend of its own (backend_class)"),
    ],
)
def test_a_ray_address_beside_a_local_choice_is_refused_not_ignored(
    tmp_path: Path, given: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigError, match="cannot apply there") as refused:
        build_service(tmp_path / "q.sqlite", ray_address="head:6379", zygote=False, **given)  # type: ignore[arg-type]

    assert named in str(refused.value) and "head:6379" in str(refused.value)
    assert not (tmp_path / "q.sqlite").exists()  # refused before anything was made


def test_a_backend_of_ones_own_runs_the_tasks(tmp_path: Path) -> None:
    service = build_service(
        tmp_path / "q.sqlite", "1x8192", zygote=False, backend=LocalBackend(RecordingExecutor)
    )
    try:
        assert isinstance(service.runners.executor, RecordingExecutor)
    finally:
        service.stop()
