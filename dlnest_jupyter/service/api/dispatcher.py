"""The REST API as one in-process dispatcher: a method, a path and a body in; a status and JSON out.

Both transports go through it: the server's one handler (`server/handlers.py`) hands it every
request under `/dlnest/api/`, and the client's in-process transport calls it directly when there
is no server. So a request gets the same checks, the same reply and the same error in both.
The routes are data (`routes.py`), and what a verb reads and returns is in `call.py`;
what a request's parts must be is in `requests.py` and `core/fields.py`; how an error becomes
a status is the table below, and nowhere else.

A verb returns a `Reply`, or a `Wait` for a long poll: `call` waits on this thread, `call_async`
runs the verb on a worker thread and awaits the wait on the server's loop, never blocking it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from ...core.errors import (
    BodyTooLargeError,
    CheckpointNotFoundError,
    DiskFullError,
    DLNestError,
    ForbiddenPathError,
    MethodNotAllowedError,
    PackageBusyError,
    RouteNotFoundError,
    SweepNotFoundError,
    SweepStateError,
    TaskNotFoundError,
    TaskStateError,
)
from ..service import DLNestService
from . import requests as api_requests
from .call import Call, Reply, Route, Wait, json_reply
from .routes import ROUTES

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

# The one error-to-status table; the first matching class wins, DLNestError is the catch-all.
ERROR_STATUS: tuple[tuple[type[DLNestError], int], ...] = (
    (DiskFullError, 507),  # Insufficient Storage: nothing was made, the message names the path
    (BodyTooLargeError, 413),
    (ForbiddenPathError, 403),
    (MethodNotAllowedError, 405),
    (RouteNotFoundError, 404),
    (TaskNotFoundError, 404),
    (SweepNotFoundError, 404),
    (CheckpointNotFoundError, 404),
    (TaskStateError, 409),
    (SweepStateError, 409),
    (PackageBusyError, 409),
    (DLNestError, 400),
)


def status_for(error: DLNestError) -> int:
    return next(status for kind, status in ERROR_STATUS if isinstance(error, kind))


def error_reply(error: DLNestError) -> Reply:
    return json_reply(
        status_for(error), {"error": {"type": type(error).__name__, "message": str(error)}}
    )


class Api:
    def __init__(
        self,
        service: DLNestService,
        root_dir: Path,
        allowed_roots: Sequence[Path],
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        """`root_dir`: what relative paths in requests are relative to; `allowed_roots`: the
        folders whose paths requests may name (the server's root dir, or everything embedded)."""
        self.service, self.root_dir = service, root_dir.resolve()
        self.allowed_roots = [root.resolve() for root in allowed_roots]
        self.max_body_bytes = max_body_bytes
        self.routes = ROUTES

    def call(self, method: str, target: str, body: bytes | None = None) -> Reply:
        """Answer `method target` (`target`: a path under /dlnest/api/, with its query), blocking."""
        result = self._result(method, target, body)
        if isinstance(result, Reply):
            return result
        with contextlib.suppress(concurrent.futures.TimeoutError):
            result.future.result(result.timeout_s)
        result.future.cancel()  # a poll that timed out leaves no waiter behind
        return self._guarded(result.then)

    async def call_async(self, method: str, target: str, body: bytes | None = None) -> Reply:
        """`call` for an event loop: the verb runs on a worker thread, a long poll is awaited."""
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(None, self._result, method, target, body)
        if isinstance(result, Reply):
            return result
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.wrap_future(result.future), result.timeout_s)
        return self._guarded(result.then)

    def _result(self, method: str, target: str, body: bytes | None) -> Reply | Wait:
        def run() -> Reply | Wait:
            route, call = self._match(method, target, body)
            return route.verb(call)

        return self._guarded(run)

    def _match(self, method: str, target: str, body: bytes | None) -> tuple[Route, Call]:
        path, _, query = target.partition("?")
        segments = [urllib.parse.unquote(s) for s in path.strip("/").split("/")] if path else []
        allowed = []
        for route in self.routes:
            ids = route.ids(segments)
            if ids is None:
                continue
            if route.method == method:
                return route, Call(self, ids, api_requests.query(query), body)
            allowed.append(route.method)
        where = "/dlnest/api/" + "/".join(segments)
        if allowed:
            raise MethodNotAllowedError(f"{where} takes {', '.join(allowed)}, not {method}")
        raise RouteNotFoundError(
            f"no route {where}; routes: "
            + ", ".join(sorted({r.pattern or "(none)" for r in self.routes}))
        )

    def _guarded(self, run: Callable[[], T]) -> T | Reply:
        try:
            return run()
        except DLNestError as error:
            return error_reply(error)
        except Exception as error:  # a bug of ours: the caller still gets JSON, and the log says
            log.exception("dlnest API request failed")
            return json_reply(
                500,
                {"error": {"type": "InternalError", "message": f"{type(error).__name__}: {error}"}},
            )
