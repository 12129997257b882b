"""binder/ alone makes an environment that runs the notebooks: binder/requirements.txt resolves
to CPU torch and everything the notebooks import, postBuild makes the digits project, and
binder/start gives what it starts two pretend cards.

pip resolves without installing (`--dry-run --report`): installing the 120 packages took more
than the rest of the test and checked nothing more of binder/ than the resolution does; the
notebooks themselves run in tests/test_notebooks.py and tests/test_quickstart_notebook.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

# What the notebooks and the digits template import, by distribution name.
NEEDED = {
    "dlnest-jupyter",
    "torch",
    "scikit-learn",
    "bqplot",
    "ipywidgets",
    "jupyterlab",
    "notebook",
}


@pytest.mark.slow
def test_binder_resolves_to_cpu_torch_and_what_the_notebooks_need_and_starts_pretend_cards(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DLNEST_", "JUPYTER", "VIRTUAL"))
    }
    env.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")
    # Where download.pytorch.org cannot be reached (CI here: registries only), fail over to the
    # other indexes at once instead of retrying it with back-off for every package.
    env.update(PIP_RETRIES="0", PIP_TIMEOUT="10")

    def run(*command: str | Path, cwd: Path = REPO) -> str:
        done = subprocess.run(
            [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
            stdin=subprocess.DEVNULL, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    report = tmp_path / "report.json"
    run(
        sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
        "--report", report, "-r", "binder/requirements.txt",
    )  # fmt: skip
    versions = {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert not NEEDED - versions.keys(), sorted(NEEDED - versions.keys())
    assert versions["torch"].endswith("+cpu"), versions["torch"]  # not a multi-GB CUDA build
    assert not [name for name in versions if name.startswith("nvidia-") and "ml-py" not in name]

    run(REPO / "binder" / "postBuild")
    assert (home / "digits" / "root_config.json").is_file()

    cards = "from dlnest_jupyter.core.devices import source_from_env as s; print(s().snapshot())"
    snapshot = run(REPO / "binder" / "start", sys.executable, "-c", cards)
    assert snapshot.count("memory_total_mb=16384") == 2, snapshot
