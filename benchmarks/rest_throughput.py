"""REST throughput against a real `jupyter server` with the extension.

- task submissions per second over `POST /dlnest/api/tasks` (each checks the config, copies a
  save package and runs a placement pass; devices are disabled so nothing starts), against
  `GET /api/status` requests per second, the server's own cheapest route, in alternating rounds
  of the same run. Both go through the client `%dlnest` uses (one kept-alive connection); the
  same pair with a new connection per request (urllib) is printed too;
- latency of `GET /dlnest/api/tasks` with 10,000 tasks in the store, against `GET /api/status`.
Goal: 200 submissions per second, the list under 150 ms.

    .venv/bin/python benchmarks/rest_throughput.py [--submissions N] [--tasks N] [--dir DIR]

Each submission creates a package folder with a handful of files, so the rate follows the
filesystem's cost of creating files. The run measures that cost too, in the same alternating
rounds: making the same folders and files with plain `os` calls. `--dir /dev/shm` (tmpfs) shows
the software's own cost.

On ext4 without a journal (this project's VMs), creating a file or folder is 10-30 times slower
for one to five minutes after thousands of files were deleted: the kernel will not reuse a
recently freed inode, and checks each one it passes (`recently_deleted` in fs/ext4/ialloc.c: 60%
of a file-making loop's samples in `perf record`). A test run, or the previous run of this
benchmark, leaves such a window; the plain-files rate shows when a run falls in one.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dlnest_jupyter.client.client import Client, HttpTransport
from dlnest_jupyter.core.store import TaskStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.headless import HeadlessServer
from tests.projects import write_project


def interleaved_rates(actions: list[Any], count: int, rounds: int = 10) -> list[float]:
    """Calls per second of each action, run in alternating rounds.

    This VM's speed drifts by half within a minute: alternating rounds lets the baseline and
    the measured route see the same machine, so their ratio means something.
    """
    spent_s = [0.0] * len(actions)
    per_round = max(1, count // rounds)
    for _ in range(rounds):
        for i, action in enumerate(actions):
            start = time.perf_counter()
            for _ in range(per_round):
                action()
            spent_s[i] += time.perf_counter() - start
    return [per_round * rounds / spent for spent in spent_s]


def plain_file_maker(package: Path, parent: Path) -> Any:
    """An action that makes a copy of `package`'s folders and files with plain `os` calls.

    It is the least work that leaves the same inodes on disk: the submission's baseline for the
    filesystem's part of its cost.
    """
    folders: list[str] = []
    files: list[tuple[str, bytes]] = []
    for folder, subfolders, names in os.walk(package):  # top-down: parents before children
        inside = os.path.relpath(folder, package)
        folders += [os.path.normpath(os.path.join(inside, name)) for name in subfolders]
        files += [
            (os.path.normpath(os.path.join(inside, name)), Path(folder, name).read_bytes())
            for name in names
        ]
    parent.mkdir()
    numbers = itertools.count()

    def make() -> None:
        top = parent / str(next(numbers))
        os.mkdir(top)
        for inside in folders:
            os.mkdir(top / inside)
        for inside, data in files:
            writer = os.open(top / inside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(writer, data)
            os.close(writer)

    return make


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
    parser.add_argument(
        "--dir", help="where the project and the queue live (default: the temp dir)"
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=options.dir) as temp:
        root = Path(temp)
        write_project(root / "proj", epochs=1)
        database = root / "dlnest.sqlite"
        flags = [f"--DLNestApp.database_path={database}", "--DLNestApp.fake_gpus=2x16384"]
        env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(root / "runtime")}
        with HeadlessServer(
            root, root / "server.log", [*flags, "--DLNestApp.zygote=False"], env
        ) as server:
            transport = HttpTransport(server.url, server.token)
            client = Client(transport)  # what %dlnest and the dashboard use
            client.update_settings({"devices": []})
            headers = {"Authorization": f"token {server.token}"}
            submit = {"kind": "train", "config_path": "proj/root_config.json", "memory_mb": 1000}
            first = client.submit(submit)  # warm: the first submission parses the project's code
            make_files = plain_file_maker(Path(first["package_path"]), root / "plain_files")
            status_rate, submit_rate, files_rate = interleaved_rates(
                [
                    lambda: transport.connections("GET", server.url + "api/status", headers, None),
                    lambda: client.submit(submit),
                    make_files,
                ],
                options.submissions,
            )
            # The same with a new connection per request, as a client without keep-alive sees it.
            fresh_status_rate, fresh_submit_rate = interleaved_rates(
                [
                    lambda: server.call("GET", "api/status"),
                    lambda: server.call("POST", "dlnest/api/tasks", submit),
                ],
                100,
            )

            store = TaskStore(database)
            for i in range(options.tasks - options.submissions - 101):
                store.submit("train", {"config_path": f"/p/{i}.json"}, memory_mb=1000)
            count = len(server.call("GET", "dlnest/api/tasks")["tasks"])
            list_s = median_s(lambda: server.call("GET", "dlnest/api/tasks"), 5)
            status_s = median_s(lambda: server.call("GET", "api/status"), 5)
    print(f"submissions: {submit_rate:.0f}/s (GET /api/status: {status_rate:.0f}/s)")
    print(
        f"  making a package's folders and files with plain os calls: {files_rate:.0f}/s;"
        f" a submission less that: {1e3 / submit_rate - 1e3 / files_rate:.1f} ms"
    )
    print(
        f"  with a new connection per request: {fresh_submit_rate:.0f}/s"
        f" (GET /api/status: {fresh_status_rate:.0f}/s)"
    )
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
                "plain_files_per_s": round(files_rate, 1),
                "ratio_vs_plain_files": round(submit_rate / files_rate, 4),
                "list_ms": round(list_s * 1e3, 1),
                "status_ms": round(status_s * 1e3, 2),
                "list_ratio_vs_status": round(list_s / status_s, 1),
                "tasks_listed": count,
                "submissions_per_s_new_connection_each": round(fresh_submit_rate, 1),
                "status_per_s_new_connection_each": round(fresh_status_rate, 1),
                "dir": options.dir or tempfile.gettempdir(),
            }
        )
    )


if __name__ == "__main__":
    main()
