"""Both transports, one API: every request of the corpus gets the same reply over HTTP and in process.

The in-process transport here calls the very dispatcher the test server mounts, so the two replies
differ only if the HTTP path (the handler, Tornado, the client's HTTP transport) changes them.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from dlnest_jupyter.client.client import Client, ClientError, HttpTransport, InProcessTransport

from ..api_cases import CASES, SWEEP, TRAIN, write_case_project

# Requests that succeed, compared whole; a submission and a delete are compared below.
GOOD: list[tuple[str, str, Any]] = [
    ("GET", "devices", None),
    ("GET", "settings", None),
    ("PUT", "settings", {"max_tasks_per_device": 3, "launch_delay_s": 0.5}),
    ("PUT", "settings", {}),
    ("GET", "tasks", None),
    ("GET", "log?offset=0", None),
    ("GET", "tasks/1", None),
    ("GET", "tasks/1/output?offset=0", None),
    ("GET", "tasks/1/output", None),
    ("GET", "sweeps", None),
]
# What differs between two tasks submitted alike (the second gets the other, emptier card).
VOLATILE = ("id", "created_at", "started_at", "ended_at", "package_path", "devices")


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    # The executor seam, configured as a user would: tasks are placed and "run", no process starts.
    jp_server_config["DLNestApp"]["executor_class"] = "tests.recording_executor.RecordingExecutor"
    return jp_server_config


@pytest.fixture
def transports(
    jp_serverapp: Any, jp_http_port: int, jp_base_url: str, jp_root_dir: Path, tmp_path: Path
) -> tuple[HttpTransport, InProcessTransport]:
    write_case_project(jp_root_dir, tmp_path / "outside")
    http = HttpTransport(
        f"http://localhost:{jp_http_port}{jp_base_url}", jp_serverapp.identity_provider.token
    )
    return http, InProcessTransport(jp_serverapp.web_app.settings["dlnest_api"])


def send(transport: HttpTransport | InProcessTransport, method: str, target: str, body: Any) -> Any:
    raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    status, reply = transport.request(method, target, raw)
    return status, json.loads(reply)


def outcome(client: Client, method: str, target: str, body: Any) -> Any:
    """What the magics and the dashboard see: the reply, or the error's status, type and text."""
    try:
        return client.call(method, target, body)
    except ClientError as error:
        return (error.status, error.kind, str(error))


async def test_both_transports_answer_the_corpus_and_good_requests_alike(
    dlnest: Any, transports: tuple[HttpTransport, InProcessTransport]
) -> None:
    await dlnest("GET", "devices")  # starts the extension
    http, local = transports
    _, created = await asyncio.to_thread(send, http, "POST", "tasks", TRAIN)  # task 1, for GOOD

    for name, method, target, body, status, _ in CASES:
        over_http = await asyncio.to_thread(send, http, method, target, body)
        in_process = await asyncio.to_thread(send, local, method, target, body)
        assert over_http == in_process, name
        assert over_http[0] == status, name
    for method, target, body in GOOD:
        over_http = await asyncio.to_thread(send, http, method, target, body)
        in_process = await asyncio.to_thread(send, local, method, target, body)
        assert over_http == in_process and over_http[0] == 200, (method, target)
    assert created["task"]["state"] == "running"


async def test_the_client_gives_the_same_answers_and_errors_in_both_modes(
    dlnest: Any, transports: tuple[HttpTransport, InProcessTransport]
) -> None:
    await dlnest("GET", "devices")
    clients = [Client(transport) for transport in transports]

    for name, method, target, body, _, _ in CASES:
        if isinstance(body, bytes):
            continue  # the client sends JSON it made itself
        results = [await asyncio.to_thread(outcome, c, method, target, body) for c in clients]
        assert results[0] == results[1], name
    typo = {**TRAIN, "freq_path": "proj/typo_freq.json", "memory_mb": 100}
    warned = [await asyncio.to_thread(c.submit_warned, typo) for c in clients]
    for client, (task, _) in zip(clients, warned, strict=True):
        await asyncio.to_thread(client.delete, task["id"])
    submitted = [await asyncio.to_thread(c.submit, {**TRAIN, "memory_mb": 100}) for c in clients]
    deleted = [
        await asyncio.to_thread(c.delete, t["id"]) for c, t in zip(clients, submitted, strict=True)
    ]

    sweeps = [await asyncio.to_thread(c.submit_sweep, {**SWEEP, "metric": "loss"}) for c in clients]
    stopped = [
        await asyncio.to_thread(c.stop_sweep, s["id"])
        for c, (s, _) in zip(clients, sweeps, strict=True)
    ]

    for pair in (submitted, deleted):
        masked = [{k: v for k, v in task.items() if k not in VOLATILE} for task in pair]
        assert masked[0] == masked[1]
    for sweep_pair in ([s for s, _ in sweeps], stopped):
        masked = [_sweep_masked(sweep) for sweep in sweep_pair]
        assert masked[0] == masked[1]
    assert [s["state"] for s in stopped] == ["stopped", "stopped"]
    assert {t["state"] for t in stopped[0]["trials"]} == {"cancelled"}
    assert [t["state"] for t in deleted] == ["cancelled", "cancelled"]
    # A freq key the config lacks: warned of alike in both modes, and the task still queued.
    assert warned[0][1] == warned[1][1] and len(warned[0][1]) == 1
    assert "'epoch' in " in warned[0][1][0] and "the nearest key is 'epochs'" in warned[0][1][0]


def _sweep_masked(sweep: dict[str, Any]) -> dict[str, Any]:
    """A sweep less what differs between two made alike: ids, times, its trials' tasks."""
    trials = [{k: v for k, v in t.items() if k != "task_id"} for t in sweep["trials"]]
    volatile = ("id", "created_at", "ended_at", "trials")
    return {**{k: v for k, v in sweep.items() if k not in volatile}, "trials": trials}
