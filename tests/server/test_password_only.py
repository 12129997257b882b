"""A server that has a password and no token still lets its kernels reach /dlnest/api/."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from jupyter_server.auth.security import passwd

from dlnest_jupyter.client.discovery import TOKEN_ENV

from .conftest import Fetch


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    return {
        **jp_server_config,
        # ServerApp.token, not IdentityProvider.token: pytest-jupyter fills an empty one in.
        "ServerApp": {**jp_server_config["ServerApp"], "token": ""},
        "PasswordIdentityProvider": {"hashed_password": passwd("correct horse")},
    }


async def test_kernels_of_a_password_only_server_get_a_key_that_opens_only_dlnest(
    jp_serverapp: Any, jp_fetch: Fetch
) -> None:
    assert jp_serverapp.identity_provider.token == ""
    await jp_serverapp.extension_manager.start_all_extensions()
    key = os.environ[TOKEN_ENV]
    assert key, "kernels must be given something to authenticate with"

    async def fetch(*path: str, authorization: str, **kwargs: Any) -> int:
        response = await jp_fetch(
            *path, headers={"Authorization": authorization}, raise_error=False, **kwargs
        )
        return int(response.code)

    assert await fetch("dlnest", "api", "settings", authorization=f"token {key}") == 200
    change = json.dumps({"max_tasks_per_device": 3})
    # A PUT passes without an XSRF cookie, as with a token.
    assert (
        await fetch(
            "dlnest", "api", "settings", authorization=f"token {key}", method="PUT", body=change
        )
        == 200
    )
    assert await fetch("api", "kernels", authorization=f"token {key}") == 403
    assert await fetch("dlnest", "api", "settings", authorization="token not-the-key") == 403
    assert await fetch("dlnest", "api", "settings", authorization=f"Bearer {key}x") == 403
    assert await fetch("dlnest", "api", "settings", authorization="token caf\u00e9") == 403
    await jp_serverapp.extension_manager.stop_all_extensions()
    assert TOKEN_ENV not in os.environ
