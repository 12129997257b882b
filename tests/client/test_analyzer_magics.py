"""Analyzers driven by the magics with no Jupyter server: the kernels run under our own manager."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from dlnest_jupyter.client import discovery
from dlnest_jupyter.client.client import ClientError

from ..conftest import install_analyzer_kernelspec, trained_package
from ..waiting import wait_until

SCRIPTS = {
    "ident": """
        def experience(self):
            print("checkpoint", self.checkpoint_id, "of", type(self.model).__name__)
            return 41 + 1
    """,
    "broken": "def experience(self):\n    return 1 / 0\n",
    "spin": """
        import time
        def experience(self):
            print("spinning", flush=True)
            while True:
                time.sleep(0.01)
    """,
    "stubborn": """
        import time
        def experience(self):
            print("spinning", flush=True)
            while True:
                try:
                    time.sleep(0.01)
                except KeyboardInterrupt:
                    print("not stopping", flush=True)
    """,
}


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    for name in ("DLNEST_SERVER_URL", "DLNEST_SERVER_TOKEN", "JPY_PARENT_PID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DLNEST_FAKE_GPUS", "1x8192")
    install_analyzer_kernelspec()
    ipython = InteractiveShell.instance()
    ipython.run_line_magic("load_ext", "dlnest_jupyter")
    yield ipython
    discovery.stop_embedded()
    InteractiveShell.clear_instance()


def test_magics_load_an_analyzer_once_and_run_scripts_and_cells_against_it(
    shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = trained_package(tmp_path, SCRIPTS)

    analyzer = shell.run_line_magic("dlnest", f"analyze -r {package} -m 2000")
    first = shell.run_line_magic("dlnest", "runExp ident")  # no id: the one this kernel started
    started = capsys.readouterr().out
    shell.run_line_magic("dlnest", "runExp 1 ident")
    again = capsys.readouterr().out
    in_cell = shell.run_cell_magic(
        "dlnest",
        "exp 1",
        "from IPython.display import HTML\nprint(model is self.runner)\nHTML('<b>x</b>')",
    )
    cell = capsys.readouterr().out
    with pytest.raises(UsageError, match="experiment 4 failed; the model stays loaded"):
        shell.run_line_magic("dlnest", "runExp broken")
    broken = capsys.readouterr().out
    shell.run_line_magic("dlnest", "devices")
    devices = capsys.readouterr().out
    shell.run_line_magic("dlnest", "watch")  # the last task submitted: the analyzer
    watch = capsys.readouterr().out

    # Sent while the model loads: accepted at once, run once it has loaded.
    assert "task 1 running on GPU 0; reserved 2,000 MiB" in started
    assert "experiment 1 runs once analyzer 1 has loaded" in started
    assert (
        "checkpoint 1 of ToyRunner\n42\n" in started and again == "checkpoint 1 of ToyRunner\n42\n"
    )
    assert cell == "True\n<IPython.core.display.HTML object>\n"
    assert "ZeroDivisionError" in broken and "analyzer_kernel.py" not in broken
    assert analyzer.id == 1 and repr(analyzer).startswith("<dlnest task 1: analyze, ")
    assert (first.id, first.state, first.result) == (1, "succeeded", "42")
    assert in_cell is None  # a cell shows its output; no Out[] line repeats it
    assert "task 1 is an analyzer: each experiment shows its output in the cell" in watch
    gpu_row = devices.splitlines()[1].split()
    assert gpu_row[-6:] == ["0", "/", "2,000", "/", "8,192", "1"]  # reserved for analyzer 1


def test_attach_names_a_connection_file_and_del_frees_the_device(
    shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = trained_package(tmp_path, SCRIPTS)
    shell.run_line_magic("dlnest", f"analyze -r {package} -m 2000")
    shell.run_line_magic("dlnest", "attach")
    attach = capsys.readouterr().out

    connection_file = attach.split("jupyter console --existing ")[1].split()[0]
    assert Path(connection_file).is_file()
    assert "no Jupyter server lists it" in attach and "%dlnest del 1 ends it" in attach

    shell.run_line_magic("dlnest", "del 1")
    assert "task 1 cancelled" in capsys.readouterr().out
    # The kernel manager removes it once the kernel is gone.
    wait_until(lambda: not Path(connection_file).exists(), 30, "the connection file to go")
    shell.run_line_magic("dlnest", "devices")
    assert "0 / 0 / 8,192" in capsys.readouterr().out


def test_an_interrupted_experiment_shows_the_users_frames_and_says_interrupted(
    shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = trained_package(tmp_path, SCRIPTS)
    shell.run_line_magic("dlnest", f"analyze -r {package} -CPU")
    shell.run_line_magic("dlnest", "runExp ident")  # loaded
    client = shell.magics_manager.registry["DLNestMagics"].client
    ended = threading.Event()
    behind: list[dict[str, Any]] = []  # an experiment sent while the spinning one runs
    sent: list[bool] = []  # what each interrupt said it did

    def interrupt_once_it_spins() -> None:  # what Ctrl-C in the cell does, from the outside
        while not ended.wait(0.5):
            # Once the user's code runs: a SIGINT as a request begins ends it without a
            # traceback (messages.py, NO_REPLY), and this test reads the traceback.
            experiment = client.experiment(1, 2, 0, 0, 0)
            if experiment["state"] == "running" and "spinning" in experiment["output"]:
                behind.append(client.run_experiment(1, {"name": "ident"}))
                sent.append(client.interrupt(1, 2))
                # A second click: its record may still say running after the kernel took the
                # first, and a second SIGINT would land on the experiment behind it.
                sent.append(client.interrupt(1, 2))
                return

    interrupter = threading.Thread(target=interrupt_once_it_spins)
    interrupter.start()
    capsys.readouterr()
    try:
        with pytest.raises(UsageError, match="experiment 2 interrupted; the model stays loaded"):
            shell.run_line_magic("dlnest", "runExp spin")
    finally:
        ended.set()
        interrupter.join()
    out = capsys.readouterr().out

    assert "analyzer_kernel.py" not in out
    assert "KeyboardInterrupt" in out and "time.sleep(0.01)" in out  # where the user's code was
    # It waited behind the interrupted one, queued, and then ran: no interrupt was its.
    assert [e["state"] for e in behind] == ["queued"] and sent == [True, False]
    wait_until(
        lambda: client.experiment(1, behind[0]["id"], 0, 0, 0)["state"] == "succeeded",
        60,
        "the experiment sent behind it to run",
    )
    assert client.interrupt(1, 2) is False  # it ended: nothing to interrupt
    with pytest.raises(ClientError, match="experiment 9"):
        client.interrupt(1, 9)
    shell.run_line_magic("dlnest", "runExp ident")
    assert "checkpoint 1 of ToyRunner" in capsys.readouterr().out


BAD_COMMANDS = [
    ("runExp 1 ../ident", None, "experiment names are plain script names"),
    ("runExp 1 missing", None, "no script missing.py in the scripts folder (it holds: broken, "),
    ("runExp 2 ident", None, "task 2 is a train task, not an analyzer"),
    ("runExp 9 ident", None, "no task with id 9"),
    ("runExp 1 2 3", None, "runExp takes [ID] NAME"),
    ("runExp", None, "runExp: the following arguments are required: [ID] NAME"),
    ("attach 9", None, "no task with id 9"),
    ("run -c x", "1", "the cell form is %%dlnest exp [ID]"),
    ("analyze -r /nowhere", None, "does not exist"),
    ("analyze -r PKG -c 99", None, "99"),
]


def test_bad_analyzer_commands_are_one_line_and_the_analyzer_lives_on(
    shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = trained_package(tmp_path, SCRIPTS)
    shell.run_line_magic("dlnest", f"analyze -r {package} -CPU")
    shell.run_line_magic("dlnest", f"run -c {tmp_path / 'proj' / 'root_config.json'} -CPU")
    shell.run_line_magic("dlnest", "runExp 1 ident")
    capsys.readouterr()

    for line, cell, message in BAD_COMMANDS:
        line = line.replace("PKG", str(package))
        with pytest.raises(UsageError) as raised:
            if cell is None:
                shell.run_line_magic("dlnest", line)
            else:
                shell.run_cell_magic("dlnest", line, cell)
        assert message in str(raised.value) and "Traceback" not in capsys.readouterr().out, line

    shell.run_line_magic("dlnest", "runExp 1 ident")
    assert "checkpoint 1 of ToyRunner" in capsys.readouterr().out


def test_a_second_stop_in_the_cell_stops_following_in_one_line(
    shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """■ twice (SIGINT, as ipykernel sends it) on an experiment that swallows the first: the
    cell ends with one line, not a traceback through the socket read it broke into."""
    package = trained_package(tmp_path, SCRIPTS)
    shell.run_line_magic("dlnest", f"analyze -r {package} -CPU")
    client = shell.magics_manager.registry["DLNestMagics"].client
    ended = threading.Event()

    def stop_twice() -> None:
        for seen in ("spinning", "not stopping"):
            while not ended.wait(0.2):
                if seen in client.experiment(1, 1, 0, 0, 0)["output"]:
                    os.kill(os.getpid(), signal.SIGINT)
                    break

    stopper = threading.Thread(target=stop_twice)
    stopper.start()
    try:
        with pytest.raises(UsageError) as raised:
            shell.run_line_magic("dlnest", "runExp stubborn")
    except KeyboardInterrupt:  # a failure of this test, not an end of the whole run
        pytest.fail("a SIGINT escaped the magic")
    finally:
        ended.set()
        stopper.join()
    assert str(raised.value) == (
        "dlnest: stopped following experiment 1 of analyzer 1 (interrupted twice); the model "
        "stays loaded"
    )
    assert "Traceback" not in capsys.readouterr().out
    assert client.experiment(1, 1, 0, 0, 0)["state"] == "running"  # it swallowed the interrupt
    shell.run_line_magic("dlnest", "del 1")
