"""The dashboard tests' parts: a real in-process API over a recording executor, and helpers
that read the widgets as a user sees them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dlnest_jupyter.client.client import Client, ClientError, InProcessTransport
from dlnest_jupyter.core.devices import FakeSource
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.dashboard import Dashboard
from dlnest_jupyter.service.api import Api
from dlnest_jupyter.service.service import DLNestService

from ..projects import write_project
from ..recording_executor import RecordingExecutor

HOSTILE = "<img src=x onerror=alert(1)>"


class Transport(InProcessTransport):
    """The in-process transport, with a switch that makes the server "go away", and a log."""

    def __init__(self, api: Api) -> None:
        super().__init__(api)
        self.down = False
        self.sent: list[tuple[str, str]] = []

    def request(self, method: str, target: str, body: bytes | None) -> tuple[int, bytes | str]:
        if self.down:
            raise ClientError("cannot reach the Jupyter server at http://127.0.0.1:1/: refused")
        self.sent.append((method, target))
        return super().request(method, target, body)


@pytest.fixture
def transport(tmp_path: Path) -> Iterator[Transport]:
    service = DLNestService(
        TaskStore(tmp_path / "q.sqlite"), FakeSource((16384, 16384)), RecordingExecutor()
    )
    yield Transport(Api(service, tmp_path, [tmp_path]))
    service.stop()


@pytest.fixture
def client(transport: Transport) -> Client:
    return Client(transport)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_project(tmp_path / "proj")


def submit(client: Client, config: Path, **fields: Any) -> dict[str, Any]:
    return client.submit({"kind": "train", "config_path": str(config), **fields})


def rows_html(board: Dashboard) -> str:
    """The queue's rows as shown, each row's cells beside its select button."""
    return "".join(row.children[1].value for row in board.queue_panel.rows.children)


def row_button(board: Dashboard, task_id: int) -> Any:
    return board.queue_panel.rows.children[board.queue_panel.row_ids.index(task_id)].children[0]
