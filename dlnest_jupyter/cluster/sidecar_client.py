"""The server's side of its Ray sidecar: requests with timeouts, and a new sidecar when one ends.

Every call fails fast with `ClusterUnavailable` while there is no connected sidecar, so a lost
head never holds up the scheduler or a request: the server keeps answering, says why, and tries
again (a new sidecar, a new `ray.init`) at most every `retry_interval_s`. A call that gets no
answer in its time ends the sidecar: a stuck link is not trusted with the next request.
"""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from ..core.errors import LaunchDeferred, LaunchUnknown

CONNECT_TIMEOUT_S = 60.0  # a first `ray.init` on a busy 2-core machine takes 5-10 s


class ClusterUnavailable(LaunchDeferred, OSError):
    """No answer from the cluster now: a launch is queued again, a poll says "still running"."""


class NodeLost(OSError):
    pass


class AnswerLost(OSError):
    """The request went out but no answer came: whether it took effect is not known."""


class AgentUnavailable(ClusterUnavailable):
    """A node's agent is restarting or did not answer in time."""


# What each kind of failed answer raises here. "gone": the sidecar ended while the call waited.
_ANSWERS: dict[str, type[Exception]] = {
    "lost": NodeLost,
    "deferred": LaunchDeferred,
    "unknown": LaunchUnknown,
    "unavailable": AgentUnavailable,
    "gone": AnswerLost,
}


class SidecarClient:
    def __init__(
        self,
        address: str,
        zygote: bool = True,
        retry_interval_s: float = 5.0,
        python: str = sys.executable,
    ) -> None:
        self.address, self.zygote, self.python = address, zygote, python
        self.retry_interval_s = retry_interval_s
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[threading.Event, list[Any]]] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: Connection | None = None
        self._ready = False
        self._started_at = float("-inf")
        self.reason: str | None = f"connecting to the Ray cluster at {address}"
        self._closed = False

    # -- calls ------------------------------------------------------------------------------
    def call(self, op: str, *args: Any, timeout_s: float) -> Any:
        """`op(*args)` in the sidecar. Raises ClusterUnavailable if nothing was sent (no link),
        AnswerLost if the request went out and no answer came in `timeout_s`, else what the
        sidecar's answer says (NodeLost, LaunchDeferred, LaunchUnknown, OSError)."""
        connection = self._connection_or_raise()
        event, box = threading.Event(), list[Any]()
        request_id = next(self._ids)
        with self._lock:
            self._pending[request_id] = (event, box)
        try:
            try:
                with self._send_lock:  # one message at a time on the socket
                    connection.send((request_id, op, args))
            except OSError as exc:
                raise ClusterUnavailable(f"the link to the Ray cluster broke: {exc}") from exc
            if not event.wait(timeout_s):
                self._end(f"the Ray cluster at {self.address} did not answer in {timeout_s:g} s")
                raise AnswerLost(self.reason or "")
        finally:
            with self._lock:
                self._pending.pop(request_id, None)
        ok, value = box
        if ok:
            return value
        kind, message = value
        raise _ANSWERS.get(kind, OSError)(message)

    def _connection_or_raise(self) -> Connection:
        connection = self._connection_or_none()
        if connection is None:
            raise ClusterUnavailable(self.reason or "no Ray cluster")
        return connection

    def _connection_or_none(self) -> Connection | None:
        with self._lock:
            if self._ready and self._connection is not None:
                return self._connection
            if (
                self._process is None
                and not self._closed
                and time.monotonic() - self._started_at >= self.retry_interval_s
            ):
                self._spawn()
            return None

    # -- the sidecar's life -----------------------------------------------------------------
    def _spawn(self) -> None:
        """(Lock held.) Start a sidecar; it says `ready` once connected, on the reader thread."""
        ours, theirs = socket.socketpair()
        self._started_at = time.monotonic()
        self._process = subprocess.Popen(
            [self.python, "-m", "dlnest_jupyter.cluster.sidecar", str(theirs.fileno()),
             self.address, "zygote" if self.zygote else "fork"],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        theirs.close()
        connection = Connection(ours.detach())
        self._connection = connection
        threading.Thread(
            target=self._read, args=(connection, self._process), name="dlnest-ray-link", daemon=True
        ).start()

    def _read(self, connection: Connection, process: subprocess.Popen[bytes]) -> None:
        try:
            if not connection.poll(CONNECT_TIMEOUT_S):
                raise EOFError(
                    f"no connection to the Ray cluster at {self.address} in {CONNECT_TIMEOUT_S:g} s"
                )
            first = connection.recv()
            if first[0] != "ready":
                raise EOFError(first[1])
            with self._lock:
                if self._process is process:
                    self._ready, self.reason = True, None
            while True:
                request_id, ok, value = connection.recv()
                with self._lock:
                    waiter = self._pending.get(request_id)
                if waiter is not None:
                    waiter[1][:] = [ok, value]
                    waiter[0].set()
        except (EOFError, OSError) as exc:
            self._end(str(exc) or f"the link to the Ray cluster at {self.address} ended", process)

    def _end(self, reason: str, process: subprocess.Popen[bytes] | None = None) -> None:
        """Let this sidecar go (killed if it still runs); calls waiting on it fail now."""
        with self._lock:
            if process is not None and process is not self._process:
                return  # an earlier sidecar's reader, ending late
            process, connection = self._process, self._connection
            self._process = self._connection = None
            self._ready = False
            self.reason = reason
            waiting = list(self._pending.values())
        for event, box in waiting:
            box[:] = [False, ("gone", reason)]
            event.set()
        if connection is not None:
            connection.close()
        if process is not None:
            process.kill()
            threading.Thread(target=process.wait, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._end("closed")
