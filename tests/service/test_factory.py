from __future__ import annotations

from pathlib import Path

import pytest

from dlnest_jupyter.service.factory import build_service, default_database_path


def test_fake_gpus_come_from_the_argument_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = build_service(tmp_path / "a.sqlite", fake_gpus="2x8192", zygote=False)
    assert [(d["id"], d["memory_total_mb"]) for d in service.devices()] == [
        (0, 8192),
        (1, 8192),
        (-1, None),
    ]

    monkeypatch.setenv("DLNEST_FAKE_GPUS", "1x4096")
    from_env = build_service(tmp_path / "b.sqlite", zygote=False)
    assert [d["id"] for d in from_env.devices()] == [0, -1]


def test_the_queue_lives_in_the_jupyter_data_dir_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))

    assert default_database_path() == tmp_path / "jupyter" / "dlnest" / "dlnest.sqlite"
