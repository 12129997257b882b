"""One scheduler per queue (the lease), claims before launches, and what a follower does."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dlnest_jupyter.core.devices import FakeSource, InventorySnapshot
from dlnest_jupyter.core.errors import LaunchUnknown
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.core.tasks import TaskKind, TaskRecord, TaskState
from dlnest_jupyter.service.launch.executor import LocalExecutor
from dlnest_jupyter.service.leadership import Leadership
from dlnest_jupyter.service.scheduler import LAUNCH_GRACE_S
from dlnest_jupyter.service.service import DLNestService

from ..conftest import new_package
from ..projects import write_project
from ..recording_executor import RecordingExecutor
from ..waiting import wait_until


class CountingStore(TaskStore):
    """The real store, counting how its claims went."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.claims: list[tuple[int, bool]] = []

    def claim(self, task_id: int, *args: Any, **kwargs: Any) -> TaskRecord | None:
        claimed = super().claim(task_id, *args, **kwargs)
        self.claims.append((task_id, claimed is not None))
        return claimed


def service_on(database: Path, source: FakeSource | None = None) -> DLNestService:
    """A service with its own connection to the queue, as another server would have."""
    return DLNestService(
        CountingStore(database), source or FakeSource((16384, 16384)), RecordingExecutor()
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_project(tmp_path / "proj", epochs=1)


def launched(*services: DLNestService) -> list[int]:
    ids = []
    for service in services:
        assert isinstance(service.runners.executor, RecordingExecutor)
        ids += [task_id for task_id, _ in service.runners.executor.launches]
    return sorted(ids)


def test_only_the_lease_holder_launches_and_a_follower_s_submission_wakes_it(
    tmp_path: Path, config: Path
) -> None:
    database = tmp_path / "dlnest.sqlite"
    leader, follower = service_on(database), service_on(database)
    leader.tick()
    leader.loop.tick_interval_s = 3600  # only a write by another service can wake it now
    leader.start()
    try:
        queued = follower.submit(TaskKind.TRAIN, config_path=config, cpu=True)

        # The follower launches nothing itself (its reply may already see the leader's launch).
        wait_until(
            lambda: follower.queries.task(queued.id).state is TaskState.RUNNING, 30, every_s=0.02
        )
        assert launched(leader) == [queued.id] and launched(follower) == []
        status = follower.queries.scheduler()
        assert status["leader"]["id"] == leader.leadership.id
        assert status["this_service"]["leading"] is False
        assert leader.queries.scheduler()["this_service"]["leading"] is True
    finally:
        leader.stop()

    # The leader stepped down: the follower's next pass takes the queue over.
    second = follower.submit(TaskKind.TRAIN, config_path=config, cpu=True)
    assert second.state is TaskState.RUNNING and launched(follower) == [second.id]
    assert follower.queries.scheduler()["leader"]["id"] == follower.leadership.id


class _Barrier(FakeSource):
    """Fake GPUs whose snapshot waits for the other scheduler: both plan from the same state."""

    def __init__(self, barrier: threading.Barrier) -> None:
        super().__init__((16384,))
        self.barrier = barrier

    def snapshot(self) -> InventorySnapshot:
        self.barrier.wait(timeout=30)
        return super().snapshot()


class _Usurper(Leadership):
    """A scheduler that believes it leads without the lease: two schedulers racing by mistake."""

    def lead(self) -> bool:
        self.presence.enter()
        return True


def test_two_schedulers_planning_the_same_tasks_at_once_start_each_once(
    tmp_path: Path, config: Path
) -> None:
    database = tmp_path / "dlnest.sqlite"
    queue = TaskStore(database)
    ids = [queue.submit(TaskKind.TRAIN, {"cpu": True}).id for _ in range(20)]
    barrier = threading.Barrier(2)
    racers = [service_on(database, _Barrier(barrier)) for _ in range(2)]
    for racer in racers:
        racer.leadership = racer.loop.scheduler.leadership = _Usurper(racer.store)

    threads = [threading.Thread(target=racer.tick) for racer in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert launched(*racers) == ids  # every task once: a lost claim launched nothing
    assert all(t.state is TaskState.RUNNING for t in racers[0].store.list_tasks())
    claims = [claim for racer in racers for claim in racer.store.claims]  # type: ignore[attr-defined]
    assert sorted(task_id for task_id, _ in claims) == sorted(ids * 2)  # both planned every task
    assert sorted(task_id for task_id, won in claims if won) == ids


def test_a_task_whose_claimant_died_before_launching_it_is_queued_again(
    tmp_path: Path, config: Path
) -> None:
    service = service_on(tmp_path / "dlnest.sqlite")
    task = service.store.submit(TaskKind.TRAIN, {"cpu": True}, package_path=str(tmp_path))
    claimed_at = time.time()
    assert service.store.claim(task.id, {-1: 0}, "a-service-that-died", now=claimed_at)

    service.tick(now=claimed_at + 1)  # it may still be forking what it launched: wait
    assert service.store.get(task.id).state is TaskState.STARTING and launched(service) == []
    service.tick(now=claimed_at + LAUNCH_GRACE_S)  # no process, no launch record: nothing ran

    events = [state for _, state, _ in service.store.events(task.id)]
    assert events == [
        TaskState.QUEUED,
        TaskState.STARTING,
        TaskState.QUEUED,
        TaskState.STARTING,
        TaskState.RUNNING,
    ]
    assert launched(service) == [task.id]


@pytest.fixture
def two_services(tmp_path: Path) -> Iterator[tuple[DLNestService, DLNestService]]:
    database = tmp_path / "dlnest.sqlite"
    services = service_on(database), service_on(database)
    yield services
    for service in services:
        service.stop()


def test_a_delete_sent_to_a_follower_cancels_first_and_the_task_stays_cancelled(
    two_services: tuple[DLNestService, DLNestService], config: Path
) -> None:
    leader, follower = two_services
    task = leader.submit(TaskKind.TRAIN, config_path=config, cpu=True)
    assert task.state is TaskState.RUNNING

    cancelled = follower.delete(task.id)

    assert cancelled.state is TaskState.CANCELLED
    # Recorded first, then signalled: any service of the user may signal a training process.
    assert follower.runners.executor.stopped == [task.id]  # type: ignore[attr-defined]
    leader.runners.executor.finish(task.id, 143)  # type: ignore[attr-defined]  # it ends, by SIGTERM
    leader.tick()
    assert (
        leader.queries.task(task.id).state is TaskState.CANCELLED
    )  # not "failed: killed by SIGTERM"


@pytest.mark.slow
def test_a_task_its_dead_claimant_launched_and_that_ended_meanwhile_is_adopted_not_rerun(
    tmp_path: Path, config: Path
) -> None:
    package = new_package(config)
    service = DLNestService(TaskStore(tmp_path / "dlnest.sqlite"), FakeSource(()), LocalExecutor())
    task = service.store.submit(TaskKind.TRAIN, {"cpu": True}, package_path=str(package.path))
    assert service.store.claim(task.id, {-1: 0}, "a-service-that-died", now=time.time())
    # What the dead scheduler launched ran to its end before anyone looked.
    request = {"package_path": str(package.path), "kind": "train", "device_ids": [-1]}
    finished = subprocess.run(
        [sys.executable, "-m", "dlnest_jupyter.runtime.task_entry", json.dumps(request)],
        cwd=package.path,
        capture_output=True,
    )
    assert finished.returncode == 0, finished.stderr

    service.tick()  # adopted from its launch record...
    service.tick()  # ...and reaped: its recorded exit status, not a second run

    done = service.store.get(task.id)
    assert (done.state, done.exit_code) == (TaskState.SUCCEEDED, 0)
    assert len(package.launches()) == 1


class AnswerLostExecutor(RecordingExecutor):
    """A cluster's launch whose answer never came: `started` says whether it ran anyway."""

    def __init__(self, started: bool) -> None:
        super().__init__()
        self.started = started
        self.asked_to_adopt = 0

    def start(self, task: TaskRecord, device_ids: tuple[int, ...]) -> Any:
        super().start(task, device_ids)
        raise LaunchUnknown("no answer from node boxa's launch")

    def adopt(self, task: TaskRecord, claimed_at: float) -> tuple[int, float | None] | None:
        self.asked_to_adopt += 1
        return (4_100_000 + task.id, None) if self.started else None


@pytest.mark.parametrize("started", [True, False], ids=["it-ran", "it-did-not"])
def test_a_launch_whose_answer_was_lost_is_adopted_or_queued_again_never_rerun_blindly(
    tmp_path: Path, started: bool
) -> None:
    executor = AnswerLostExecutor(started)
    service = DLNestService(TaskStore(tmp_path / "q.sqlite"), FakeSource((16384,)), executor)
    task = service.store.submit(TaskKind.TRAIN, {}, package_path=str(tmp_path), memory_mb=1000)
    now = time.time()
    service.tick(now=now)
    assert service.store.get(task.id).state is TaskState.STARTING  # not failed, not queued

    service.tick(now=now + 1)
    if started:
        again = service.store.get(task.id)
        assert again.state is TaskState.RUNNING and again.pid == 4_100_000 + task.id
        assert len(executor.launches) == 1
    else:
        assert service.store.get(task.id).state is TaskState.STARTING  # maybe still starting
        service.tick(now=now + LAUNCH_GRACE_S)  # nothing ran: queued again, and launched anew
        states = [state for _, state, _ in service.store.events(task.id)]
        assert states[:3] == [TaskState.QUEUED, TaskState.STARTING, TaskState.QUEUED]
        assert len(executor.launches) == 2
    assert executor.asked_to_adopt >= 1
