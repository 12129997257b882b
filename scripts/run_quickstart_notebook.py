"""Start a real Jupyter server with the dlnest extension, run notebooks/quickstart.ipynb against it
headless (nbclient), save the executed copy, print what it did, and stop the server.

    .venv/bin/python scripts/run_quickstart_notebook.py [WORK_DIR]   (default: quickstart-output)

The notebook's kernel finds the server the way a server-started kernel does: through the
DLNEST_SERVER_URL / DLNEST_SERVER_TOKEN variables the extension exports. If the magics fell back to
an in-process scheduler instead, this fails: the point is to go through the server.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.headless import HeadlessServer  # noqa: E402  # the repository's server harness

NOTEBOOK = REPO / "notebooks" / "quickstart.ipynb"
CELL_TIMEOUT_S = 900


def main(argv: list[str]) -> int:
    work = Path(argv[1] if len(argv) > 1 else "quickstart-output").resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    server = HeadlessServer(
        work, work / "jupyter_server.log", [f"--DLNestApp.database_path={work / 'dlnest.sqlite'}"]
    )
    print(f"starting a Jupyter server on {server.url} (log: {server.log_path})", flush=True)
    with server:
        executed = _execute(work, server.url, server.token)
        tasks = server.call("GET", "dlnest/api/tasks")["tasks"]
        for task in tasks:  # the notebook leaves its analyzer loaded, for a user to attach to
            if task["kind"] == "analyze" and task["state"] == "running":
                server.call("DELETE", f"dlnest/api/tasks/{task['id']}")

    transcript = _transcript(executed)
    print(transcript)
    if "in-process scheduler" in transcript:
        print("error: the notebook did not reach the server's scheduler", file=sys.stderr)
        return 1
    states = [(t["id"], t["kind"], t["state"]) for t in tasks]
    expected = [("train", "succeeded"), ("continue", "succeeded"), ("analyze", "running")]
    if [(kind, state) for _, kind, state in states] != expected:
        print(f"error: expected {expected} on the server, got {states}", file=sys.stderr)
        return 1
    accuracy = _last_line_with(transcript, "accuracy")
    print(f"\nexecuted notebook: {work / 'quickstart.ipynb'}")
    print(f"save package: {tasks[0]['package_path']}")
    print(f"tasks on the server: {states}")
    print(f"validation accuracy of its latest checkpoint: {accuracy.rsplit(' ', 1)[-1]}")
    return 0


def _execute(work: Path, url: str, token: str) -> nbformat.NotebookNode:
    notebook: nbformat.NotebookNode = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    # The variables the extension exports to the kernels it starts; nbclient's kernel inherits them.
    os.environ.update(DLNEST_SERVER_URL=url, DLNEST_SERVER_TOKEN=token)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(work)}},
    )
    try:
        client.execute()
    finally:
        nbformat.write(notebook, work / "quickstart.ipynb")  # type: ignore[no-untyped-call]
    return notebook


def _transcript(notebook: nbformat.NotebookNode) -> str:
    lines: list[str] = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        lines.append("".join(f">>> {line}\n" for line in cell.source.splitlines()))
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                lines.append(output.text)
            elif "data" in output and "text/plain" in output.data:
                lines.append(output.data["text/plain"] + "\n")
    return "".join(lines)


def _last_line_with(text: str, word: str) -> str:
    return next((line for line in reversed(text.splitlines()) if word in line), "")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
