"""What a server and its Ray sidecar say to each other over their socket (Ray-free, so the server
and a test's scripted sidecar use it as the real sidecar does).

- The sidecar's first message: `("ready", version)` once connected, or `("failed", why)`.
- Then requests `(id, op, args)`, `op` one of `Op`, answered on threads of their own (a slow stop
  does not hold up placement) as `(id, True, value)` or `(id, False, error)`: `error` an
  exception of `cluster/errors.py` (or a launch outcome of `core/errors.py`), which the server's
  call raises again. An operation that is not an `Op`, or that this sidecar has no handler for,
  is refused (`OperationFailed`): nothing but the table of handlers can be called.
"""

from __future__ import annotations

import enum
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from threading import Lock
from typing import Any

from .errors import CROSSES, OperationFailed

READY, FAILED = "ready", "failed"


class Op(str, enum.Enum):
    """The operations a sidecar answers (`sidecar.RayOps` has one method of each name)."""

    VIEW = "view"
    RESERVE = "reserve"
    START = "start"
    EXIT_CODE = "exit_code"
    STOP = "stop"
    ADOPT = "adopt"
    RELEASE = "release"


Handlers = Mapping[Op, Callable[..., Any]]


def answer(handlers: Handlers, op: object, args: tuple[Any, ...]) -> tuple[bool, Any]:
    """(True, value) of the handler of `op`, or (False, the error that crosses the link)."""
    try:
        handler = handlers[Op(op)]
    except (ValueError, KeyError):
        return False, OperationFailed(f"the Ray sidecar refused the operation {op!r}")
    try:
        return True, handler(*args)
    except CROSSES as exc:  # one of ours: only its class and message cross (nothing of Ray)
        return False, type(exc)(str(exc))
    except Exception as exc:
        traceback.print_exc()
        return False, OperationFailed(str(exc) or type(exc).__name__)


def serve(connection: Connection, handlers: Handlers, threads: int = 16) -> None:
    """Answer the requests on `connection` until the server goes."""
    send_lock = Lock()

    def reply(request_id: int, op: object, args: tuple[Any, ...]) -> None:
        ok, value = answer(handlers, op, args)
        with send_lock:
            connection.send((request_id, ok, value))

    pool = ThreadPoolExecutor(threads, thread_name_prefix="dlnest-ray")
    while True:
        try:
            request_id, op, args = connection.recv()
        except (EOFError, OSError):  # the server is gone: so is its link to the cluster
            # Calls stuck on a lost head are not waited for: the process exits next.
            pool.shutdown(wait=False, cancel_futures=True)
            return
        pool.submit(reply, request_id, op, args)
