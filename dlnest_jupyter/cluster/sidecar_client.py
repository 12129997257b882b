"""The server's side of its Ray sidecar: requests with timeouts, and a new sidecar when one ends.

Every call fails fast with `ClusterUnavailable` while there is no connected sidecar, so a lost
head never holds up the scheduler or a request: the server keeps answering, says why, and tries
again (a new sidecar, a new `ray.init`) at most every `retry_interval_s`. A call that gets no
answer in its time ends the sidecar: a stuck link is not trusted with the next request.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from multiprocessing.connection import Connection
from typing import Any

from . import protocol
from .errors import CROSSES, AnswerLost, ClusterUnavailable, OperationFailed
from .protocol import Op

CONNECT_TIMEOUT_S = 60.0  # a first `ray.init` on a busy 2-core machine takes 5-10 s
SIDECAR = ("-m", "dlnest_jupyter.cluster.sidecar")  # after the Python that runs it


class SidecarClient:
    def __init__(
        self,
        address: str,
        zygote: bool = True,
        retry_interval_s: float = 5.0,
        python: str = sys.executable,
        command: Sequence[str] | None = None,
    ) -> None:
        """`command`: what starts a sidecar (`python -m dlnest_jupyter.cluster.sidecar` unless
        given; a test's scripted one), given the socket's descriptor, `address` and the launch
        mode as its last three arguments."""
        self.address, self.zygote = address, zygote
        self.command = list(command) if command is not None else [python, *SIDECAR]
        self.retry_interval_s = retry_interval_s
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, Future[Any]] = {}  # request id -> its answer, once it comes
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: Connection | None = None
        self._socket: socket.socket | None = None  # the same socket, for `_end` to shut down
        self._ready = False
        self._started_at = float("-inf")
        self.reason: str | None = f"connecting to the Ray cluster at {address}"
        self._closed = False

    # -- calls ------------------------------------------------------------------------------
    def call(self, op: Op, *args: Any, timeout_s: float) -> Any:
        """`op(*args)` in the sidecar. Raises ClusterUnavailable if nothing was sent (no link),
        AnswerLost if the request went out and no answer came in `timeout_s`, else what the
        sidecar's answer raised there (NodeLost, LaunchDeferred, LaunchUnknown, AgentUnavailable,
        OperationFailed: `cluster/errors.py`)."""
        connection = self._connection_or_raise()
        answer: Future[Any] = Future()
        request_id = next(self._ids)
        with self._lock:
            self._pending[request_id] = answer
        try:
            try:
                with self._send_lock:  # one message at a time on the socket
                    connection.send((request_id, op, args))
            except OSError as exc:
                raise ClusterUnavailable(f"the link to the Ray cluster broke: {exc}") from exc
            try:
                return answer.result(timeout_s)
            except FutureTimeout:
                pass
            self._end(f"the Ray cluster at {self.address} did not answer in {timeout_s:g} s")
            raise AnswerLost(self.reason or "")
        finally:
            with self._lock:
                self._pending.pop(request_id, None)

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
            [*self.command, str(theirs.fileno()), self.address,
             "zygote" if self.zygote else "fork"],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        theirs.close()
        # Two descriptors of our end: the reader's connection, closed by the reader alone (not
        # under its `recv`), and the socket `_end` shuts down to wake it.
        connection = Connection(os.dup(ours.fileno()))
        self._connection, self._socket = connection, ours
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
            if first[0] != protocol.READY:
                raise EOFError(first[1])
            with self._lock:
                if self._process is process:
                    self._ready, self.reason = True, None
            while True:
                request_id, ok, value = connection.recv()
                with self._lock:  # taken: its answer is set once, here or by `_end`
                    answer = self._pending.pop(request_id, None)
                if answer is None:
                    continue  # its call gave up waiting
                if ok:
                    answer.set_result(value)
                elif isinstance(value, CROSSES):
                    answer.set_exception(value)
                else:  # no error of ours (`protocol.answer` sends nothing else)
                    answer.set_exception(OperationFailed(f"the Ray sidecar answered {value!r}"))
        except Exception as exc:  # the end of the link, or an answer it cannot read: not trusted
            self._end(str(exc) or f"the link to the Ray cluster at {self.address} ended", process)
        finally:  # closed here, not under a `recv` or `send` (which would fail, not say EOF)
            with self._send_lock:
                connection.close()

    def _end(self, reason: str, process: subprocess.Popen[bytes] | None = None) -> None:
        """Let this sidecar go (killed if it still runs); calls waiting on it fail now."""
        with self._lock:
            if process is not None and process is not self._process:
                return  # an earlier sidecar's reader, ending late
            process, end = self._process, self._socket
            self._process, self._connection, self._socket = None, None, None
            self._ready = False
            self.reason = reason
            waiting = list(self._pending.values())
            self._pending.clear()
        for answer in waiting:
            answer.set_exception(AnswerLost(reason))
        if end is not None:  # the reader's `recv` sees the end, and closes the connection
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()
        if process is not None:
            process.kill()
            threading.Thread(target=process.wait, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._end("closed")
