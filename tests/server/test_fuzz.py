"""A seeded fuzz over every route: whatever arrives, the answer is JSON, never a 500, and the
server keeps answering. Requests go through the dispatcher directly (many, fast) and over HTTP
to a real server (fewer, with odd content types too). Tasks are placed by a recording executor.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dlnest_jupyter.client.client import HttpTransport
from dlnest_jupyter.core.devices import FakeSource
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.service.api import Api
from dlnest_jupyter.service.api.routes import ROUTES
from dlnest_jupyter.service.service import DLNestService

from ..api_cases import write_case_project
from ..recording_executor import RecordingExecutor

SEED = 20261201
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
IDS = ("1", "2", "0", "-1", "999", "abc", "9" * 30, "%00", "%ff", "1.5", "%C2%B2", "%2e%2e", "")
QUERY_VALUES = ("0", "5", "-1", "abc", "1" + "0" * 23, "%C2%B2", "nan", "inf", "0.01", "31", "")
WEIRD: tuple[Any, ...] = (
    None, True, False, 0, -1, 1, 2**63, -(2**63) - 1, 10**30, 1.5, -0.0, 1e308,
    "", "a", "\x00", "\ud800", "proj/\x00x", "x" * 300, "../../etc/passwd", "/etc/passwd",
    "proj/root_config.json", "proj", "proj/nope", "escape/root_config.json",
    [], {}, [1, [2, [3]]], {"a": {"b": None}}, [-1, 0, 2**63], ["0"],
)  # fmt: skip
TEMPLATES: tuple[dict[str, Any], ...] = (
    {"kind": "train", "config_path": "proj/root_config.json", "cpu": True},
    {"kind": "continue", "record_path": "proj", "checkpoint_id": 1},
    {"kind": "analyze", "record_path": "proj", "scripts_dir": "proj"},
    {"name": "ident"},
    {"code": "print(1)"},
    {"devices": [0, -1], "max_tasks_per_device": 2, "launch_delay_s": 0, "starvation_s": 60},
    {"path": "fresh", "template": "clean"},
    {"config_path": "proj/root_config.json", "grid": {"batch_size": [8, 16]}, "cpu": True},
    {
        "config_path": "proj/root_config.json",
        "search": {"batch_size": {"choices": [8]}},
        "trials": 2,
        "metric": "loss",
        "prune": "median",
        "cpu": True,
    },
    {"path": "proj", "plugins": ["LogInit"], "full": True},
)
FIELDS = sorted({name for template in TEMPLATES for name in template} | {"colour", "memory_mb"})
RAW_BODIES = (
    b"", b"{", b"null", b"[]", b"42", b'"text"', b"{kind: train}", b'{"a": NaN}',
    b'{"a": -Infinity}', b"\xff\xfe", b"[" * 50_000 + b"]" * 50_000,
    b'{"memory_mb": 1' + b"0" * 5000 + b"}", b'{"kind": "\\ud800"}',
)  # fmt: skip


def requests(rng: random.Random, count: int) -> Iterator[tuple[str, str, bytes | None]]:
    for _ in range(count):
        route = rng.choice(ROUTES)
        method = route.method if rng.random() < 0.8 else rng.choice(METHODS)
        target = route.pattern
        for part in ("{task}", "{experiment}", "{sweep}"):
            target = target.replace(part, rng.choice(IDS))
        if rng.random() < 0.5:
            names = rng.sample(("offset", "display_offset", "wait_s", "x"), rng.randint(1, 3))
            target += "?" + "&".join(f"{n}={rng.choice(QUERY_VALUES)}" for n in names)
        yield method, target, body(rng)


def body(rng: random.Random) -> bytes | None:
    roll = rng.random()
    if roll < 0.1:
        return None
    if roll < 0.25:
        return rng.choice(RAW_BODIES)
    if roll < 0.3:
        return json.dumps("m" * 1_000_000).encode()  # a megabyte string
    fields = dict(rng.choice(TEMPLATES))
    for _ in range(rng.randint(0, 3)):
        fields[rng.choice(FIELDS)] = rng.choice(WEIRD)
    if fields and rng.random() < 0.2:
        fields.pop(rng.choice(list(fields)))
    return json.dumps(fields).encode()


def assert_answered(status: int, text: bytes | str, request: tuple[str, str, Any]) -> None:
    reply = json.loads(text)
    assert isinstance(reply, dict) and 200 <= status < 500, (status, reply, request[:2])
    if status >= 400:
        assert set(reply) == {"error"}, reply
        assert isinstance(reply["error"]["type"], str) and reply["error"]["message"], reply


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    root = tmp_path / "root"
    root.mkdir()
    write_case_project(root, tmp_path / "outside")
    service = DLNestService(
        TaskStore(tmp_path / "q.sqlite"), FakeSource((16384, 16384)), RecordingExecutor()
    )
    yield Api(service, root, [root])
    service.stop()


def test_no_request_to_the_dispatcher_gets_a_500_or_a_non_json_answer(api: Api) -> None:
    rng = random.Random(SEED)
    statuses = set()
    for request in requests(rng, 800):
        reply = api.call(*request)
        assert_answered(reply.status, reply.text, request)
        statuses.add(reply.status)

    assert {200, 201, 400, 404, 405} <= statuses  # the fuzz reached the verbs too
    assert api.call("GET", "devices").status == 200


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    jp_server_config["DLNestApp"]["executor_class"] = "tests.recording_executor.RecordingExecutor"
    return jp_server_config


async def test_no_request_over_http_gets_a_500_and_the_server_lives_on(
    dlnest: Any, jp_serverapp: Any, jp_http_port: int, jp_base_url: str, jp_root_dir: Path,
    jp_fetch: Any, tmp_path: Path,
) -> None:  # fmt: skip
    write_case_project(jp_root_dir, tmp_path / "outside")
    await dlnest("GET", "devices")
    http = HttpTransport(
        f"http://localhost:{jp_http_port}{jp_base_url}", jp_serverapp.identity_provider.token
    )
    rng = random.Random(SEED + 1)

    for request in requests(rng, 200):
        status, text = await asyncio.to_thread(http.request, *request)
        assert_answered(status, text, request)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        response = await jp_fetch(
            "dlnest", "api", "tasks", method="POST", body=b"kind=train&config_path=x",
            headers={"Content-Type": content_type}, raise_error=False,
        )  # fmt: skip
        assert_answered(response.code, response.body, ("POST", "tasks", content_type))

    assert (await dlnest("GET", "devices"))[0] == 200
