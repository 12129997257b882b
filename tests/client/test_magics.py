from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from dlnest_jupyter.client import discovery
from dlnest_jupyter.client.arguments import PARSERS
from dlnest_jupyter.client.client import HttpTransport
from dlnest_jupyter.client.discovery import find_client
from dlnest_jupyter.core.package import SavePackage

from ..projects import scored_project, write_project
from ..waiting import wait_until


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

    def listed_succeeded() -> bool:
        if "succeeded" in capsys.readouterr().out:
            return True
        shell.run_line_magic("dlnest", "tasks")
        return False

    wait_until(listed_succeeded, 120, "%dlnest tasks to list it succeeded", every_s=0.3)
    shell.run_line_magic("dlnest", "watch 1")
    assert "epoch 1 loss" in capsys.readouterr().out
    shell.run_line_magic("dlnest", "log")
    assert "task 1 succeeded" in capsys.readouterr().out


def test_the_memory_settings_are_switched_and_a_jobs_memory_forgotten_from_the_magic(
    shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run_line_magic(
        "dlnest", "settings --guard on --shrink-given on --margin-mb 100 --oom-retries 2"
    )
    shown = capsys.readouterr().out
    for setting in ("guard_memory", "shrink_given", "memory_margin_mb", "oom_retries"):
        assert setting in shown
    client = discovery.embedded_client()
    settings = client.settings()
    assert (settings["guard_memory"], settings["shrink_given"]) == (True, True)
    assert (settings["memory_margin_mb"], settings["oom_retries"]) == (100, 2)
    config = write_project(tmp_path / "proj", epochs=1)
    shell.run_line_magic("dlnest", f"run -c {config} -CPU")

    shell.run_line_magic("dlnest", "forget 1")

    assert "task 1's job has no memory to forget" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("del 999", "dlnest: no task with id 999"),
        ("del", "dlnest: del: the following arguments are required: ID"),
        ("del x", "dlnest: del takes a task's id (del 3), or a sweep's (del sweep 2)"),
        ("del sweep", "dlnest: del sweep takes a sweep's id, e.g. %dlnest del sweep 2"),
        ("del sweep 9", "dlnest: no sweep with id 9"),
        ("sweeps 9", "dlnest: no sweep with id 9"),
        ("sweep -c r.json --grid lr", "--grid 'lr': expected KEY=V1,V2,..."),
        (
            "sweep -c r.json --search lr=normal:0:1",
            "--search 'lr=normal:0:1': expected KEY=uniform",
        ),
        ("sweep -c r.json --search lr=uniform:1:x", "uniform takes LO:HI, two numbers"),
        ("sweep -c r.json --search lr=loguniform:0:1", "loguniform needs LO above 0"),
        ("sweep -c r.json", "a sweep varies something"),
        ("fly", "dlnest: unknown command 'fly'"),
        ("run -CPU", "dlnest: run: the following arguments are required: -c"),
        ("run -c /nowhere/root.json -CPU", "config file does not exist"),
        ("changeDevices -d x", "dlnest: changeDevices: argument -d: invalid int value"),
        ("settings --max 0", "field 'max_tasks_per_device' must be an integer >= 1"),
        ("watch", "watch takes a task id"),
        ('run -c "unclosed', "No closing quotation"),
        ("addP -d proj", "addP: the following arguments are required: -p"),
        ("new -d proj -p", "new: argument -p: expected at least one argument"),
        ("new -d nowhere -p Mails", "unknown plugin 'Mails': the shipped plugins are LogInit"),
        # argparse alone would queue these with the descriptions "evices" and "esc".
        ("run -c proj/root.json -devices 0", "-devices is the dlnest command's"),
        ("run -c proj/root.json -desc x", "unknown option -desc (for -d with a value"),
    ],
)
def test_errors_raise_a_one_line_usage_error(
    shell: InteractiveShell, line: str, message: str
) -> None:
    with pytest.raises(UsageError) as raised:
        shell.run_line_magic("dlnest", line)

    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_an_error_in_a_cell_shows_one_line_and_stops_the_loop(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run_cell("for i in range(3):\n    print('try', i)\n    %dlnest del 999\n")

    captured = capsys.readouterr()
    shown = captured.out + captured.err
    assert "try 0" in shown and "try 1" not in shown
    assert "UsageError: dlnest: no task with id 999" in shown and "Traceback" not in shown


def test_run_gives_the_task_and_its_repr_is_one_short_line(
    shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_project(tmp_path / "proj", epochs=1)

    task = shell.run_line_magic("dlnest", f"run -c {config} -d first")
    shell.run_cell(f"t = %dlnest run -c {config} -CPU\nt.id")
    out = capsys.readouterr().out

    assert task.id == task["id"] == 1 and task["description"] == "first"
    assert repr(task).startswith("<dlnest task 1: train, ") and "\n" not in repr(task)
    assert re.search(r"Out\[\d+\]: 2\n", out)
    # A GPU task says what it holds: the default, since -m was not given.
    # (queued: "reserves the default, ... once placed"; placed at once: "reserved the default")
    assert re.search(r"task 1 .*reserve[sd] .*the default, 90% of a card", out)


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_every_command_explains_every_flag_and_help_ends_quietly(
    shell: InteractiveShell, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = PARSERS[command]()
    unexplained = [a.dest for a in parser._actions if not a.help]
    prefix = "%" if command == "exp" else ""

    result = shell.run_cell(f"{prefix}%dlnest {command} -h" + ("\n1" if command == "exp" else ""))
    captured = capsys.readouterr()

    assert unexplained == []
    assert result.error_in_exec is None and result.result is None
    assert captured.out.startswith(f"usage: %dlnest {command}")
    assert "SystemExit" not in captured.out + captured.err
    assert "To exit" not in captured.out + captured.err


@pytest.mark.slow
def test_a_sweep_from_the_magic_runs_its_grid_and_lists_its_trials_best_first(
    shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = scored_project(tmp_path / "proj", epochs=1)

    sweep = shell.run_line_magic(
        "dlnest", f"sweep -c {config} --grid quality=0.3,0.7 --metric score -CPU -d q"
    )
    made = capsys.readouterr().out
    client = discovery.embedded_client()
    wait_until(lambda: client.sweep(sweep.id)["state"] == "finished", 120, "the sweep to finish")
    shell.run_line_magic("dlnest", f"sweeps {sweep.id}")
    trials = capsys.readouterr().out
    shell.run_line_magic("dlnest", "sweeps")
    listed = capsys.readouterr().out

    assert repr(sweep) == "<dlnest sweep 1: running, 0 of 2 trials done>"
    assert "sweep 1 running: a grid over quality, 0 of 2 trials done, judged by score" in made
    assert "sweep 1 finished" in trials and "; best: trial 1 (task 2), 0.7" in trials
    rows = [line.split() for line in trials.splitlines() if line[:1].isdigit()]
    assert [row[:4] for row in rows] == [
        ["1", "(best)", "2", "succeeded"],
        ["0", "1", "succeeded", "0.3"],
    ]
    assert "quality=0.7" in listed and "2 of 2 trials done" in listed


def test_run_dry_run_shows_the_merged_config_and_queues_nothing(
    shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_project(tmp_path / "proj", epochs=1)
    freq = tmp_path / "proj" / "freq.json"
    freq.write_text('{"epochs": 4, "epoch": 5}')

    shown = shell.run_line_magic("dlnest", f"run -c {config} -f {freq} --dry-run")
    out = capsys.readouterr().out
    shell.run_line_magic("dlnest", "tasks")

    assert shown is None
    assert f"epochs = 4    # {freq}" in out and f"batch_size = 16    # {config}" in out
    assert "# warning: 'epoch' in" in out and "the nearest key is 'epochs'" in out
    assert "(none)" in capsys.readouterr().out


def test_new_with_plugins_and_add_plugins_from_the_magic(
    shell: InteractiveShell,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # a plugin file is named relative to the kernel's folder
    (tmp_path / "mine.py").write_text(
        "class DLNestPlugin:\n    _NAME = 'Mine'\n    _config = {}\n    _defaultKeys = []\n"
    )
    project = tmp_path / "digits"
    config = project / "root_config.json"

    shell.run_line_magic("dlnest", f"new -d {project} -t digits -p LogInit MailsNote")
    made = capsys.readouterr().out
    shell.run_line_magic("dlnest", f"addP -d {project} -p SimpleCMDVisualize LogInit mine.py -F")
    added = capsys.readouterr().out
    shell.run_line_magic("dlnest", f"run -c {config} --dry-run")
    shown = capsys.readouterr().out

    assert f"dlnest: added LogInit, MailsNote to {config}" in made
    assert f"dlnest: added SimpleCMDVisualize, {tmp_path / 'mine.py'} to {config}" in added
    assert f"dlnest: LogInit was already listed in {config}: left as is" in added
    assert json.loads(config.read_text())["plugins"] == [
        "LogInit",
        "MailsNote",
        "SimpleCMDVisualize",
        str(tmp_path / "mine.py"),
    ]
    assert "plugins_config.MailsNote.host = 'localhost'" in shown


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


def test_run_prints_each_warning_as_one_line_and_the_task_still_goes(
    shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_project(tmp_path / "proj", epochs=1)
    freq = tmp_path / "proj" / "freq.json"
    freq.write_text('{"epoch": 5}')

    task = shell.run_line_magic("dlnest", f"run -c {config} -f {freq} -CPU")

    out = capsys.readouterr().out
    assert (
        f"dlnest: warning: 'epoch' in {freq} is not a key of the config; the nearest key is 'epochs'\n"
        in out
    )
    assert task.id == 1 and "dlnest: task 1 " in out


def test_continue_trains_until_epochs_with_a_freq_config_and_records_what_changed(
    shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_project(tmp_path / "proj", epochs=2)
    freq = tmp_path / "proj" / "more.json"
    freq.write_text('{"batch_size": 8}')
    trained = shell.run_line_magic("dlnest", f"run -c {config} -CPU")
    shell.run_line_magic("dlnest", "watch")
    package = SavePackage.open(trained["package_path"])

    with pytest.raises(UsageError, match="--epochs 2 is not past checkpoint 1, which ends epoch 2"):
        shell.run_line_magic("dlnest", f"continue -r {package.path} --epochs 2 -CPU")
    continued = shell.run_line_magic(
        "dlnest", f"continue -r {package.path} -f {freq} --epochs 4 -CPU"
    )
    shell.run_line_magic("dlnest", "watch")
    out = capsys.readouterr().out

    assert continued.id == 2 and "task 2 succeeded" in out
    assert "epoch 3 loss" in out and "epoch 4 loss" in out and "epoch 5 loss" not in out
    state = package.state()
    assert state.checkpoints[state.head].epoch == 4  # type: ignore[index]
    # The new config is the fork's: the first run's checkpoints keep loading with theirs.
    assert (state.branch, state.branches[1].fork_checkpoint) == (1, 1)
    assert package.args_for(state.head)["epochs"] == 4  # type: ignore[arg-type]
    assert package.args_for(state.head)["batch_size"] == 8  # type: ignore[arg-type]
    assert (package.args()["epochs"], package.args_for(1)["batch_size"]) == (2, 16)
    assert package.launches()[-1]["overrides"] == {
        "freq_path": str(freq),
        "changed": {"batch_size": [16, 8], "epochs": [2, 4]},
    }
