"""Two real Jupyter servers on one queue (JupyterLab opened twice): one schedules, nothing runs
twice, and when the scheduling one is killed the other takes over and finishes everything."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from dlnest_jupyter.core.package import SavePackage

from ..conftest import trained_package
from ..headless import HeadlessServer
from ..projects import write_project
from .test_server_restart import _analyzer_ready, analyzer_server_options, wait_until

TASKS = 50


def test_two_servers_on_one_queue_launch_every_task_once_and_survive_the_leader_s_death(
    tmp_path: Path,
) -> None:
    package = trained_package(tmp_path, {"ident": "def experience(self):\n    return 1\n"})
    config = write_project(tmp_path / "sweep", epochs=1)
    flags, env = analyzer_server_options(tmp_path, tick_interval_s=0.05)
    first = HeadlessServer(tmp_path, tmp_path / "first.log", flags, env)
    second = HeadlessServer(tmp_path, tmp_path / "second.log", flags, env)
    with first, second:
        leader = first.call("GET", "dlnest/api/scheduler")["scheduler"]
        assert leader["this_service"]["leading"], "the first server up takes the lease"
        follower = second.call("GET", "dlnest/api/scheduler")["scheduler"]
        assert not follower["this_service"]["leading"]
        assert follower["leader"]["id"] == leader["this_service"]["id"]
        second.call("PUT", "dlnest/api/settings", {"max_tasks_per_device": 4})  # via the follower

        body = {"kind": "analyze", "record_path": str(package), "memory_mb": 6000}
        analyzer = first.call("POST", "dlnest/api/tasks", body)["task"]
        wait_until(lambda: _analyzer_ready(first, analyzer["id"]))
        wait_until(lambda: _analyzer_ready(second, analyzer["id"]))  # B shows what A recorded

        submitted: list[dict[str, Any]] = []

        def submit(to: HeadlessServer, count: int) -> None:
            train = {"kind": "train", "config_path": str(config), "cpu": True}
            for _ in range(count):
                submitted.append(to.call("POST", "dlnest/api/tasks", train)["task"])

        submitters = [
            threading.Thread(target=submit, args=(server, TASKS // 2)) for server in (first, second)
        ]
        for thread in submitters:
            thread.start()
        for thread in submitters:
            thread.join(300)
        assert len(submitted) == TASKS
        wait_until(lambda: _count(second, "succeeded") >= 8, timeout_s=300)

        # Still A's alone: B neither failed it nor started a kernel of its own for it.
        assert _analyzer_ready(first, analyzer["id"])
        assert (
            first.call("GET", f"dlnest/api/tasks/{analyzer['id']}")["task"]["progress"]["loads"]
            == 1
        )
        assert [k["id"] for k in first.call("GET", "api/kernels")] == [analyzer["kernel_id"]]
        assert second.call("GET", "api/kernels") == []

        first.kill()  # SIGKILL: no shutdown hook, tasks mid-run, maybe one mid-launch
        wait_until(lambda: _count(second, "succeeded", "failed", "cancelled") == TASKS + 1, 600)
        tasks = {t["id"]: t for t in second.call("GET", "dlnest/api/tasks")["tasks"]}
        taken_over = second.call("GET", "dlnest/api/scheduler")["scheduler"]

    trained = [tasks[t["id"]] for t in submitted]
    assert [t["state"] for t in trained] == ["succeeded"] * TASKS, [
        (t["id"], t["state"], t["error"]) for t in trained if t["state"] != "succeeded"
    ]
    launches = {
        t["package_path"]: len(SavePackage(Path(t["package_path"])).launches()) for t in trained
    }
    assert len(launches) == TASKS and set(launches.values()) == {1}  # each launched exactly once
    ended = tasks[analyzer["id"]]
    assert (ended["state"], ended["error"]) == (
        "failed",
        "its analyzer kernel ended with the Jupyter server that ran it",
    )
    assert (
        taken_over["this_service"]["leading"]
        and taken_over["leader"]["id"] != leader["this_service"]["id"]
    )


def _count(server: HeadlessServer, *states: str) -> int:
    return sum(t["state"] in states for t in server.call("GET", "dlnest/api/tasks")["tasks"])
