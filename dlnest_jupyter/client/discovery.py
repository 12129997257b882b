"""Which scheduler a kernel talks to (reference/jupyter.md section 4), in this order:

1. `DLNEST_SERVER_URL` / `DLNEST_SERVER_TOKEN`, which the extension exports to every kernel it starts;
2. the Jupyter server whose pid is this kernel's `JPY_PARENT_PID` (never "the first" server listed:
   other users' servers can appear there);
3. an in-process scheduler over the same SQLite queue (plain IPython, VS Code, nbclient, CI).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .backends import Backend, EmbeddedBackend, RestBackend

URL_ENV, TOKEN_ENV = "DLNEST_SERVER_URL", "DLNEST_SERVER_TOKEN"

_embedded: EmbeddedBackend | None = None


def find_backend(
    env: Mapping[str, str] | None = None,
    running_servers: Callable[[], Iterable[Mapping[str, Any]]] | None = None,
) -> Backend:
    env = os.environ if env is None else env
    if env.get(URL_ENV):
        return RestBackend(_with_slash(env[URL_ENV]), env.get(TOKEN_ENV, ""))
    parent = env.get("JPY_PARENT_PID")
    if parent:
        for server in (running_servers or _list_running_servers)():
            if str(server.get("pid")) == parent:
                url = f"http://127.0.0.1:{server['port']}{server.get('base_url', '/')}"
                return RestBackend(_with_slash(url), str(server.get("token", "")))
    return embedded_backend()


def embedded_backend() -> EmbeddedBackend:
    """The process's own scheduler, started once and ticking on a background thread."""
    global _embedded
    if _embedded is None:
        from ..service.factory import build_service

        service = build_service(analyzers=True)
        service.start()
        _embedded = EmbeddedBackend(service)
    return _embedded


def stop_embedded() -> None:
    global _embedded
    if _embedded is not None:
        _embedded.service.stop()
        _embedded = None


def _list_running_servers() -> Iterable[Mapping[str, Any]]:
    from jupyter_server.serverapp import list_running_servers

    return list(list_running_servers())


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
