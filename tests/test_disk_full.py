"""A full disk said plainly: at submission, mid-run, and under the queue itself.

Each test mounts a small tmpfs (root only) so the disk really fills; nothing is simulated.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from dlnest_jupyter.core import processes
from dlnest_jupyter.core.devices import FakeSource
from dlnest_jupyter.core.package import SavePackage
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.core.tasks import TaskKind, TaskState
from dlnest_jupyter.service.api import Api
from dlnest_jupyter.service.launch.executor import LocalExecutor
from dlnest_jupyter.service.service import DLNestService

from .projects import life_cycle_source, write_project
from .recording_executor import RecordingExecutor, SleepingExecutor
from .service.conftest import wait_for


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, mounted for the test."""
    where = tmp_path / "small"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of `disk`; returns the filler, whose removal frees it all again."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    os.write(fd, b"x" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def api_over(service: DLNestService, root: Path) -> Api:
    return Api(service, root, [Path("/")])


def call(api: Api, method: str, path: str, body: object = None) -> tuple[int, dict[str, object]]:
    reply = api.call(method, path, None if body is None else json.dumps(body).encode())
    return reply.status, reply.json()


def test_a_submission_on_a_full_save_disk_is_a_507_naming_it_and_leaves_nothing(
    tmp_path: Path, small_disk: Path
) -> None:
    config = write_project(tmp_path / "proj", args={"save_root": str(small_disk / "Saves")})
    service = DLNestService(TaskStore(tmp_path / "q.sqlite"), FakeSource(()), RecordingExecutor())
    api = api_over(service, tmp_path)
    (small_disk / "Saves").mkdir()
    fill(small_disk)

    status, reply = call(
        api, "POST", "tasks", {"kind": "train", "config_path": str(config), "cpu": True}
    )

    assert status == 507, reply
    error = reply["error"]
    assert isinstance(error, dict) and error["type"] == "DiskFullError"
    assert str(small_disk / "Saves") in error["message"]
    assert "no space left on device" in error["message"]
    assert list((small_disk / "Saves").iterdir()) == []  # no half-made package
    assert service.store.list_tasks() == []


FILLS_THE_DISK_IN_EPOCH_2 = """
def AOneEpoch(self):
    self.runner.scheduler.step()
    self.epochs_seen = getattr(self, "epochs_seen", 0) + 1
    if self.epochs_seen == 2:  # someone else's job takes the rest of the disk
        import glob, json, os, time
        # Epoch 1's checkpoint is written in the background: the disk fills once it has landed
        # (filled during that write, it would rightly be lost, and this test is of a later one).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            named = glob.glob(os.path.join(self.args["save_root"], "*", "_package.json"))
            if named and json.load(open(named[0])).get("head") is not None:
                break
            time.sleep(0.01)
        fd = os.open(self.args["filler"], os.O_WRONLY | os.O_CREAT)
        for size in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"x" * size)
            except OSError:
                pass
        os.close(fd)
"""


@pytest.mark.slow
def test_a_run_that_fills_its_disk_fails_saying_so_and_its_last_checkpoint_loads(
    tmp_path: Path, small_disk: Path
) -> None:
    config = write_project(
        tmp_path / "proj",
        epochs=4,
        args={"save_root": str(small_disk), "filler": str(small_disk / "filler")},
        life_cycle=life_cycle_source(FILLS_THE_DISK_IN_EPOCH_2),
    )
    service = DLNestService(TaskStore(tmp_path / "q.sqlite"), FakeSource(()), LocalExecutor())
    task = service.submit(TaskKind.TRAIN, config_path=config, cpu=True)
    wait_for(service, lambda: service.store.get(task.id).state.terminal)

    failed = service.store.get(task.id)
    assert failed.state is TaskState.FAILED and failed.error is not None
    assert "no space left on device" in failed.error, failed.error
    assert str(failed.package_path) in failed.error  # where it was writing
    package = SavePackage(Path(str(failed.package_path)))
    head = package.state().head
    assert head is not None  # epoch 1's checkpoint: written before the disk filled
    loaded = torch.load(package.checkpoint_path(head), weights_only=True)
    assert loaded["checkpoint_id"] == head
    assert not list(package.checkpoints_dir.glob(".*.tmp"))  # the torn write was removed


def test_a_full_queue_disk_refuses_submissions_and_a_delete_stops_nothing_it_cannot_record(
    tmp_path: Path, small_disk: Path
) -> None:
    config = write_project(tmp_path / "proj")
    executor = SleepingExecutor()
    service = DLNestService(TaskStore(small_disk / "dlnest.sqlite"), FakeSource(()), executor)
    api = api_over(service, tmp_path)
    body = {"kind": "train", "config_path": str(config), "cpu": True}
    status, reply = call(api, "POST", "tasks", body)
    assert status == 201, reply
    task = service.store.get(1)
    assert task.state is TaskState.RUNNING and task.pid is not None
    filler = fill(small_disk)
    try:
        status, reply = call(api, "POST", "tasks", body)
        assert status == 507, reply
        message = reply["error"]["message"]  # type: ignore[index]
        assert str(small_disk / "dlnest.sqlite") in message and "no space left on device" in message
        assert len(list((tmp_path / "proj" / "Saves").iterdir())) == 1  # its package was removed

        status, reply = call(api, "DELETE", "tasks/1")
        assert status == 507, reply
        assert processes.is_alive(task.pid, task.pid_start_time)  # nothing was signalled
        assert call(api, "GET", "tasks/1")[1]["task"]["state"] == "running"  # type: ignore[index]
    finally:
        filler.unlink()

    status, reply = call(api, "DELETE", "tasks/1")
    assert status == 200 and reply["task"]["state"] == "cancelled"  # type: ignore[index]
    assert not processes.is_alive(task.pid, task.pid_start_time)
    service.stop()
