"""DLNest 0.3 projects run unchanged through the `dlnest` command: their `DLNest.*` imports, and
DLNest's four plugins, against a real SMTP server on this machine and real TensorBoard files."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .dlnest_project import write_dlnest_project
from .mail_servers import USER, Mailbox, SilentServer, free_port, text_of

RunCli = Callable[..., subprocess.CompletedProcess[str]]
pytestmark = [
    pytest.mark.slow,
    # aiosmtpd's own, from its server thread: plain-text AUTH is what a test on loopback wants.
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS"),
    pytest.mark.filterwarnings("ignore:Session.login_data is deprecated"),
]


def package_of(project: Path) -> Path:
    [package] = sorted((project / "Saves").iterdir())
    return package


def test_a_dlnest_project_trains_continues_and_analyses_with_its_four_plugins(
    tmp_path: Path, run_cli: RunCli, mailbox: Mailbox
) -> None:
    config = write_dlnest_project(tmp_path / "mnist", smtp_port=mailbox.port, epochs=2)

    trained = run_cli("run", "-c", config, "-CPU")

    assert trained.returncode == 0, trained.stderr
    package = package_of(tmp_path / "mnist")
    output = (package / "_output.txt").read_text()
    assert re.search(r"^Iter : 5\t\| loss : \d\.\d{6}", output, re.M)  # SimpleCMDVisualize
    assert "Epoch #2 finished!" in output
    [finished] = mailbox.mails
    assert finished["Subject"] == "Train Finished!" and finished["To"] == USER
    body = text_of(finished)
    assert f"Train task in {package} finished" in body
    assert re.search(r"The final results are: \n\| acc : 0\.\d+", body)
    scalars = tensorboard_scalars(package)
    assert set(scalars) == {"loss", "acc"}
    assert len(scalars["acc"]) == 2 and len(scalars["loss"]) == 2 * 10  # 600 samples, batch 64

    continued = run_cli("continue", "-r", package, "-CPU")
    assert continued.returncode == 0, continued.stderr
    assert [m["Subject"] for m in mailbox.mails] == ["Train Finished!", "Train Finished!"]

    script = tmp_path / "mnist" / "AnalyzeScripts" / "getAcc.py"
    analysed = run_cli("analyze", "-r", package, "-s", script, "-CPU")
    assert analysed.returncode == 0, analysed.stderr
    accuracy = re.search(r"accuracy: (\d\.\d+)", analysed.stdout)
    assert accuracy and float(accuracy.group(1)) > 0.5
    assert len(mailbox.mails) == 2  # an analysis runs no plugins: it mails nothing


def test_a_run_that_aborts_mails_its_error(
    tmp_path: Path, run_cli: RunCli, mailbox: Mailbox
) -> None:
    config = write_dlnest_project(
        tmp_path / "p", smtp_port=mailbox.port, args={"abort_at_epoch": 1}
    )

    result = run_cli("run", "-c", config, "-CPU")

    assert result.returncode != 0
    [aborted] = mailbox.mails
    assert aborted["Subject"] == "Train Aborted!"
    assert "RuntimeError: stopped on purpose at epoch 1" in text_of(aborted)


RAISES = """
class DLNestPlugin:
    _NAME = "Raises"

    def visualize(self, **kwargs):
        raise ValueError("this plugin is broken")
"""


def test_a_plugin_that_raises_is_reported_once_and_the_run_succeeds(
    tmp_path: Path, run_cli: RunCli, mailbox: Mailbox
) -> None:
    (tmp_path / "raises.py").write_text(RAISES)
    config = write_dlnest_project(
        tmp_path / "p", smtp_port=mailbox.port, extra_plugins=[str(tmp_path / "raises.py")]
    )

    result = run_cli("run", "-c", config, "-CPU")

    assert result.returncode == 0, result.stderr
    package = package_of(tmp_path / "p")
    output = (package / "_output.txt").read_text()
    assert (package / "raises.py").read_text() == RAISES  # copied: a continue runs this one
    assert output.count("dlnest: plugin ./raises.py failed in visualize") == 1
    assert "ValueError: this plugin is broken" in output
    assert "Iter : 5" in output and len(mailbox.mails) == 1  # the other plugins went on


@pytest.mark.parametrize("host", ["closed port", "silent server"])
def test_a_dead_mail_host_is_said_in_the_output_and_holds_nothing_past_its_timeout(
    tmp_path: Path, run_cli: RunCli, host: str
) -> None:
    server = SilentServer() if host == "silent server" else None
    port = server.port if server is not None else free_port()
    config = write_dlnest_project(tmp_path / "p", smtp_port=port, epochs=1, mail={"timeout_s": 1})

    result = run_cli("run", "-c", config, "-CPU", timeout_s=120)

    assert result.returncode == 0, result.stderr
    output = (package_of(tmp_path / "p") / "_output.txt").read_text()
    said = re.search(
        rf"dlnest: MailsNote could not send 'Train Finished!' through 127.0.0.1:{port}: (.+)",
        output,
    )
    assert said, output
    expected = "timed out" if server is not None else "Connection refused"
    assert expected in said.group(1)


def test_dlnest_modules_resolve_to_ours_and_anything_else_is_named() -> None:
    code = (
        "import sys; from dlnest_jupyter.runtime import dlnest_names; dlnest_names.install()\n"
        "from DLNest.Common.RunnerBaseTorch import RunnerBaseTorch\n"
        "from DLNest.Plugins.MailsNote import DLNestPlugin\n"
        "import dlnest_jupyter.runtime as ours\n"
        "from dlnest_jupyter.runtime.plugins import mails_note\n"
        "assert RunnerBaseTorch is ours.RunnerBaseTorch and DLNestPlugin is mails_note.DLNestPlugin\n"
        "import DLNest.Server\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert result.returncode == 1
    assert (
        "ModuleNotFoundError: DLNest.Server is not provided by dlnest-jupyter, which runs DLNest "
        "0.3 projects with its own classes: it provides DLNest.Common.DatasetBase"
    ) in result.stderr


def tensorboard_scalars(package: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(package))
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
