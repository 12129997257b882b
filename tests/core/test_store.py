from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from dlnest_jupyter.core.errors import (
    PackageError,
    RequestError,
    TaskNotFoundError,
    TaskStateError,
)
from dlnest_jupyter.core.memory_policy import Revision
from dlnest_jupyter.core.settings import Settings
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.core.store_schema import SCHEMA_VERSION
from dlnest_jupyter.core.tasks import TaskRecord, TaskState


def start(
    store: TaskStore,
    task_id: int,
    reserved_mb: dict[int, int],
    *,
    output_start: int = 0,
    now: float | None = None,
    **launch: Any,
) -> TaskRecord:
    """Claim a queued task and record its launch, as the scheduler does."""
    assert store.claim(task_id, reserved_mb, "test", output_start, now) is not None
    return store.mark_running(task_id, now=now, **launch)


@pytest.fixture
def store(tmp_path: Path) -> TaskStore:
    return TaskStore(tmp_path / "dlnest.sqlite")


def test_submissions_queue_in_order_and_a_jump_goes_to_the_front(store: TaskStore) -> None:
    first = store.submit("train", {"config_path": "a.json"})
    second = store.submit("train", {"config_path": "b.json"})
    urgent = store.submit("train", {"config_path": "c.json"}, jump=True)
    later_urgent = store.submit("train", {"config_path": "d.json"}, jump=True)

    assert store.queued_ids() == [later_urgent.id, urgent.id, first.id, second.id]
    assert first.state is TaskState.QUEUED and first.spec == {"config_path": "a.json"}


def test_a_task_runs_and_finishes_with_its_history_recorded(store: TaskStore) -> None:
    task = store.submit("train", {}, memory_mb=4000, now=10.0)

    start(store, task.id, {0: 4000}, pid=1234, pid_start_time=11.5, now=12.0)
    assert store.running()[0].reservation().memory_mb_by_device == {0: 4000}
    done = store.finish(
        task.id, TaskState.FAILED, exit_code=1, error="ValueError: x", output_tail="...", now=20.0
    )

    assert (done.state, done.exit_code, done.error, done.started_at, done.ended_at) == (
        TaskState.FAILED,
        1,
        "ValueError: x",
        12.0,
        20.0,
    )
    assert [(at, state) for at, state, _ in store.events(task.id)] == [
        (10.0, TaskState.QUEUED),
        (12.0, TaskState.STARTING),
        (12.0, TaskState.RUNNING),
        (20.0, TaskState.FAILED),
    ]
    assert store.queued_ids() == [] and store.running() == []


def test_forbidden_transitions_and_unknown_ids_are_named(store: TaskStore) -> None:
    task = store.submit("train", {})
    store.finish(task.id, TaskState.CANCELLED)

    with pytest.raises(
        TaskStateError, match=f"task {task.id} is cancelled; it cannot become running"
    ):
        store.mark_running(task.id)
    assert store.claim(task.id, {0: 1}) is None  # nothing to launch
    with pytest.raises(TaskStateError):
        store.finish(task.id, TaskState.CANCELLED)
    with pytest.raises(TaskNotFoundError, match="no task with id 999"):
        store.get(999)
    with pytest.raises(TaskNotFoundError):
        store.finish(999, TaskState.CANCELLED)


