"""binder/ alone makes an environment that runs the notebooks: a fresh virtualenv gets
binder/requirements.txt, postBuild runs, and through binder/start (the pretend GPUs) the quick
start runs against a real server from that environment and the sweep notebook runs embedded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO


@pytest.mark.slow
def test_an_environment_from_binder_alone_runs_the_notebooks(tmp_path: Path) -> None:
    venv, home = tmp_path / "binder-env", tmp_path / "home"
    home.mkdir()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DLNEST_", "JUPYTER", "VIRTUAL"))
    }
    env.update(HOME=str(home), PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}")
    # Where download.pytorch.org cannot be reached (CI here: registries only), fail over to the
    # other indexes at once instead of retrying it with back-off for every package.
    env.update(PIP_RETRIES="0", PIP_TIMEOUT="10")

    def run(*command: str | Path, cwd: Path = REPO, timeout_s: float = 900) -> str:
        done = subprocess.run(
            [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
            stdin=subprocess.DEVNULL, timeout=timeout_s,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "python", "-m", "pip", "install", "-q", "-r", "binder/requirements.txt")
    run(REPO / "binder" / "postBuild")
    assert (home / "digits" / "root_config.json").is_file()

    quickstart = run(
        REPO / "binder" / "start", venv / "bin" / "python",
        REPO / "scripts" / "run_quickstart_notebook.py", tmp_path / "quickstart",
    )  # fmt: skip
    assert "tasks on the server: [(1, 'train', 'succeeded')" in quickstart
    work = tmp_path / "sweep"
    work.mkdir()
    (work / "dashboard.ipynb").write_text((REPO / "notebooks" / "dashboard.ipynb").read_text())
    run(
        REPO / "binder" / "start", venv / "bin" / "jupyter", "execute", "--inplace",
        "dashboard.ipynb", cwd=work,
    )  # fmt: skip
    assert "best acc" in (work / "dashboard.ipynb").read_text()
