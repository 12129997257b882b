from __future__ import annotations

import os
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
from .conftest import hanging_project, wait_for, wait_until_group_is_gone


@pytest.fixture
def zygote_service(tmp_path: Path) -> Iterator[DLNestService]:
    executor = LocalExecutor(zygote=True, stop_grace_s=5)
    assert executor.zygote is not None and executor.zygote.wait_ready(120)
    service = DLNestService(TaskStore(tmp_path / "dlnest.sqlite"), FakeSource((16384,)), executor)
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