def test_queue_settings_and_history_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "dlnest.sqlite"
    store = TaskStore(path)
    ids = [store.submit("train", {"n": i}).id for i in range(3)]
    start(store, ids[0], {-1: 0}, pid=42)
    store.update_settings({"devices": [0, -1], "max_tasks_per_device": 2, "launch_delay_s": 1.5})
    store.close()

    reopened = TaskStore(path)

    assert reopened.queued_ids() == ids[1:]
    assert reopened.running()[0].pid == 42
    assert reopened.settings() == Settings(
        devices=(0, -1), max_tasks_per_device=2, launch_delay_s=1.5
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"devices": [0, "1"]}, "field 'devices' must be a list of device ids"),
        ({"devices": [-2]}, "field 'devices' must be a list of device ids"),
        ({"devices": [2**63]}, "field 'devices' must be a list of device ids"),
        ({"max_tasks_per_device": 0}, "field 'max_tasks_per_device' must be an integer >= 1"),
        ({"max_tasks_per_device": 2**70}, "field 'max_tasks_per_device' must be an integer >= 1"),
        ({"launch_delay_s": -1}, "field 'launch_delay_s' must be a number from 0"),
        ({"launch_delay_s": True}, "field 'launch_delay_s' must be a number from 0"),
        ({"launch_delay_s": float("nan")}, "field 'launch_delay_s' must be a number from 0"),
        ({"starvation_s": float("inf")}, "field 'starvation_s' must be a number from 0"),
        ({"starvation_s": 2**70}, "field 'starvation_s' must be a number from 0"),
        ({"colour": "blue"}, "unknown field 'colour'"),
    ],
)
def test_bad_settings_are_refused_and_nothing_changes(
    store: TaskStore, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(RequestError, match=message):
        store.update_settings({"max_tasks_per_device": 3, **changes})

    assert store.settings() == Settings()


SUBMITTER = """
import sys
from dlnest_jupyter.core.store import TaskStore
store = TaskStore(sys.argv[1])
for i in range(int(sys.argv[3])):
    store.submit("train", {"source": sys.argv[2], "index": i})
"""


def test_concurrent_submissions_from_threads_and_processes_land_exactly_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dlnest.sqlite"
    store = TaskStore(path)
    per_source = 40
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SUBMITTER, str(path), f"process{n}", str(per_source)]
        )
        for n in range(3)
    ]
    threads = [
        threading.Thread(
            target=lambda n=n: [
                store.submit("train", {"source": f"thread{n}", "index": i})
                for i in range(per_source)
            ]
        )
        for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(process.wait(timeout=120) == 0 for process in processes)

    tasks = store.list_tasks()
    submitted = sorted((t.spec["source"], t.spec["index"]) for t in tasks)
    expected = sorted(
        (f"{kind}{n}", i)
        for kind, count in (("thread", 4), ("process", 3))
        for n in range(count)
        for i in range(per_source)
    )
    assert submitted == expected
    assert len({t.id for t in tasks}) == len({t.position for t in tasks}) == 7 * per_source


def test_a_version_1_queue_is_upgraded_to_the_current_schema_and_keeps_its_tasks(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dlnest.sqlite"
    store = TaskStore(path)
    store.submit("train", {"cpu": True}, package_path="/p")
    store.close()
    with sqlite3.connect(path) as db:  # what version 1 wrote: no output_start column
        db.execute("DROP TRIGGER tasks_json_on_insert")
        db.execute("DROP TRIGGER tasks_json_on_update")
        db.execute("DROP INDEX tasks_by_version")
        db.execute("ALTER TABLE tasks DROP COLUMN version")
        db.execute("ALTER TABLE tasks DROP COLUMN json")
        db.execute("ALTER TABLE tasks DROP COLUMN output_start")
        db.execute("ALTER TABLE tasks DROP COLUMN kernel_id")
        db.execute("ALTER TABLE tasks DROP COLUMN owner")
        db.execute("ALTER TABLE tasks DROP COLUMN waiting_for")
        db.execute("ALTER TABLE tasks DROP COLUMN memory_note")
        db.execute("ALTER TABLE tasks DROP COLUMN memory_over")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")

    upgraded = TaskStore(path)

    assert [(t.package_path, t.output_start, t.kernel_id) for t in upgraded.list_tasks()] == [
        ("/p", 0, None)
    ]
    running = start(upgraded, 1, {-1: 0}, output_start=123)
    assert running.output_start == 123
    upgraded.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )


def test_a_version_3_queue_lists_its_tasks_and_keeps_their_json_current(tmp_path: Path) -> None:
    path = tmp_path / "dlnest.sqlite"
    store = TaskStore(path)
    first = store.submit("train", {"cpu": True}, description="before", now=1.0)
    store.submit("train", {"cpu": True}, description="other", now=2.0)
    store.close()
    with sqlite3.connect(path) as db:  # what version 3 wrote: no json column, no triggers
        db.execute("DROP TRIGGER tasks_json_on_insert")
        db.execute("DROP TRIGGER tasks_json_on_update")
        db.execute("DROP INDEX tasks_by_version")
        db.execute("ALTER TABLE tasks DROP COLUMN version")
        db.execute("ALTER TABLE tasks DROP COLUMN json")
        db.execute("ALTER TABLE tasks DROP COLUMN owner")
        db.execute("ALTER TABLE tasks DROP COLUMN waiting_for")
        db.execute("ALTER TABLE tasks DROP COLUMN memory_note")
        db.execute("ALTER TABLE tasks DROP COLUMN memory_over")
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")

    upgraded = TaskStore(path)
    start(upgraded, first.id, {-1: 0}, now=3.0)

    listed = [json.loads(text) for _, _, text in upgraded.tasks_json()[1]]
    assert listed == [t.to_json() for t in upgraded.list_tasks()]
    assert [t["state"] for t in listed] == ["running", "queued"]


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dlnest.sqlite"
    TaskStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")

    with pytest.raises(PackageError, match="schema 99 is newer"):
        TaskStore(path)


def test_a_task_renders_as_the_rest_contract_says(store: TaskStore) -> None:
    task = store.submit(
        "train", {"cpu": True}, description="lr sweep", package_path="/p", memory_mb=100, now=5.0
    )
    store.set_progress(task.id, {"epoch": 2, "iter": 7, "steps_per_s": 31.5})

    rendered = store.get(task.id).to_json()

    assert set(rendered) == {
        "id",
        "kind",
        "state",
        "description",
        "package_path",
        "devices",
        "memory_mb",
        "cpu",
        "reserved_mb",
        "waiting_for",
        "peak_memory_mb",
        "memory_source",
        "memory_learned_mb",
        "memory_learned_runs",
        "memory_note",
        "memory_over",
        "created_at",
        "started_at",
        "ended_at",
        "exit_code",
        "error",
        "kernel_id",
        "scripts_dir",
        "sweep",
        "progress",
    }
    assert rendered["progress"] == {"epoch": 2, "iter": 7, "steps_per_s": 31.5}
    assert json.loads(json.dumps(rendered)) == rendered


def test_the_sql_built_task_json_is_exactly_the_rest_contract(store: TaskStore) -> None:
    queued = store.submit("train", {"cpu": True}, description='a "quoted" ✓ sweep', now=5.25)
    running = store.submit("continue", {}, package_path="/p/ü", memory_mb=3000, now=6.5)
    start(store, running.id, {1: 3000, 0: 3000}, pid=42, now=7.75)
    store.set_progress(running.id, {"epoch": 2, "iter": 7, "steps_per_s": 31.5, "note": [1, 2]})
    analyzer = store.submit("analyze", {"scripts_dir": "/p/AnalyzeScripts"}, now=7.5)
    start(store, analyzer.id, {-1: 0}, kernel_id="k-1", now=7.6)
    failed = store.submit("train", {}, now=8.0)
    start(store, failed.id, {-1: 0}, now=8.5)
    store.finish(
        failed.id, TaskState.FAILED, exit_code=1, error="exit code 1: boom\nline 2", now=9.0
    )
    store.set_progress(queued.id, {"iter": 3})
    store.set_progress(failed.id, {"peak_memory_mb": {"0": 900, "1": 100, "2": "?"}})
    cancelled = store.submit("train", {}, now=9.5)
    store.set_waiting({cancelled.id: "launch delay, 3 s", queued.id: "needs 4,000 MiB"})
    store.finish(cancelled.id, TaskState.CANCELLED, now=9.75)

    from_sql = [(i, state, json.loads(text)) for i, state, text in store.tasks_json()[1]]

    assert from_sql == [(t.id, t.state, t.to_json()) for t in store.list_tasks()]
    assert from_sql[1][2]["devices"] == [1, 0] and from_sql[0][2]["progress"]["epoch"] is None
    # What a task holds while it holds it; why it waits only while it waits.
    assert [t["reserved_mb"] for _, _, t in from_sql] == [None, 6000, 0, None, None]
    assert [t["waiting_for"] for _, _, t in from_sql] == ["needs 4,000 MiB", *[None] * 4]
    assert [t["peak_memory_mb"] for _, _, t in from_sql] == [None, None, None, 1000, None]
    assert [t["memory_source"] for _, _, t in from_sql] == ["default", "given", *["default"] * 3]


def test_tasks_since_a_version_are_the_changed_and_the_running_ones(store: TaskStore) -> None:
    first, second, third = (store.submit("train", {"n": i}) for i in range(3))
    version, everything = store.tasks_json()
    start(store, first.id, {-1: 0})
    store.finish(second.id, TaskState.CANCELLED)

    later, changed = store.tasks_json(since=version)
    unchanged_now, again = store.tasks_json(since=later)

    assert [i for i, _, _ in everything] == [first.id, second.id, third.id]
    assert [i for i, _, _ in changed] == [first.id, second.id] and later > version
    assert unchanged_now == later
    assert [(i, state) for i, state, _ in again] == [(first.id, TaskState.RUNNING)]  # live


def test_a_version_4_queue_gets_versions_and_answers_since(tmp_path: Path) -> None:
    path = tmp_path / "dlnest.sqlite"
    store = TaskStore(path)
    store.submit("train", {"cpu": True})
    store.close()
    with sqlite3.connect(path) as db:  # what version 4 wrote: no version column (its triggers
        db.execute("DROP TRIGGER tasks_json_on_insert")  # are made anew on open anyway)
        db.execute("DROP TRIGGER tasks_json_on_update")
        db.execute("DROP INDEX tasks_by_version")
        db.execute("ALTER TABLE tasks DROP COLUMN version")
        db.execute("ALTER TABLE tasks DROP COLUMN owner")
        db.execute("ALTER TABLE tasks DROP COLUMN waiting_for")
        db.execute("ALTER TABLE tasks DROP COLUMN memory_note")
        db.execute("ALTER TABLE tasks DROP COLUMN memory_over")
        db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")

    upgraded = TaskStore(path)
    version, rows = upgraded.tasks_json()
    added = upgraded.submit("train", {"cpu": True})

    assert version == 1 and len(rows) == 1
    assert [i for i, _, _ in upgraded.tasks_json(since=version)[1]] == [added.id]


def test_the_sql_built_task_json_says_where_memory_came_from_as_python_does(
    store: TaskStore,
) -> None:
    store.submit("train", {"learned_mb": 1356, "learned_runs": 2}, now=1.5)
    store.submit("train", {"learned_mb": 1356}, memory_mb=900, now=2.5)  # given beats learned
    raised = store.submit("train", {}, now=3.5)
    start(store, raised.id, {0: 500}, now=4.5)
    store.revise_reservations({raised.id: Revision({0: 3000}, True, "grew past it")})

    from_sql = [json.loads(text) for _, _, text in store.tasks_json()[1]]

    assert from_sql == [t.to_json() for t in store.list_tasks()]
    assert [t["memory_source"] for t in from_sql] == ["learned", "given", "default"]
    assert (from_sql[0]["memory_learned_mb"], from_sql[0]["memory_learned_runs"]) == (1356, 2)
    assert (from_sql[2]["reserved_mb"], from_sql[2]["memory_over"]) == (3000, True)
    assert from_sql[2]["memory_note"] == "grew past it"
