"""The service's side of the zygote (runtime/zygote.py): start it, ask it to fork tasks, hear
which of its children ended. If the zygote is not ready or has died, `launch` returns None and
the executor starts a fresh interpreter instead, so tasks still start, only slower.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from queue import Empty, Queue
from typing import Any

from ...core import processes

log = logging.getLogger(__name__)


class ZygoteClient:
    def __init__(self, python: str = sys.executable, reply_timeout_s: float = 10.0) -> None:
        self.python = python
        self.reply_timeout_s = reply_timeout_s
        self.exit_codes: dict[int, int] = {}  # pid -> exit status of children that ended
        self._process: subprocess.Popen[str] | None = None
        self._replies: Queue[dict[str, Any]] = Queue()
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._request_id = 0

    def start(self) -> None:
        """Start warming up a zygote in the background (it takes a few seconds)."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                return
            self._ready.clear()
            self._process = subprocess.Popen(
                [self.python, "-m", "dlnest_jupyter.runtime.zygote"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                bufsize=1,
                start_new_session=True,  # a Ctrl+C in the service's terminal is not for the zygote
            )
            threading.Thread(
                target=self._listen, args=(self._process,), name="dlnest-zygote", daemon=True
            ).start()

    def running(self) -> bool:
        process = self._process
        return process is not None and process.poll() is None

    @property
    def pid(self) -> int | None:
        """The zygote's process id, while it runs."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def wait_ready(self, timeout_s: float) -> bool:
        return self._ready.wait(timeout_s)

    def launch(
        self, request: Mapping[str, Any], output_path: str, cwd: str, env: Mapping[str, str]
    ) -> tuple[int, float | None] | None:
        """Fork a task from the zygote: (pid, start time), or None if no zygote is ready."""
        with self._lock:
            process = self._process
            if (
                process is None
                or process.poll() is not None
                or not self._ready.is_set()
                or process.stdin is None
            ):
                return None
            self._request_id += 1
            message = {
                "id": self._request_id,
                "request": dict(request),
                "output_path": output_path,
                "cwd": cwd,
                "env": dict(env),
            }
            try:
                process.stdin.write(json.dumps(message) + "\n")
                process.stdin.flush()
                reply = self._reply_to(self._request_id)
            except (OSError, Empty):
                log.warning("the dlnest zygote did not answer; starting tasks without it")
                return None
        return int(reply["pid"]), reply.get("started")

    def _reply_to(self, request_id: int) -> dict[str, Any]:
        while True:
            reply = self._replies.get(timeout=self.reply_timeout_s)
            if reply.get("id") == request_id:
                return reply
            # A reply to a launch we gave up on: its task was started another way meanwhile.
            processes.kill_group(int(reply["pid"]), signal.SIGKILL)

    def close(self, wait_s: float = 5.0) -> None:
        """Stop the zygote; tasks it started keep running.

        The zygote ends on EOF once its children have ended; this waits up to `wait_s` for that,
        and otherwise leaves it to reap the tasks still running.
        """
        with self._lock:
            process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(wait_s)

    def _listen(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        with process.stdout:
            for line in process.stdout:
                message = json.loads(line)
                if message.get("ready"):
                    self._ready.set()
                elif "exited" in message:
                    self.exit_codes[int(message["exited"])] = int(message["code"])
                else:
                    self._replies.put(message)
        process.wait()  # EOF: the zygote has gone
