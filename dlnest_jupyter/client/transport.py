"""HTTP to the Jupyter server over kept-alive connections, one per thread and server.

A notebook that submits a sweep, or a runExp loop, sends hundreds of small requests: opening a
TCP connection for each (as `urllib.request` does) was a third of a small request's time. Each
thread keeps its own connection, so a dashboard polling from a thread never interleaves with
the magics. Proxies are not used: the server is normally on this machine, and urllib's
`http_proxy` handling sent local requests to the proxy.
"""

from __future__ import annotations

import http.client
import select
import ssl
import threading
import urllib.parse

REQUEST_TIMEOUT_S = 60.0  # above the longest long poll (30 s) the server holds a request
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})
_ServerKey = tuple[str, str, int | None]


class TransportError(OSError):
    """The connection broke mid-reply, or the reply was not HTTP."""


class _Connections(dict[_ServerKey, http.client.HTTPConnection]):
    """One thread's connections, closed when the thread (or the transport) goes away."""

    def close_all(self) -> None:
        for connection in self.values():
            connection.close()
        self.clear()

    def __del__(self) -> None:
        self.close_all()


class KeepAliveTransport:
    """`transport(method, url, headers, body) -> (status, body)`, reusing connections."""

    def __init__(self, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._local = threading.local()

    def __call__(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, bytes]:
        parts = urllib.parse.urlsplit(url)
        key = (parts.scheme, parts.hostname or "127.0.0.1", parts.port)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection, reused = self._connection(key)
        try:
            return self._exchange(key, connection, method, target, headers, body)
        except TimeoutError:
            raise  # the server is slow, not gone: asking again would only wait twice as long
        except OSError:
            # A kept connection the server closed between our check and our request: sending
            # again is safe only when the request cannot have taken effect twice.
            if not (reused and method in _IDEMPOTENT):
                raise
        connection, _ = self._connection(key)
        return self._exchange(key, connection, method, target, headers, body)

    def close(self) -> None:
        """Close this thread's connections (other threads' close with their threads)."""
        self._connections().close_all()

    def _connections(self) -> _Connections:
        connections: _Connections | None = getattr(self._local, "connections", None)
        if connections is None:
            connections = self._local.connections = _Connections()
        return connections

    def _connection(self, key: _ServerKey) -> tuple[http.client.HTTPConnection, bool]:
        connections = self._connections()
        connection = connections.get(key)
        if connection is not None and not _dropped(connection):
            return connection, True
        if connection is not None:
            connection.close()
        scheme, host, port = key
        if scheme == "https":
            connection = http.client.HTTPSConnection(
                host, port, timeout=self.timeout_s, context=ssl.create_default_context()
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self.timeout_s)
        connections[key] = connection
        return connection, False

    def _exchange(
        self,
        key: _ServerKey,
        connection: http.client.HTTPConnection,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes | None,
    ) -> tuple[int, bytes]:
        """One request and its whole reply; a failed connection is dropped, never reused."""
        try:
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except http.client.HTTPException as error:  # a garbled or cut-off reply
            self._drop(key)
            raise TransportError(f"{type(error).__name__}: {error}") from error
        except BaseException:
            # KeyboardInterrupt included: an interrupted cell leaves the reply half read, and
            # the request that follows (the magics then POST an interrupt) needs a clean line.
            self._drop(key)
            raise
        if response.will_close:
            self._drop(key)
        return response.status, data

    def _drop(self, key: _ServerKey) -> None:
        connection = self._connections().pop(key, None)
        if connection is not None:
            connection.close()


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """True when the server closed an idle kept connection (it reads as ready, with EOF)."""
    if connection.sock is None:
        return True
    try:
        if hasattr(select, "poll"):  # select.select refuses descriptors past 1023
            poller = select.poll()
            poller.register(connection.sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([connection.sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
