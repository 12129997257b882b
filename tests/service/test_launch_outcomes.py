"""What the scheduler makes of each way an executor's launch can go wrong: a launch outcome
(`core/errors.py`'s LaunchError family, no OSError) leaves the task queued or starting; any
OSError, the cluster link's failures included, fails it."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from dlnest_jupyter.cluster.errors import ClusterUnavailable, NodeLost, OperationFailed
from dlnest_jupyter.core.devices import FakeSource
from dlnest_jupyter.core.errors import LaunchDeferred, LaunchUnknown
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.core.tasks import TaskKind, TaskRecord, TaskState
from dlnest_jupyter.service.launch.executor import Launch
from dlnest_jupyter.service.service import DLNestService

from ..projects import write_project
from ..recording_executor import RecordingExecutor
from ..waiting import wait_until


class RaisingExecutor(RecordingExecutor):
    def __init__(self, error: Exception, adopt_error: Exception | None = None) -> None:
        super().__init__()
        self.error, self.adopt_error = error, adopt_error
        self.asked_to_adopt = 0

    def start(self, task: TaskRecord, device_ids: tuple[int, ...]) -> Launch:
        super().start(task, device_ids)
        raise self.error

    def adopt(self, task: TaskRecord, claimed_at: float) -> tuple[int, float | None] | None:
        self.asked_to_adopt += 1
        if self.adopt_error is not None:
            raise self.adopt_error
        return None


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (LaunchDeferred("another server reserved it first"), TaskState.QUEUED),
        (ClusterUnavailable("no answer from the cluster"), TaskState.QUEUED),
        (LaunchUnknown("no answer from node boxa's launch"), TaskState.STARTING),
        (OSError("the package's folder is gone"), TaskState.FAILED),
        (OperationFailed("the dlnest agent could not start on node boxa"), TaskState.FAILED),
        (NodeLost("node boxa lost"), TaskState.FAILED),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None,
)
def test_a_launch_that_went_wrong_leaves_its_task_as_the_error_says(
    tmp_path: Path, error: Exception, state: TaskState
) -> None:
    service = DLNestService(
        TaskStore(tmp_path / "q.sqlite"), FakeSource((16384,)), RaisingExecutor(error)
    )
    task = service.store.submit(TaskKind.TRAIN, {}, package_path=str(tmp_path), memory_mb=1000)
    service.tick(now=time.time())
    after = service.store.get(task.id)
    assert after.state is state
    if state is TaskState.FAILED:
        assert after.error == f"could not start the task: {error}"
    elif state is TaskState.QUEUED:  # it was claimed, then handed back
        states = [s for _, s, _ in service.store.events(task.id)]
        assert states[:3] == [TaskState.QUEUED, TaskState.STARTING, TaskState.QUEUED]


def test_a_launch_whose_node_cannot_be_asked_is_asked_again_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    executor = RaisingExecutor(LaunchUnknown("no answer"), ClusterUnavailable("no cluster now"))
    service = DLNestService(TaskStore(tmp_path / "q.sqlite"), FakeSource((16384,)), executor)
    task = service.store.submit(TaskKind.TRAIN, {}, package_path=str(tmp_path), memory_mb=1000)
    now = time.time()
    service.tick(now=now)
    service.tick(now=now + 1)
    service.tick(now=now + 2)
    assert service.store.get(task.id).state is TaskState.STARTING
    assert executor.asked_to_adopt >= 2
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # expected, not a fault


class SlowStartExecutor(RecordingExecutor):
    """A cluster's launches, as far as a reply is concerned: each waits until released."""

    answers_before_launch = True

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def start(self, task: TaskRecord, device_ids: tuple[int, ...]) -> Launch:
        assert self.release.wait(60), "the test never released the launch"
        return super().start(task, device_ids)


def test_where_launches_take_seconds_a_submission_answers_before_its_launch(
    tmp_path: Path,
) -> None:
    executor = SlowStartExecutor()
    service = DLNestService(TaskStore(tmp_path / "q.sqlite"), FakeSource((16384,)), executor)
    service.start()
    try:
        replies: list[TaskRecord] = []
        submitting = threading.Thread(
            target=lambda: replies.append(
                service.submit(TaskKind.TRAIN, config_path=write_project(tmp_path / "p"))
            )
        )
        submitting.start()
        submitting.join(30)

        # Answered while the scheduler's thread still waits on the launch: queued, or claimed.
        assert replies, "the submission waited for its launch"
        assert replies[0].state in (TaskState.QUEUED, TaskState.STARTING)
        assert executor.launches == []
        executor.release.set()
        wait_until(lambda: service.store.get(replies[0].id).state is TaskState.RUNNING)
        assert [task_id for task_id, _ in executor.launches] == [replies[0].id]
    finally:
        executor.release.set()
        service.stop()
