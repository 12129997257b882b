from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPResponse

from ..conftest import install_analyzer_kernelspec
from ..waiting import wait_until_async

Fetch = Callable[..., Awaitable[HTTPResponse]]


@pytest.fixture
def jp_server_config(tmp_path: Path) -> dict[str, Any]:
    return {
        "ServerApp": {
            "jpserver_extensions": {"dlnest_jupyter": True},
            "reraise_server_extension_failures": True,
        },
        "DLNestApp": {
            "database_path": str(tmp_path / "dlnest.sqlite"),
            "fake_gpus": "2x16384",
            "zygote": False,
            "tick_interval_s": 0.2,
        },
    }


@pytest.fixture
def dlnest(jp_serverapp: Any, jp_fetch: Fetch) -> Callable[..., Awaitable[tuple[int, Any]]]:
    """Call /dlnest/api/<path> with the server's token; returns (status, JSON body).

    The first call starts the extension for real (jp_serverapp alone never runs its start hook),
    so the scheduler ticks as in production; the server's cleanup stops it.
    """
    started = False

    async def call(
        method: str, *path: str, body: Any = None, raw: bytes | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        nonlocal started
        if not started:
            await jp_serverapp.extension_manager.start_all_extensions()
            started = True
        if raw is None and body is not None:
            raw = json.dumps(body).encode()
        if method in ("POST", "PUT") and raw is None:
            raw = b""
        response = await jp_fetch(
            "dlnest", "api", *path, method=method, body=raw, raise_error=False, **kwargs
        )
        return response.code, json.loads(response.body) if response.body else None

    return call


async def wait_for_state(
    call: Callable[..., Awaitable[tuple[int, Any]]], task_id: int, timeout_s: float = 120
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def ended() -> dict[str, Any] | None:
        _, body = await call("GET", "tasks", str(task_id))
        task: dict[str, Any] = body["task"]
        seen.update(task)  # for the message if it never ends
        return task if task["state"] in ("succeeded", "failed", "cancelled", "pruned") else None

    return await wait_until_async(ended, timeout_s, lambda: seen, every_s=0.2)


@pytest.fixture
def analyzer_kernelspec(jp_environ: Any) -> None:
    install_analyzer_kernelspec()


async def wait_for_analyzer(
    call: Callable[..., Awaitable[tuple[int, Any]]], task_id: int, timeout_s: float = 180
) -> dict[str, Any]:
    """Wait until analyzer `task_id` has loaded its package (or ended); returns the task."""
    seen: dict[str, Any] = {}

    async def loaded() -> dict[str, Any] | None:
        _, body = await call("GET", "tasks", str(task_id))
        task: dict[str, Any] = body["task"]
        seen.update(task)  # for the message if it never loads
        if task["state"] != "running" or task["progress"].get("analyzer") != "loading":
            return task
        return None

    return await wait_until_async(loaded, timeout_s, lambda: seen, every_s=0.2)


async def run_experiment(
    call: Callable[..., Awaitable[tuple[int, Any]]],
    task_id: int,
    timeout_s: float = 120,
    **body: str,
) -> dict[str, Any]:
    """Start an experiment and follow it (long polling) to its end; returns it with all output."""
    status, reply = await call("POST", "tasks", str(task_id), "experiments", body=body)
    assert status == 201, reply
    return await follow_experiment(call, task_id, reply["experiment"], timeout_s)


async def follow_experiment(
    call: Callable[..., Awaitable[tuple[int, Any]]],
    task_id: int,
    experiment: dict[str, Any],
    timeout_s: float = 120,
) -> dict[str, Any]:
    """Follow a started experiment (long polling) to its end; returns it with all output."""
    output, offset = "", 0
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        _, reply = await call(
            "GET", "tasks", str(task_id), "experiments", str(experiment["id"]),
            params={"offset": offset, "wait_s": 2},
        )  # fmt: skip
        experiment = reply["experiment"]
        output += experiment["output"]
        offset = experiment["offset"]
        if experiment["state"] not in ("queued", "running"):
            return {**experiment, "output": output}
        assert asyncio.get_running_loop().time() < deadline, experiment
