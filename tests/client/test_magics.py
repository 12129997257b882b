from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from dlnest_jupyter.client import discovery
from dlnest_jupyter.client.client import HttpTransport
from dlnest_jupyter.client.discovery import find_client

from ..projects import write_project


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """An IPython shell with no Jupyter server around: the magics fall back to an in-process scheduler."""
    for name in ("DLNEST_SERVER_URL", "DLNEST_SERVER_TOKEN", "JPY_PARENT_PID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DLNEST_FAKE_GPUS", "1x8192")
    ipython = InteractiveShell.instance()
    ipython.run_line_magic("load_ext", "dlnest_jupyter")
    yield ipython
    discovery.stop_embedded()
    InteractiveShell.clear_instance()


def test_magics_fall_back_to_an_in_process_scheduler_and_say_so_once(
    shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_project(tmp_path / "proj", epochs=1)

    shell.run_line_magic("dlnest", "devices")
    shell.run_line_magic("dlnest", f"run -c {config} -CPU -d magic")
    out = capsys.readouterr().out
    assert out.count("using an in-process scheduler") == 1
    assert "Fake GPU 0" in out and "task 1 running on CPU" in out

    deadline = time.monotonic() + 120
    while "succeeded" not in capsys.readouterr().out:
        assert time.monotonic() < deadline
        shell.run_line_magic("dlnest", "tasks")
        time.sleep(0.3)
    shell.run_line_magic("dlnest", "watch 1")
    assert "epoch 1 loss" in capsys.readouterr().out
    shell.run_line_magic("dlnest", "log")
    assert "task 1 succeeded" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("del 999", "dlnest: error: no task with id 999"),
        ("del", "dlnest: error: del takes one task id"),
        ("fly", "dlnest: error: unknown command 'fly'"),
        ("run -CPU", "dlnest: error: run: the following arguments are required: -c"),
        ("run -c /nowhere/root.json -CPU", "config file does not exist"),
        ("changeDevices -d x", "dlnest: error: changeDevices: argument -d: invalid int value"),
        ("settings --max 0", "field 'max_tasks_per_device' must be an integer >= 1"),
    ],
)
def test_errors_are_one_line_never_a_traceback(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    shell.run_line_magic("dlnest", line)

    out = capsys.readouterr().out.strip().splitlines()
    assert message in out[-1] and "Traceback" not in "\n".join(out)


def test_discovery_prefers_the_exported_server_then_the_parent_server() -> None:
    exported = find_client(
        {"DLNEST_SERVER_URL": "http://127.0.0.1:1/base", "DLNEST_SERVER_TOKEN": "t"}
    ).transport
    assert isinstance(exported, HttpTransport) and (exported.base_url, exported.token) == (
        "http://127.0.0.1:1/base/",
        "t",
    )

    servers = [
        {"pid": 11, "port": 2, "base_url": "/", "token": "other"},
        {"pid": 42, "port": 3, "base_url": "/x/", "token": "mine"},
    ]
    parent = find_client({"JPY_PARENT_PID": "42"}, lambda: servers).transport
    assert isinstance(parent, HttpTransport) and (parent.base_url, parent.token) == (
        "http://127.0.0.1:3/x/",
        "mine",
    )
