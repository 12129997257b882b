"""Bad requests get a 4xx naming the field, path or id at fault, and the server lives on."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from ..projects import write_project

TRAIN = {"kind": "train", "config_path": "proj/root_config.json"}

CASES: list[tuple[str, str, tuple[str, ...], Any, int, str]] = [
    # (id, method, path, body (bytes = raw), status, message fragment)
    ("not json", "POST", ("tasks",), b"{kind: train", 400, "not valid JSON"),
    ("json array", "POST", ("tasks",), b"[1, 2]", 400, "must be a JSON object"),
    (
        "no kind",
        "POST",
        ("tasks",),
        {"config_path": "proj/root_config.json"},
        400,
        "missing field 'kind'",
    ),
    ("unknown kind", "POST", ("tasks",), {"kind": "dance"}, 400, "field 'kind' must be one of"),
    ("no config", "POST", ("tasks",), {"kind": "train"}, 400, "missing field 'config_path'"),
    (
        "unknown field",
        "POST",
        ("tasks",),
        {**TRAIN, "colour": "red"},
        400,
        "unknown field 'colour'",
    ),
    (
        "memory as text",
        "POST",
        ("tasks",),
        {**TRAIN, "memory_mb": "4000"},
        400,
        "field 'memory_mb' must be an integer",
    ),
    (
        "negative memory",
        "POST",
        ("tasks",),
        {**TRAIN, "memory_mb": -5},
        400,
        "field 'memory_mb' must be an integer >= 1",
    ),
    (
        "cpu as text",
        "POST",
        ("tasks",),
        {**TRAIN, "cpu": "yes"},
        400,
        "field 'cpu' must be true or false",
    ),
    (
        "jump as number",
        "POST",
        ("tasks",),
        {**TRAIN, "jump": 1},
        400,
        "field 'jump' must be true or false",
    ),
    (
        "absolute path outside",
        "POST",
        ("tasks",),
        {**TRAIN, "config_path": "/etc/passwd"},
        403,
        "outside the folders",
    ),
    (
        "dotdot escape",
        "POST",
        ("tasks",),
        {**TRAIN, "config_path": "../../etc/passwd"},
        403,
        "outside the folders",
    ),
    (
        "symlink escape",
        "POST",
        ("tasks",),
        {**TRAIN, "config_path": "escape/root_config.json"},
        403,
        "outside the folders",
    ),
    (
        "missing config",
        "POST",
        ("tasks",),
        {**TRAIN, "config_path": "proj/nope.json"},
        400,
        "config file does not exist",
    ),
    (
        "broken config",
        "POST",
        ("tasks",),
        {**TRAIN, "config_path": "proj/broken.json"},
        400,
        "broken.json:1:2: invalid JSON",
    ),
    (
        "missing class",
        "POST",
        ("tasks",),
        {**TRAIN, "config_path": "proj/bad_class.json"},
        400,
        "defines no such class",
    ),
    (
        "impossible memory",
        "POST",
        ("tasks",),
        {**TRAIN, "memory_mb": 20000},
        400,
        "largest GPU has 16384 MiB",
    ),
    (
        "no record path",
        "POST",
        ("tasks",),
        {"kind": "continue"},
        400,
        "missing field 'record_path'",
    ),
    (
        "not a package",
        "POST",
        ("tasks",),
        {"kind": "continue", "record_path": "proj"},
        400,
        "not a complete save package",
    ),
    (
        "checkpoint as text",
        "POST",
        ("tasks",),
        {"kind": "continue", "record_path": "proj", "checkpoint_id": "3"},
        400,
        "field 'checkpoint_id' must be an integer",
    ),
    ("unknown task", "GET", ("tasks", "999"), None, 404, "no task with id 999"),
    ("delete unknown task", "DELETE", ("tasks", "999"), None, 404, "no task with id 999"),
    ("output of unknown task", "GET", ("tasks", "999", "output"), None, 404, "no task with id 999"),
    (
        "settings devices not a list",
        "PUT",
        ("settings",),
        {"devices": "0,1"},
        400,
        "field 'devices' must be a list",
    ),
    (
        "settings max zero",
        "PUT",
        ("settings",),
        {"max_tasks_per_device": 0},
        400,
        "must be an integer >= 1",
    ),
    (
        "settings negative delay",
        "PUT",
        ("settings",),
        {"launch_delay_s": -1},
        400,
        "launch_delay_s must be a number of seconds >= 0",
    ),
    ("settings unknown", "PUT", ("settings",), {"colour": "red"}, 400, "unknown field 'colour'"),
    (
        "project outside",
        "POST",
        ("projects",),
        {"path": "/tmp/elsewhere"},
        403,
        "outside the folders",
    ),
    (
        "project template",
        "POST",
        ("projects",),
        {"path": "p2", "template": "mnist"},
        400,
        "field 'template' must be one of",
    ),
    ("project exists", "POST", ("projects",), {"path": "proj"}, 400, "already exists"),
    ("project no path", "POST", ("projects",), {}, 400, "missing field 'path'"),
    (
        "oversized body",
        "POST",
        ("tasks",),
        b"{" + b" " * (2 * 1024 * 1024) + b"}",
        413,
        "the limit is",
    ),
]


@pytest.fixture
def project(jp_root_dir: Path, tmp_path: Path) -> Path:
    config = write_project(jp_root_dir / "proj")
    (config.parent / "broken.json").write_text("{oops")
    args = json.loads(config.read_text())
    (config.parent / "bad_class.json").write_text(json.dumps({**args, "runner_name": "Missing"}))
    outside = tmp_path / "outside"
    write_project(outside)
    os.symlink(outside, jp_root_dir / "escape")
    return config


@pytest.mark.parametrize(
    ("name", "method", "path", "body", "status", "message"), CASES, ids=[c[0] for c in CASES]
)
async def test_bad_input_gets_a_4xx_naming_the_culprit(
    dlnest: Any,
    project: Path,
    name: str,
    method: str,
    path: tuple[str, ...],
    body: Any,
    status: int,
    message: str,
) -> None:
    raw = body if isinstance(body, bytes) else None
    code, reply = await dlnest(method, *path, body=None if raw is not None else body, raw=raw)

    assert code == status, reply
    assert set(reply) == {"error"} and message in reply["error"]["message"], reply
    assert (await dlnest("GET", "devices"))[0] == 200  # and the server lives on
    assert not (project.parent / "Saves").exists()  # no package was made


async def test_bad_offsets_and_finished_tasks(dlnest: Any, project: Path) -> None:
    _, created = await dlnest("POST", "tasks", body={**TRAIN, "cpu": True})
    task_id = str(created["task"]["id"])
    for offset in ("-1", "abc"):
        code, reply = await dlnest("GET", "tasks", task_id, "output", params={"offset": offset})
        assert code == 400 and "offset must be a non-negative integer" in reply["error"]["message"]
    assert (await dlnest("GET", "log", params={"offset": "-5"}))[0] == 400
    assert (await dlnest("DELETE", "tasks", task_id))[0] == 200

    code, reply = await dlnest("DELETE", "tasks", task_id)

    assert code == 409 and reply["error"]["type"] == "TaskStateError"


async def test_a_request_without_the_token_is_refused(dlnest: Any, jp_fetch: Any) -> None:
    await dlnest("GET", "devices")
    response = await jp_fetch(
        "dlnest", "api", "devices", headers={"Authorization": ""}, raise_error=False
    )

    assert response.code == 403


async def test_a_cookie_post_without_xsrf_is_refused_and_with_it_accepted(
    dlnest: Any, jp_serverapp: Any, jp_http_port: int, jp_base_url: str
) -> None:
    from tornado.httpclient import AsyncHTTPClient

    await dlnest("GET", "devices")
    client, base = AsyncHTTPClient(), f"http://localhost:{jp_http_port}{jp_base_url}"
    login_page = await client.fetch(base + "login", raise_error=False)
    xsrf = next(
        c.split(";")[0].split("=", 1)[1]
        for c in login_page.headers.get_list("Set-Cookie")
        if c.startswith("_xsrf=")
    )
    login = await client.fetch(
        base + "login",
        method="POST",
        body=f"password={jp_serverapp.identity_provider.token}&_xsrf={xsrf}",
        headers={"Cookie": f"_xsrf={xsrf}"},
        follow_redirects=False,
        raise_error=False,
    )
    cookies = (
        "; ".join(c.split(";")[0] for c in login.headers.get_list("Set-Cookie")) + f"; _xsrf={xsrf}"
    )
    assert "username-" in cookies, login.code

    settings = base + "dlnest/api/settings"
    refused = await client.fetch(
        settings, method="PUT", body=b"{}", headers={"Cookie": cookies}, raise_error=False
    )
    accepted = await client.fetch(
        settings,
        method="PUT",
        body=b"{}",
        headers={"Cookie": cookies, "X-XSRFToken": xsrf},
        raise_error=False,
    )

    assert refused.code == 403
    assert accepted.code == 200
