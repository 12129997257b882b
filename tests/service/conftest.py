from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dlnest_jupyter.core.devices import FakeSource
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.core.tasks import TaskState
from dlnest_jupyter.service.executor import LocalExecutor
from dlnest_jupyter.service.service import DLNestService


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
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "timed out waiting for the scheduler"
        service.tick()
        time.sleep(0.1)
