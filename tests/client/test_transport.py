"""The REST client's kept-alive connections, against a real local HTTP server."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dlnest_jupyter.client.client import Client, ClientError


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless the reply says close

    def do_GET(self) -> None:
        self._reply()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.server.posts.append(json.loads(self.rfile.read(length)))  # type: ignore[attr-defined]
        self._reply(201)

    def _reply(self, status: int = 200) -> None:
        server: Any = self.server
        if self.path.endswith("/slow"):
            time.sleep(1.0)  # a long poll
        server.requests.append((self.command, self.path, self.client_address[1]))
        if self.path.endswith("/missing"):
            status, body = 404, {"error": {"type": "TaskNotFoundError", "message": "no task 9"}}
        else:
            body = {"task": {"id": len(server.requests)}, "settings": {}}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if server.close_after_reply:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def setup(self) -> None:
        super().setup()
        self.server.connections.append(self.connection)  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.requests: list[tuple[str, str, int]] = []
        self.posts: list[Any] = []
        self.connections: list[socket.socket] = []
        self.close_after_reply = False

    def client_ports(self) -> list[int]:
        return [port for _, _, port in self.requests]

    def drop_idle_connections(self) -> None:
        """What a restarted or idle-timing-out server does to kept connections."""
        for connection in self.connections:
            connection.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def server() -> Iterator[_Server]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


def _client(server: _Server, clients: list[Client]) -> Client:
    clients.append(Client.over_http(f"http://127.0.0.1:{server.server_address[1]}/", "secret"))
    return clients[-1]


def test_requests_from_one_thread_share_one_connection(
    server: _Server, clients: list[Client]
) -> None:
    client = _client(server, clients)

    for _ in range(5):
        client.settings()

    assert len(set(server.client_ports())) == 1
    assert len(server.requests) == 5


def test_each_thread_gets_its_own_connection(server: _Server, clients: list[Client]) -> None:
    client = _client(server, clients)
    client.settings()
    worker = threading.Thread(target=client.settings)
    worker.start()
    worker.join()

    assert len(set(server.client_ports())) == 2


def test_a_connection_the_server_closed_is_replaced_and_a_post_is_sent_once(
    server: _Server, clients: list[Client]
) -> None:
    client = _client(server, clients)
    client.settings()
    server.drop_idle_connections()

    client.submit({"kind": "train", "config_path": "a.json"})
    client.settings()

    assert server.posts == [{"kind": "train", "config_path": "a.json"}]
    first, second, third = server.client_ports()
    assert first != second == third


def test_a_reply_that_closes_the_connection_is_read_whole_and_the_next_reconnects(
    server: _Server, clients: list[Client]
) -> None:
    server.close_after_reply = True
    client = _client(server, clients)

    assert client.task(1) == {"id": 1}
    assert client.task(2) == {"id": 2}
    assert len(set(server.client_ports())) == 2


def test_an_error_reply_keeps_the_connection_and_its_message(
    server: _Server, clients: list[Client]
) -> None:
    client = _client(server, clients)

    with pytest.raises(ClientError, match="no task 9") as raised:
        client.call("GET", "tasks/missing")
    client.settings()

    assert raised.value.status == 404 and raised.value.kind == "TaskNotFoundError"
    assert len(set(server.client_ports())) == 1


def test_a_request_interrupted_mid_reply_leaves_a_clean_connection_for_the_next(
    server: _Server, clients: list[Client]
) -> None:
    client = _client(server, clients)
    client.settings()

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.2)  # Ctrl-C on the cell, while it waits
    try:
        with pytest.raises(KeyboardInterrupt):
            client.call("GET", "tasks/1/experiments/1/slow")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    client.submit({"kind": "interrupt-like", "config_path": "b.json"})

    assert server.posts == [{"kind": "interrupt-like", "config_path": "b.json"}]


def test_a_stopped_server_is_a_one_line_error(server: _Server, clients: list[Client]) -> None:
    client = _client(server, clients)
    client.settings()
    server.shutdown()
    server.server_close()
    server.drop_idle_connections()

    with pytest.raises(ClientError, match=r"(cannot reach|lost) the Jupyter server at http://"):
        client.settings()
