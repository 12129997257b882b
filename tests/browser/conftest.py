"""A real browser on a real JupyterLab 4 or Notebook 7 (recipes: reference/dashboard.md section 4).

Debian's chromium, driven by the PyPI `playwright` package (`playwright install` cannot download
here); the server is a child process with the extension, fake GPUs and a queue of its own.
Screenshots go to `$DLNEST_ARTIFACTS` (default `test-artifacts/` in the checkout).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from ..conftest import REPO
from ..headless import HeadlessServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run",
]  # fmt: skip
APPS = {  # module, the flag that exposes window.jupyterapp, the notebook's URL path
    "lab": ("jupyterlab", "--LabApp.expose_app_in_browser=True", "lab/tree"),
    "notebook": ("notebook", "--JupyterNotebookApp.expose_app_in_browser=True", "notebooks"),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Skipped on a developer's machine without chromium; in CI (CI=true) they run, and fail.
    if Path(CHROMIUM).exists() or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason="needs Debian's chromium (scripts/test.sh installs it)")
    for item in items:
        if "browser" in item.nodeid:
            item.add_marker(skip)


def artifacts() -> Path:
    folder = Path(os.environ.get("DLNEST_ARTIFACTS", REPO / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        yield chromium
        chromium.close()


def start_server(kind: str, root: Path) -> HeadlessServer:
    module, expose, _ = APPS[kind]
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
        "JUPYTER_CONFIG_DIR": str(root / ".config"),
        # The analyzer kernelspec from the checkout, as the benchmarks find it.
        "JUPYTER_PATH": os.pathsep.join(
            filter(None, [str(REPO / "labextension_config"), os.environ.get("JUPYTER_PATH")])
        ),
    }
    settings = root / ".lab-settings"  # no news or update checks: this machine has no internet
    settings.mkdir(exist_ok=True)
    (settings / "overrides.json").write_text(
        '{"@jupyterlab/apputils-extension:notification":'
        ' {"fetchNews": "false", "checkForUpdates": false}}'
    )
    flags = [
        expose,
        "--ServerApp.ip=127.0.0.1",
        f"--DLNestApp.database_path={root / '.dlnest.sqlite'}",
        "--DLNestApp.fake_gpus=2x16384",
        "--DLNestApp.zygote=False",
        "--DLNestApp.tick_interval_s=0.3",
        f"--LabServerApp.app_settings_dir={settings}" if kind == "lab" else "",
    ]
    server = HeadlessServer(root, root / "server.log", [f for f in flags if f], env, app=module)
    server.start()
    return server


def write_notebook(path: Path, cells: list[str]) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, path)


def open_and_run(page: Any, server: HeadlessServer, kind: str, name: str) -> None:
    """Open notebook `name`, wait for its kernel (not just the status bar), run every cell."""
    page.goto(f"{server.url}{APPS[kind][2]}/{name}?token={server.token}")
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=120_000)
    page.wait_for_function(
        """() => {
            const widget = window.jupyterapp.shell.currentWidget;
            const kernel = widget && widget.sessionContext && widget.sessionContext.session
                && widget.sessionContext.session.kernel;
            return kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
        }""",
        timeout=120_000,
    )
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")


def keep(server: HeadlessServer, name: str) -> None:
    shutil.copy(server.log_path, artifacts() / f"{name}-server.log")
