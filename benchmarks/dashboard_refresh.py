"""One dashboard refresh against a real `jupyter server` with 1,000 tasks and one running task.

- value: the server's CPU time per refresh (user + system time of the server process, read from
  /proc, over many refreshes), with nothing changed and with the running task progressing (its
  `_progress.json` rewritten and one metric row appended before each refresh);
- baseline: the server's CPU time per `GET /api/status`, its own cheapest route, in the same run;
- also: bytes on the wire per refresh (request and reply, headers included) and the kernel side's
  CPU time per refresh (`Dashboard.refresh()` in this process; widgets outside a kernel send no
  comm messages, so the frontend's share is not in it).
Goals: nothing changed: at most 5 ms of server time and 2 kB per refresh; one task progressing:
at most 10 ms and 5 kB; the kernel side at most 10 ms of CPU. The dashboard asks for a tab's own
data (devices, output, metric rows) only while that tab is in view: the goals are judged with the
Queue tab in view, and the Metrics tab's figures (one more request per run drawn) are printed too,
against the progressing goal.

The running task is "run" by the recording executor of the tests (no process), so the figures
are the dashboard's and the API's alone.

    .venv/bin/python benchmarks/dashboard_refresh.py [--tasks N] [--refreshes N]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dlnest_jupyter.client.client import Client, HttpTransport
from dlnest_jupyter.client.transport import KeepAliveTransport
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.dashboard import Dashboard

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.headless import HeadlessServer  # noqa: E402  # the repository's harness
from tests.projects import write_project  # noqa: E402


class CountingTransport(KeepAliveTransport):
    """The client's HTTP transport, counting every byte it sends and receives."""

    bytes = 0
    last_headers = b""

    def _exchange(  # type: ignore[override]
        self,
        key: Any,
        connection: http.client.HTTPConnection,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes | None,
    ) -> tuple[int, bytes]:
        sent = len(f"{method} {target} HTTP/1.1\r\n") + len(body or b"")
        sent += sum(len(f"{k}: {v}\r\n") for k, v in headers.items()) + 60  # Host, lengths
        status, data = super()._exchange(key, connection, method, target, headers, body)
        received = len(data) + len(self.last_headers) + 20
        self.bytes += sent + received
        return status, data


def patch_headers() -> None:
    """Keep each reply's headers where CountingTransport can measure them."""
    original = http.client.HTTPResponse.begin

    def begin(response: http.client.HTTPResponse) -> None:
        original(response)
        CountingTransport.last_headers = bytes(response.headers)

    http.client.HTTPResponse.begin = begin  # type: ignore[method-assign]


