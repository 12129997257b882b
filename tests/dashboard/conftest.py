"""The dashboard tests' parts: a real in-process API over a recording executor, and helpers
that read the widgets as a user sees them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
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


@dataclass
class Seen:
    """HTML as a reader meets it: its text (whole, and each piece between tags), what shows
    on hover, the elements made, and the attributes of those with a role (a screen reader's
    view)."""

    text: str = ""
    pieces: list[str] = field(default_factory=list)
    hover: list[str] = field(default_factory=list)
    tags: set[str] = field(default_factory=set)
    roles: dict[str, dict[str, str]] = field(default_factory=dict)


def seen(markup: str) -> Seen:
    found = Seen()

    class Reader(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.tags.add(tag)
            attributes = {k: v or "" for k, v in attrs}
            if "title" in attributes:
                found.hover.append(attributes["title"])
            if "role" in attributes:
                found.roles[attributes["role"]] = attributes

        def handle_data(self, data: str) -> None:
            found.text += data
            found.pieces.append(data)

    Reader().feed(markup)
    return found


def row_button(board: Dashboard, task_id: int) -> Any:
    return board.queue_panel.rows.children[board.queue_panel.row_ids.index(task_id)].children[0]
