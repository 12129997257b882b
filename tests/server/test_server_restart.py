"""A real `jupyter server` stopped and started again while tasks run and wait: nothing is lost."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..conftest import REPO, trained_package
from ..headless import HeadlessServer
from ..projects import write_project
from ..service.conftest import hanging_project, wait_until_group_is_gone
from ..waiting import wait_until


def test_a_server_restart_keeps_the_running_task_and_the_queue(tmp_path: Path) -> None:
    hanging_config, child_marker = hanging_project(tmp_path / "hangs")
    quick_config = write_project(tmp_path / "quick", epochs=1)
    flags = [
        f"--DLNestApp.database_path={tmp_path / 'dlnest.sqlite'}",
        "--DLNestApp.fake_gpus=1x16384",
        "--DLNestApp.tick_interval_s=0.2",
    ]
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}

    def server() -> HeadlessServer:
        return HeadlessServer(tmp_path, tmp_path / "server.log", flags, env)

    def submit(on: HeadlessServer, config: Path) -> dict[str, Any]:
        body = {"kind": "train", "config_path": str(config), "memory_mb": 10000}
        task: dict[str, Any] = on.call("POST", "dlnest/api/tasks", body)["task"]
        return task

    with server() as first:
        running, queued = submit(first, hanging_config), submit(first, quick_config)
        assert (running["state"], queued["state"]) == ("running", "queued")  # 10 + 10 GiB > 16
        wait_until(child_marker.exists, 180, "the task's child", every_s=0.2)
    task_group = os.getpgid(int(child_marker.read_text()))  # the server is gone; its task is not

    with server() as second:
        tasks = {t["id"]: t for t in second.call("GET", "dlnest/api/tasks")["tasks"]}
        assert (tasks[running["id"]]["state"], tasks[running["id"]]["devices"]) == ("running", [0])
        assert tasks[queued["id"]]["state"] == "queued"

        second.call("DELETE", f"dlnest/api/tasks/{running['id']}")
        wait_until_group_is_gone(task_group)  # re-adopted: its whole group is stopped
        done = wait_until(lambda: _ended(second, queued["id"]), 180, every_s=0.2)
        cancelled = second.call("GET", f"dlnest/api/tasks/{running['id']}")["task"]

    assert done["state"] == "succeeded", done
    assert cancelled["state"] == "cancelled"


def test_what_a_run_used_is_learned_over_rest_and_still_known_after_a_restart(
    tmp_path: Path,
) -> None:
    config = write_project(tmp_path / "p", epochs=1, args={"fake_gpu_memory_mb": 2000})
    flags = [
        f"--DLNestApp.database_path={tmp_path / 'dlnest.sqlite'}",
        "--DLNestApp.fake_gpus=1x16384",
        "--DLNestApp.tick_interval_s=0.2",
    ]
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    body = {"kind": "train", "config_path": str(config)}

    with HeadlessServer(tmp_path, tmp_path / "server.log", flags, env) as first:
        taught = first.call("POST", "dlnest/api/tasks", body)["task"]
        assert taught["memory_source"] == "default"
        done = wait_until(lambda: _ended(first, taught["id"]), 180, every_s=0.2)
        assert (done["state"], done["peak_memory_mb"]) == ("succeeded", 2000)

    with HeadlessServer(tmp_path, tmp_path / "server.log", flags, env) as second:
        learned = second.call("POST", "dlnest/api/tasks", body)["task"]

    assert learned["memory_source"] == "learned"
    assert (learned["memory_learned_mb"], learned["memory_learned_runs"]) == (2000 + 200 + 256, 1)
    assert learned["reserved_mb"] == 2456  # placed at once: what its job used, not 90% of the card


def test_a_server_restart_reports_its_analyzer_ended_and_frees_the_device(tmp_path: Path) -> None:
    package = trained_package(tmp_path, {"ident": "def experience(self):\n    return 1\n"})
    flags, env = analyzer_server_options(tmp_path, tick_interval_s=0.2)

    def server() -> HeadlessServer:
        return HeadlessServer(tmp_path, tmp_path / "server.log", flags, env)

    with server() as first:
        body = {"kind": "analyze", "record_path": str(package), "memory_mb": 6000}
        analyzer = first.call("POST", "dlnest/api/tasks", body)["task"]
        wait_until(lambda: _analyzer_ready(first, analyzer["id"]), 180, every_s=0.2)
        assert analyzer["kernel_id"] in [k["id"] for k in first.call("GET", "api/kernels")]

    with server() as second:  # the first server shut its kernels down on its way out
        ended = wait_until(lambda: _ended(second, analyzer["id"]), 180, every_s=0.2)
        devices = second.call("GET", "dlnest/api/devices")["devices"]
        kernels = second.call("GET", "api/kernels")

    assert ended["state"] == "failed"
    assert ended["error"] == "its analyzer kernel ended with the Jupyter server that ran it"
    assert (devices[0]["memory_reserved_mb"], devices[0]["task_ids"]) == (0, [])
    assert kernels == []


def analyzer_server_options(
    tmp_path: Path, tick_interval_s: float
) -> tuple[list[str], dict[str, str]]:
    """Flags and environment of a server over `tmp_path`'s queue, one fake card, and the
    dlnest-analyzer kernelspec: what servers that load analyzers in these tests share."""
    flags = [
        f"--DLNestApp.database_path={tmp_path / 'dlnest.sqlite'}",
        "--DLNestApp.fake_gpus=1x16384",
        f"--DLNestApp.tick_interval_s={tick_interval_s}",
    ]
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_PATH": str(REPO / "labextension_config"),  # the dlnest-analyzer kernelspec
    }
    return flags, env


def _analyzer_ready(server: HeadlessServer, task_id: int) -> bool:
    task: dict[str, Any] = server.call("GET", f"dlnest/api/tasks/{task_id}")["task"]
    assert task["state"] == "running", task
    return bool(task["progress"].get("analyzer") == "ready")


def _ended(server: HeadlessServer, task_id: int) -> dict[str, Any] | None:
    task: dict[str, Any] = server.call("GET", f"dlnest/api/tasks/{task_id}")["task"]
    return task if task["state"] in ("succeeded", "failed", "cancelled") else None
