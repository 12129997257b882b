"""The `dlnest-analyzer` kernelspec picked bare from JupyterLab's kernel list: its first cell says
that no model is loaded and how to get one, instead of leaving a NameError to explain itself."""

from __future__ import annotations

from typing import Any

import pytest
from jupyter_client.manager import start_new_kernel

from ..conftest import REPO


def run(client: Any, code: str) -> str:
    said: list[str] = []

    def keep(message: dict[str, Any]) -> None:
        content = message["content"]
        said.append(content.get("text", "") + content.get("evalue", ""))

    client.execute_interactive(code, timeout=60, output_hook=keep)
    return "".join(said)


def test_a_bare_analyzer_kernel_says_what_it_is_in_its_first_cell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JUPYTER_PATH", str(REPO / "labextension_config"))
    for name in ("DLNEST_ANALYZER_PACKAGE", "DLNEST_SERVER_URL"):
        monkeypatch.delenv(name, raising=False)
    manager, client = start_new_kernel(kernel_name="dlnest-analyzer")
    try:
        first = run(client, "1 + 1")
        second = run(client, "model")
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)

    assert "has no model loaded" in first and "%dlnest analyze -r PKG" in first
    assert "has no model loaded" not in second and "name 'model' is not defined" in second
