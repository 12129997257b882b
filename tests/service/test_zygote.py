from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlnest_jupyter.core.devices import FakeSource
from dlnest_jupyter.core.package import SavePackage
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.core.tasks import TaskKind, TaskState
from dlnest_jupyter.service.launch.executor import LocalExecutor
from dlnest_jupyter.service.service import DLNestService

from ..projects import failing_dataset, write_project
from ..waiting import wait_until
from .conftest import hanging_project, wait_for, wait_until_group_is_gone


@pytest.fixture
def zygote_executor() -> LocalExecutor:
    executor = LocalExecutor(zygote=True, stop_grace_s=5)
    assert executor.zygote is not None and executor.zygote.wait_ready(120)
    return executor


@pytest.fixture
def zygote_service(tmp_path: Path, zygote_executor: LocalExecutor) -> Iterator[DLNestService]:
    service = DLNestService(
        TaskStore(tmp_path / "dlnest.sqlite"), FakeSource((16384,)), zygote_executor
    )
    yield service
    for task in service.store.list_tasks([TaskState.RUNNING]):
        service.delete(task.id)
    service.stop()


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def test_tasks_forked_from_the_zygote_run_report_and_fail_like_any_other(
    zygote_service: DLNestService, tmp_path: Path
) -> None:
    broken = failing_dataset("RuntimeError('no data')")
    good = zygote_service.submit(
        TaskKind.TRAIN, config_path=write_project(tmp_path / "good", epochs=2), memory_mb=1000
    )
    bad = zygote_service.submit(
        TaskKind.TRAIN, config_path=write_project(tmp_path / "bad", dataset=broken), cpu=True
    )

    # Each submission placed its task at once; both are the zygote's children, not ours.
    assert good.state is bad.state is TaskState.RUNNING
    assert all(t.pid is not None and parent_of(t.pid) != os.getpid() for t in (good, bad))
    wait_for(
        zygote_service,
        lambda: all(zygote_service.queries.task(t).state.terminal for t in (good.id, bad.id)),
    )
    succeeded, failed = zygote_service.queries.task(good.id), zygote_service.queries.task(bad.id)
    assert (succeeded.state, succeeded.exit_code) == (TaskState.SUCCEEDED, 0)
    assert "epoch 2 loss" in SavePackage.open(succeeded.package_path).output_path().read_text()  # type: ignore[arg-type]
    assert (failed.state, failed.exit_code) == (TaskState.FAILED, 1)
    assert failed.error == "exit code 1: RuntimeError: no data"


def test_delete_reaches_every_process_of_a_forked_task(
    zygote_service: DLNestService, tmp_path: Path
) -> None:
    config, marker = hanging_project(tmp_path / "p")
    task = zygote_service.submit(TaskKind.TRAIN, config_path=config, cpu=True)
    wait_for(zygote_service, marker.exists)
    pid = zygote_service.queries.task(task.id).pid
    assert pid is not None

    zygote_service.delete(task.id)

    wait_until_group_is_gone(pid)


def children_of(pid: int) -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _ppid(p) == pid]


def _has_exited(pid: int) -> bool:
    """Gone, or a zombie not yet reaped (its files, its pipe's end among them, are closed)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2 :].split()[0] in ("Z", "X")


def _ppid(entry: Path) -> int | None:
    try:
        stat = (entry / "stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def test_a_spare_that_dies_waiting_is_replaced_and_tasks_still_start(
    zygote_executor: LocalExecutor, zygote_service: DLNestService, tmp_path: Path
) -> None:
    assert zygote_executor.zygote is not None
    zygote_pid = zygote_executor.zygote.pid
    assert zygote_pid is not None
    # The zygote forks a spare child once idle; killing it must not lose the next launch.
    [spare] = wait_until(lambda: children_of(zygote_pid), what="the zygote's spare child")
    os.kill(spare, signal.SIGKILL)
    # Dead, its pipe closed, before the launch: a SIGKILL still in flight as the request goes
    # down its pipe kills the task it was becoming, which no zygote can prevent.
    wait_until(lambda: _has_exited(spare), what="the spare to die")

    task = zygote_service.submit(
        TaskKind.TRAIN, config_path=write_project(tmp_path / "p", epochs=1), cpu=True
    )

    wait_for(zygote_service, lambda: zygote_service.queries.task(task.id).state.terminal)
    assert zygote_service.queries.task(task.id).state is TaskState.SUCCEEDED
    assert task.pid != spare
    # The spare's death was no task's: the zygote carries on and forks another.
    assert wait_until(lambda: [p for p in children_of(zygote_pid) if p != spare])


def test_a_closed_zygote_leaves_no_spare_behind(tmp_path: Path) -> None:
    executor = LocalExecutor(zygote=True)
    assert executor.zygote is not None and executor.zygote.wait_ready(120)
    zygote_pid = executor.zygote.pid
    assert zygote_pid is not None
    wait_until(lambda: children_of(zygote_pid), what="the zygote's spare child")

    executor.close()

    wait_until(lambda: not Path(f"/proc/{zygote_pid}").exists(), what="the zygote's exit")
