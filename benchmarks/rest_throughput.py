"""REST throughput against a real `jupyter server` with the extension.

- task submissions per second over `POST /dlnest/api/tasks` (each checks the config, copies a
  save package and runs a placement pass; devices are disabled so nothing starts), against
  `GET /api/status` requests per second, the server's own cheapest route, in the same run;
- latency of `GET /dlnest/api/tasks` with 10,000 tasks in the store, against `GET /api/status`.
Goal: 200 submissions per second, the list under 150 ms.

    .venv/bin/python benchmarks/rest_throughput.py [--submissions N] [--tasks N]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from dlnest_jupyter.core.store import TaskStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.projects import write_project


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def request(url: str, token: str, method: str = "GET", body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(req, timeout=60) as response:
        return json.loads(response.read())


def per_second(action: Any, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        action()
    return count / (time.perf_counter() - start)


def median_s(action: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=10_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        root, port, token = Path(temp), free_port(), secrets.token_hex(16)
        write_project(root / "proj", epochs=1)
        database = root / "dlnest.sqlite"
        server = subprocess.Popen(
            [
                sys.executable, "-m", "jupyter_server", "--allow-root", "--no-browser", f"--port={port}",
                f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
                f"--DLNestApp.database_path={database}", "--DLNestApp.fake_gpus=2x16384", "--DLNestApp.zygote=False",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "JUPYTER_RUNTIME_DIR": str(root / "runtime")},
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    request(base + "api/status", token)
                    break
                except OSError:
                    assert time.monotonic() < deadline and server.poll() is None, (
                        "the server did not start"
                    )
                    time.sleep(0.2)
            request(base + "dlnest/api/settings", token, "PUT", {"devices": []})
            status_rate = per_second(
                lambda: request(base + "api/status", token), options.submissions
            )
            submit = {"kind": "train", "config_path": "proj/root_config.json", "memory_mb": 1000}
            submit_rate = per_second(
                lambda: request(base + "dlnest/api/tasks", token, "POST", submit),
                options.submissions,
            )

            store = TaskStore(database)
            for i in range(options.tasks - options.submissions):
                store.submit("train", {"config_path": f"/p/{i}.json"}, memory_mb=1000)
            count = len(request(base + "dlnest/api/tasks", token)["tasks"])
            list_s = median_s(lambda: request(base + "dlnest/api/tasks", token), 5)
            status_s = median_s(lambda: request(base + "api/status", token), 5)
        finally:
            server.terminate()
            server.wait(30)
    print(f"submissions: {submit_rate:.0f}/s (GET /api/status: {status_rate:.0f}/s)")
    print(
        f"GET tasks with {count} tasks: {list_s * 1e3:.0f} ms (GET /api/status: {status_s * 1e3:.1f} ms)"
    )
    print(
        json.dumps(
            {
                "metric": "rest_submissions_per_s",
                "value": round(submit_rate, 1),
                "baseline": round(status_rate, 1),
                "ratio": round(submit_rate / status_rate, 4),
                "goal": ">= 200 submissions/s, GET tasks with 10,000 tasks < 150 ms",
                "met": submit_rate >= 200 and list_s < 0.150,
                "list_ms": round(list_s * 1e3, 1),
                "status_ms": round(status_s * 1e3, 2),
                "list_ratio_vs_status": round(list_s / status_s, 1),
                "tasks_listed": count,
            }
        )
    )


if __name__ == "__main__":
    main()
