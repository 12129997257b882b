from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from dlnest_jupyter.core import processes
from dlnest_jupyter.core.devices import FakeSource
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.core.tasks import TaskKind, TaskState
from dlnest_jupyter.service.launch.executor import LocalExecutor
from dlnest_jupyter.service.service import DLNestService

from ..projects import life_cycle_source, write_project
from ..waiting import wait_until
from .conftest import wait_for

SLOW = """
def BTrain(self):
    import time
    time.sleep(4)
"""


def test_a_service_killed_with_sigkill_loses_nothing(tmp_path: Path) -> None:
    database = tmp_path / "dlnest.sqlite"
    slow = write_project(tmp_path / "slow", epochs=1, life_cycle=life_cycle_source(SLOW))
    fast = write_project(tmp_path / "fast", epochs=1)
    with subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("service_process.py")),
            str(database),
            str(slow),
            str(fast),
        ],
        stdout=subprocess.PIPE,
        text=True,
    ) as first_service:
        assert first_service.stdout is not None
        ids = json.loads(first_service.stdout.readline())
        first_service.send_signal(signal.SIGKILL)

    store = TaskStore(database)
    assert store.queued_ids() == ids[2:]  # still queued, in order
    running = store.running()
    assert [t.id for t in running] == ids[:2]
    assert all(processes.is_alive(t.pid, t.pid_start_time) for t in running)  # type: ignore[arg-type]

    second_service = DLNestService(store, FakeSource((16384, 16384)), LocalExecutor())
    wait_for(
        second_service, lambda: all(t.state.terminal for t in store.list_tasks()), timeout_s=600
    )

    finished = store.list_tasks()
    assert [t.id for t in finished] == ids
    assert all((t.state, t.exit_code) == (TaskState.SUCCEEDED, 0) for t in finished), [
        (t.id, t.state, t.error) for t in finished
    ]
    for adopted in finished[:2]:  # not children of the second service: their end was still noticed
        assert "epoch 1 loss" in (adopted.output_tail or "")
    assert store.settings().max_tasks_per_device == 1


HANGS = """
def BTrain(self):
    import time
    print("about to hang", flush=True)
    with open(self.args["marker"], "w") as handle:
        handle.write("started")
    time.sleep(600)
"""


def test_a_task_that_died_while_no_service_ran_is_failed_with_its_tail(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    config = write_project(
        tmp_path / "p", life_cycle=life_cycle_source(HANGS), args={"marker": str(marker)}
    )
    store = TaskStore(tmp_path / "dlnest.sqlite")
    first = DLNestService(store, FakeSource((16384,)), LocalExecutor())
    task = first.submit(TaskKind.TRAIN, config_path=config, memory_mb=1000)
    wait_for(first, marker.exists)
    pid = store.get(task.id).pid
    assert pid is not None

    first.leadership.close()  # the service is down: it no longer schedules the queue
    processes.kill_group(pid, signal.SIGKILL)  # the OOM killer, say, while the service is down
    # A zombie (ours is one until reaped below) is not alive.
    wait_until(lambda: not processes.is_alive(pid, None), 30, f"process {pid} to die")
    # The new service knows the task only from the store.
    second = DLNestService(store, FakeSource((16384,)), LocalExecutor())
    second.tick()

    failed = store.get(task.id)
    assert failed.state is TaskState.FAILED
    assert failed.error is not None and failed.error.startswith(
        "the process ended without recording its exit status"
    )
    assert "about to hang" in (failed.output_tail or "")
    # The first service's child is a zombie until reaped; a killed multi-threaded process shows
    # as one in /proc a moment before waitpid can collect it, hence the wait.
    # (exit_code hands a status out once: a list holding it is truthy, even for a status of 0)
    [code] = wait_until(
        lambda: [c for c in (first.runners.executor.exit_code(failed),) if c is not None],
        30,
        "its status",
    )
    assert code == 128 + signal.SIGKILL