def server_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_call(action: Callable[[], Any], pid: int, repeats: int) -> tuple[float, float]:
    """(server CPU seconds, this process's CPU seconds) per call, over `repeats` calls."""
    server_before, mine_before = server_cpu_s(pid), time.process_time()
    for _ in range(repeats):
        action()
    return (
        (server_cpu_s(pid) - server_before) / repeats,
        (time.process_time() - mine_before) / repeats,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--refreshes", type=int, default=300)
    options = parser.parse_args()
    patch_headers()
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        write_project(root / "proj", epochs=100)
        database = root / "dlnest.sqlite"
        store = TaskStore(database)
        for i in range(options.tasks - 1):  # more memory than a card has: they stay queued
            store.submit("train", {"config_path": f"/p/{i}.json"}, memory_mb=20_000)
        store.close()
        flags = [
            f"--DLNestApp.database_path={database}",
            "--DLNestApp.fake_gpus=2x16384",
            "--DLNestApp.zygote=False",
            "--DLNestApp.executor_class=tests.recording_executor.RecordingExecutor",
        ]
        env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(root / "runtime"), "PYTHONPATH": str(REPO)}
        with HeadlessServer(root, root / "server.log", flags, env) as server:
            assert server._process is not None
            pid = server._process.pid
            wire = CountingTransport()
            client = Client(HttpTransport(server.url, server.token, wire))
            running = client.submit({"kind": "train", "config_path": "proj/root_config.json"})
            package = Path(running["package_path"])
            board = Dashboard(client, start=False)
            board.queue_panel.selected.value = running["id"]
            board.metrics_panel.runs.value = (running["id"],)
            for _ in range(5):  # warm: the first refreshes fetch everything once
                board.refresh()

            status_cpu, _ = per_call(
                lambda: wire("GET", server.url + "api/status", {}, None), pid, options.refreshes
            )
            wire.bytes = 0
            idle_cpu, idle_kernel = per_call(board.refresh, pid, options.refreshes)
            idle_bytes = wire.bytes / options.refreshes

            epoch = iter(range(1, 10**6))

            def progress_then_refresh() -> None:
                number = next(epoch)
                (package / "_progress.json").write_text(
                    json.dumps({"epoch": number, "iter": 3, "steps_per_s": 50.0, "epochs": 100})
                )
                with (package / "_metrics.jsonl").open("a") as handle:
                    handle.write(json.dumps({"epoch": number, "loss": 1 / number}) + "\n")
                with (package / "_output.txt").open("a") as handle:
                    handle.write(f"epoch {number} loss {1 / number:.4f}\n")
                board.refresh()

            wire.bytes = 0
            busy_cpu, busy_kernel = per_call(progress_then_refresh, pid, options.refreshes)
            busy_bytes = wire.bytes / options.refreshes
            board.tabs.selected_index = 4  # the Metrics tab: the curve's new rows come too
            board.refresh()
            wire.bytes = 0
            chart_cpu, chart_kernel = per_call(progress_then_refresh, pid, options.refreshes)
            chart_bytes = wire.bytes / options.refreshes
            assert "disconnected" not in board.status.value, board.status.value
            shown = len(board.metrics_panel.rows[running["id"]])
            board.close()

    kernel_s = max(idle_kernel, busy_kernel, chart_kernel)
    met = (
        (idle_cpu <= 0.005 and idle_bytes <= 2000 and busy_cpu <= 0.010 and busy_bytes <= 5000)
        and chart_cpu <= 0.010
        and chart_bytes <= 5000
        and kernel_s <= 0.010
    )
    print(f"GET /api/status: {status_cpu * 1e3:.2f} ms of server CPU")
    print(
        f"refresh, nothing changed: {idle_cpu * 1e3:.2f} ms of server CPU, {idle_bytes:.0f} B,"
        f" {idle_kernel * 1e3:.2f} ms of kernel CPU"
    )
    print(
        f"refresh, one task progressing: {busy_cpu * 1e3:.2f} ms of server CPU, {busy_bytes:.0f} B,"
        f" {busy_kernel * 1e3:.2f} ms of kernel CPU"
    )
    print(
        f"  the same with the Metrics tab in view: {chart_cpu * 1e3:.2f} ms of server CPU,"
        f" {chart_bytes:.0f} B, {chart_kernel * 1e3:.2f} ms of kernel CPU ({shown} rows drawn)"
    )
    print(
        json.dumps(
            {
                "metric": "dashboard_refresh_server_ms",
                "value": round(idle_cpu * 1e3, 3),
                "baseline": round(status_cpu * 1e3, 3),
                "ratio": round(idle_cpu / status_cpu, 2) if status_cpu else None,
                "progressing_server_ms": round(busy_cpu * 1e3, 3),
                "idle_bytes": round(idle_bytes),
                "progressing_bytes": round(busy_bytes),
                "metrics_tab_server_ms": round(chart_cpu * 1e3, 3),
                "metrics_tab_bytes": round(chart_bytes),
                "kernel_ms": round(kernel_s * 1e3, 3),
                "tasks": options.tasks,
                "goal": "idle <= 5 ms and 2 kB, progressing <= 10 ms and 5 kB, kernel <= 10 ms",
                "met": met,
            }
        )
    )


if __name__ == "__main__":
    main()
