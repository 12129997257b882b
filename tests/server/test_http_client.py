from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from dlnest_jupyter.client.client import ClientError, HttpTransport
from dlnest_jupyter.client.discovery import find_client

from ..projects import write_project
from .conftest import wait_for_state


async def test_the_http_client_speaks_to_a_real_server(
    jp_serverapp: Any, dlnest: Any, jp_root_dir: Path
) -> None:
    await dlnest("GET", "devices")  # starts the extension, which exports the server's address
    backend = find_client()
    assert isinstance(backend.transport, HttpTransport)
    loop = asyncio.get_running_loop()
    config = write_project(jp_root_dir / "proj", epochs=1)

    devices = await loop.run_in_executor(None, backend.devices)
    task = await loop.run_in_executor(
        None, backend.submit, {"kind": "train", "config_path": str(config), "cpu": True}
    )
    with pytest.raises(ClientError, match="no task with id 999") as refused:
        await loop.run_in_executor(None, backend.task, 999)

    assert [d["id"] for d in devices] == [0, 1, -1]
    assert task["kind"] == "train" and task["id"] == 1
    assert refused.value.status == 404
    await wait_for_state(dlnest, task["id"])  # no task outlives its test
