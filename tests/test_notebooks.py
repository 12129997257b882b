"""The example notebooks, executed headless with nbclient: against a real Jupyter server, and with
the in-process scheduler the magics fall back to when there is none."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from .conftest import REPO
from .headless import HeadlessServer

NOTEBOOKS = REPO / "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def execute(name: str, work: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    )
    try:
        client.execute()
    finally:
        nbformat.write(notebook, work / name)  # kept for a look when a cell failed
    return notebook


def text_of(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


@pytest.fixture(params=["server", "embedded"])
def mode(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Where the notebook's magics find their scheduler; the cwd is the notebook's folder."""
    for name in ("DLNEST_SERVER_URL", "DLNEST_SERVER_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("JUPYTER_PATH", str(REPO / "labextension_config"))  # the analyzer spec
    monkeypatch.setenv("DLNEST_FAKE_GPUS", "2x16384")
    if request.param == "server":
        server = HeadlessServer(
            tmp_path,
            tmp_path / "server.log",
            [f"--DLNestApp.database_path={tmp_path / 'q.sqlite'}"],
        )
        server.start()
        request.addfinalizer(server.stop)
        monkeypatch.setenv("DLNEST_SERVER_URL", server.url)
        monkeypatch.setenv("DLNEST_SERVER_TOKEN", server.token)
    return str(request.param)


# Against the server only: its three 8-epoch runs are the suite's longest notebook, and the
# magics' fallback to an in-process scheduler is the analysis notebook's [embedded] case.
@pytest.mark.parametrize("mode", ["server"], indirect=True)
def test_the_dashboard_notebook_compares_a_sweep(mode: str, tmp_path: Path) -> None:
    executed = execute("dashboard.ipynb", tmp_path)

    board_cell = next(c for c in executed.cells if "Dashboard()" in c.source)
    assert any(WIDGET_VIEW in o.get("data", {}) for o in board_cell.outputs)
    summary = text_of(executed.cells[-2])
    runs = re.findall(
        r"task \d+ \(lr [0-9.e-]+\): succeeded, 8 epochs, best acc ([0-9.]+)", summary
    )
    assert len(runs) == 3, summary
    assert max(float(best) for best in runs) > 0.9
    said = "".join(text_of(c) for c in executed.cells)
    assert ("in-process scheduler" in said) is (mode == "embedded")


def test_the_analysis_notebook_runs_scripts_and_cells_on_a_loaded_model(
    mode: str, tmp_path: Path
) -> None:
    executed = execute("analysis.ipynb", tmp_path)

    cells = {c.source.splitlines()[0]: c for c in executed.cells if c.cell_type == "code"}
    accuracy = re.search(r"accuracy ([0-9.]+)", text_of(cells["from pathlib import Path"]))
    assert accuracy and float(accuracy.group(1)) > 0.9
    assert "parameters" in text_of(cells["%dlnest runExp showModel"])
    experiment = cells["%%dlnest exp"]
    assert "right in the first batch" in text_of(experiment)
    assert any("text/html" in o.get("data", {}) for o in experiment.outputs)  # the table came back
    attach = text_of(cells["%dlnest attach"])
    assert "jupyter console --existing" in attach
    assert ("the session 'DLNest analyzer 2 " in attach) is (mode == "server")
    assert re.search(r"2\s+analyze\s+running", text_of(cells["%dlnest tasks"]))
