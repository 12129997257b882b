"""The README's main job: notebooks/quickstart.ipynb, run headless against a real `jupyter server`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent


def test_the_quickstart_notebook_trains_continues_and_analyzes_through_a_real_jupyter_server(
    tmp_path: Path,
) -> None:
    work = tmp_path / "quickstart"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLNEST_")}

    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "run_quickstart_notebook.py"), str(work)],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=900,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    tasks = "[(1, 'train', 'succeeded'), (2, 'continue', 'succeeded'), (3, 'analyze', 'running')]"
    assert f"tasks on the server: {tasks}" in result.stdout
    accuracy = re.search(r"validation accuracy of its latest checkpoint: ([0-9.]+)", result.stdout)
    assert accuracy and float(accuracy.group(1)) > 0.9, result.stdout
    executed = nbformat.read(work / "quickstart.ipynb", as_version=4)
    watched = [c for c in executed.cells if c.source.strip().endswith("%dlnest watch")]
    texts = ["".join(o.get("text", "") for o in c.outputs) for c in watched]
    # The continued run's watch shows its own epoch 9, not the first run's output again.
    assert "Epoch #8 finished" in texts[0] and "Epoch #9" not in texts[0]
    assert "Epoch #9 finished" in texts[1] and "Epoch #1 finished" not in texts[1]
    # The analyzer's own kernel answered the experiment cell, and the server lists its session.
    experiment = next(c for c in executed.cells if c.source.startswith("%%dlnest exp"))
    assert "validation images" in "".join(o.get("text", "") for o in experiment.outputs)
    assert "the session 'DLNest analyzer 3 " in "".join(
        o.get("text", "") for o in executed.cells[-1].outputs
    )
