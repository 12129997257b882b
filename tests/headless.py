"""A real `jupyter server` with the dlnest extension, as a child process on a free local port (a test harness).

For the quick start, the benchmarks and the restart tests: what a user gets from
`jupyter server`, started the way CI can run it (as root where needed, no browser, a fresh token).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from dlnest_jupyter.core.errors import DLNestError

READY_TIMEOUT_S = 180.0  # a busy 2-core machine has taken 26 s to start a server


class HeadlessServer:
    """`with HeadlessServer(root_dir, log_path, ...) as server: server.call("GET", "dlnest/api/tasks")`."""

    def __init__(
        self,
        root_dir: Path,
        log_path: Path,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        app: str = "jupyter_server",
    ) -> None:
        """`app`: the module to run: jupyter_server, jupyterlab (JupyterLab) or notebook (7)."""
        self.root_dir, self.log_path, self.app = root_dir, log_path, app
        self.extra_args, self.env = list(extra_args), env
        self.token = secrets.token_hex(24)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> HeadlessServer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        command = [
            sys.executable, "-m", self.app, "--no-browser",
            *(["--allow-root"] if os.geteuid() == 0 else []),  # jupyter refuses root without it
            f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={self.root_dir}", f"--IdentityProvider.token={self.token}",
            *self.extra_args,
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root_dir,
                env=self.env,
            )
        self._wait_until_ready()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One authenticated request; returns the JSON reply (None for an empty one)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data if data is not None or method not in ("POST", "PUT") else b"",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")

    def stop(self) -> None:
        """Shut the server down as a user would (`/api/shutdown`); terminate it if that fails."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            self.call("POST", "api/shutdown")
            process.wait(60)
        except (OSError, subprocess.TimeoutExpired):
            process.terminate()
            process.wait(60)

    def kill(self) -> None:
        """SIGKILL the server, as the OOM killer would: no shutdown hook runs."""
        process, self._process = self._process, None
        assert process is not None, "the server is not running"
        process.kill()
        process.wait(60)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self._process.poll() is not None:
                code, self._process = self._process.returncode, None
                raise DLNestError(f"jupyter server exited with {code}:\n{self.log_tail()}")
            try:
                self.call("GET", "dlnest/api/settings")
                return
            except urllib.error.HTTPError as error:
                if error.code == 404:
                    self.stop()
                    raise DLNestError(
                        "jupyter server runs but /dlnest/api is missing: the dlnest_jupyter "
                        "extension is not enabled (see `jupyter server extension list`)"
                    ) from error
            except OSError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                self.stop()
                raise DLNestError(f"jupyter server not ready after {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.3)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
