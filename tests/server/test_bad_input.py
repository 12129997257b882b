"""Bad requests get a 4xx naming the field, path or id at fault, and the server lives on."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from dlnest_jupyter.client.client import HttpTransport

from ..api_cases import CASES, TRAIN, write_case_project


@pytest.fixture
def project(jp_root_dir: Path, tmp_path: Path) -> Path:
    return write_case_project(jp_root_dir, tmp_path / "outside")


@pytest.fixture
def http(jp_serverapp: Any, jp_http_port: int, jp_base_url: str) -> HttpTransport:
    """The client's own HTTP transport to the test server (it sends paths exactly as given)."""
    return HttpTransport(
        f"http://localhost:{jp_http_port}{jp_base_url}", jp_serverapp.identity_provider.token
    )


def send(transport: HttpTransport, method: str, target: str, body: Any) -> tuple[int, Any]:
    raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    status, reply = transport.request(method, target, raw)
    return status, json.loads(reply)


@pytest.mark.parametrize(
    ("name", "method", "target", "body", "status", "message"), CASES, ids=[c[0] for c in CASES]
)
async def test_bad_input_gets_a_4xx_naming_the_culprit(
    dlnest: Any,
    http: HttpTransport,
    project: Path,
    name: str,
    method: str,
    target: str,
    body: Any,
    status: int,
    message: str,
) -> None:
    await dlnest("GET", "devices")  # starts the extension
    code, reply = await asyncio.to_thread(send, http, method, target, body)

    assert code == status, reply
    assert set(reply) == {"error"} and message in reply["error"]["message"], reply
    assert (await asyncio.to_thread(send, http, "GET", "devices", None))[0] == 200  # it lives on
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
