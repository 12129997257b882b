"""Which scheduler a kernel talks to (reference/jupyter.md section 4), in this order:

1. `DLNEST_SERVER_URL` / `DLNEST_SERVER_TOKEN`, which the extension exports to every kernel it starts;
2. the Jupyter server whose pid is this kernel's `JPY_PARENT_PID` (never "the first" server listed:
   other users' servers can appear there);
3. an in-process scheduler over the same SQLite queue (plain IPython, VS Code, nbclient, CI),
   reached through the same API dispatcher the server mounts, without sockets.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..core.server_env import TOKEN_ENV, URL_ENV
from .client import Client, InProcessTransport

_embedded: Client | None = None


def find_client(
    env: Mapping[str, str] | None = None,
    running_servers: Callable[[], Iterable[Mapping[str, Any]]] | None = None,
) -> Client:
    env = os.environ if env is None else env
    if env.get(URL_ENV):
        return Client.over_http(env[URL_ENV], env.get(TOKEN_ENV, ""))
    parent = env.get("JPY_PARENT_PID")
    if parent:
        for server in (running_servers or _list_running_servers)():
            if str(server.get("pid")) == parent:
                url = f"http://127.0.0.1:{server['port']}{server.get('base_url', '/')}"
                return Client.over_http(url, str(server.get("token", "")))
    return embedded_client()


def embedded_client() -> Client:
    """The process's own scheduler, started once and ticking on a background thread.

    Its requests may name any path (there is no server root to keep them under); relative
    paths are relative to this process's working folder.
    """
    global _embedded
    if _embedded is None:
        from ..service.api import Api
        from ..service.factory import build_service

        service = build_service(analyzers=True)
        service.tick()  # takes the queue's lease now if no server holds it: the first words say who
        service.start()
        _embedded = Client(InProcessTransport(Api(service, Path.cwd(), [Path("/")])))
    return _embedded


def stop_embedded() -> None:
    global _embedded
    if _embedded is not None:
        assert isinstance(_embedded.transport, InProcessTransport)
        _embedded.transport.api.service.stop()
        _embedded = None


def _list_running_servers() -> Iterable[Mapping[str, Any]]:
    from jupyter_server.serverapp import list_running_servers

    return list(list_running_servers())
