from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from dlnest_jupyter.core.config import load_config
from dlnest_jupyter.core.package import SavePackage
from dlnest_jupyter.core.package_creation import PackageOptions, create_package

from .mail_servers import Mailbox
from .projects import write_project

pytest_plugins = ["pytest_jupyter.jupyter_server"]

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A toy project's root config, with every hook recorded into events.txt beside it."""
    return write_project(tmp_path / "proj", args={"record_file": str(tmp_path / "events.txt")})


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """An SMTP server on this machine that takes mail from `mail_servers.USER` only."""
    box = Mailbox()
    yield box
    box.controller.stop()


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    return tmp_path / "events.txt"


def new_package(config: Path, **options: object) -> SavePackage:
    return create_package(load_config(config), PackageOptions(**options))  # type: ignore[arg-type]


def train_in_process(
    package: SavePackage, checkpoint_id: int | None = None, kind: str = "train"
) -> int:
    from dlnest_jupyter.runtime.train import run_training
    from dlnest_jupyter.runtime.train_request import TrainRequest

    return run_training(package, TrainRequest(kind=kind, checkpoint_id=checkpoint_id))


def trained_package(root: Path, scripts: dict[str, str]) -> Path:
    """A toy project under `root/proj`, trained 2 epochs in one package, with analysis scripts."""
    package = new_package(write_project(root / "proj", epochs=2))
    assert train_in_process(package) == 0
    folder = root / "proj" / "AnalyzeScripts"
    folder.mkdir()
    for name, source in scripts.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
    return package.path


def install_analyzer_kernelspec() -> None:
    """The `dlnest-analyzer` kernelspec, as `pip install` puts it, in the user's Jupyter data dir.

    Tests point Jupyter's paths at temporary folders, which hides the venv's copy.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    spec = REPO / "labextension_config" / "kernels" / "dlnest-analyzer"
    KernelSpecManager().install_kernel_spec(str(spec), "dlnest-analyzer", user=True)


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the `dlnest` command in a fresh interpreter, as a user would."""

    def run(
        *argv: str | Path,
        cwd: Path | None = None,
        timeout_s: float = 300,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        command: Sequence[str] = [sys.executable, "-m", "dlnest_jupyter.cli", *map(str, argv)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )

    return run
