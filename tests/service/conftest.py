from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dlnest_jupyter.core import processes
from dlnest_jupyter.core.devices import FakeSource
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.core.tasks import TaskState
from dlnest_jupyter.service.launch.executor import LocalExecutor
from dlnest_jupyter.service.service import DLNestService

from ..projects import life_cycle_source, write_project
from ..waiting import wait_until


@pytest.fixture
def service(tmp_path: Path) -> Iterator[DLNestService]:
    """A service over a fresh store, two fake 16 GiB GPUs and real task processes."""
    service = DLNestService(
        TaskStore(tmp_path / "dlnest.sqlite"),
        FakeSource((16384, 16384)),
        LocalExecutor(stop_grace_s=5),
    )
    yield service
    for task in service.store.list_tasks([TaskState.RUNNING, TaskState.QUEUED]):
        service.delete(task.id)


def wait_for(service: DLNestService, done: Callable[[], bool], timeout_s: float = 180) -> None:
    """Tick the scheduler until `done()`; fail after `timeout_s`."""

    def ticked() -> bool:
        if done():
            return True
        service.tick()
        return False

    wait_until(ticked, timeout_s, "the scheduler", every_s=0.1)


HANGS_WITH_A_CHILD = """
def BTrain(self):
    import subprocess, time
    child = subprocess.Popen(["sleep", "600"])
    with open(self.args["marker"], "w") as handle:
        handle.write(str(child.pid))
    time.sleep(600)
"""


def hanging_project(folder: Path) -> tuple[Path, Path]:
    """A project whose training starts a `sleep` child, writes its pid to a marker, then hangs."""
    marker = folder.parent / f"{folder.name}.child.pid"
    config = write_project(
        folder, life_cycle=life_cycle_source(HANGS_WITH_A_CHILD), args={"marker": str(marker)}
    )
    return config, marker


def wait_until_group_is_gone(pgid: int, timeout_s: float = 30) -> None:
    wait_until(
        lambda: not processes.group_members(pgid), timeout_s, f"group {pgid}'s processes to end"
    )
