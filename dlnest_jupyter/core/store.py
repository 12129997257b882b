"""The persistent queue: tasks, their state history and the scheduler settings, in SQLite.

WAL mode lets readers (the dashboard, a second server) read while the service writes. Every
write is one `BEGIN IMMEDIATE` transaction, so submissions from several threads or processes
each land exactly once, in a total order; that connection is `store_connection.py`. The schema,
and how an older queue is upgraded to it, are in `store_schema.py`; how a row becomes a
`TaskRecord`, in `store_rows.py`.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import TaskNotFoundError
from .memory_history import MemoryHistory
from .memory_policy import Revision
from .settings import Settings
from .store_connection import StoreConnection
from .store_rows import COLUMNS, STATES, record
from .store_schema import migrate
from .sweep_book import SweepBook, TrialRef, add_trial
from .tasks import RUNNERS, Runner, TaskKind, TaskRecord, TaskState, check_transition


class TaskStore(StoreConnection):
    def __init__(self, path: Path | str) -> None:
        super().__init__(path)
        with self._write() as db:
            migrate(db, self.path)
        self.memory = MemoryHistory(self)  # what earlier runs used, by memory fingerprint
        self.sweeps = SweepBook(self)  # the sweeps and their trials (tasks of their own)

    # -- tasks ------------------------------------------------------------------------------
    def submit(
        self,
        kind: TaskKind,
        spec: Mapping[str, Any],
        *,
        description: str = "",
        package_path: str | None = None,
        memory_mb: int | None = None,
        jump: bool = False,
        trial: TrialRef | None = None,
        now: float | None = None,
    ) -> TaskRecord:
        """Queue a task; `trial`: it is that sweep trial's, recorded in the same write."""
        now = time.time() if now is None else now
        with self._write() as db:
            if jump:
                row = db.execute(
                    "SELECT MIN(position) FROM tasks WHERE state = ?", (TaskState.QUEUED,)
                ).fetchone()
                position = (row[0] if row[0] is not None else 1.0) - 1.0
            else:
                row = db.execute("SELECT MAX(position) FROM tasks").fetchone()
                position = (row[0] if row[0] is not None else 0.0) + 1.0
            cursor = db.execute(
                "INSERT INTO tasks (kind, state, spec, position, description, package_path, memory_mb, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    kind,
                    TaskState.QUEUED,
                    json.dumps(dict(spec)),
                    position,
                    description,
                    package_path,
                    memory_mb,
                    now,
                ),
            )
            task_id = int(cursor.lastrowid or 0)
            db.execute(
                "INSERT INTO task_events (task_id, at, state) VALUES (?, ?, ?)",
                (task_id, now, TaskState.QUEUED),
            )
            if trial is not None:
                add_trial(db, trial, task_id)
        return self.get(task_id)

    def get(self, task_id: int) -> TaskRecord:
        with self._lock:
            row = self._db.execute(
                f"SELECT {COLUMNS} FROM tasks WHERE id = ?", (task_id,)
            ).fetchone()
        if row is None:
            raise TaskNotFoundError(task_id)
        return record(row)

    def list_tasks(self, states: Iterable[TaskState] | None = None) -> list[TaskRecord]:
        """Tasks by id; `states` filters."""
        query, params = f"SELECT {COLUMNS} FROM tasks", ()
        if states is not None:
            wanted = tuple(states)
            query += f" WHERE state IN ({','.join('?' * len(wanted))})"
            params = wanted  # type: ignore[assignment]
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", params).fetchall()
        return [record(row) for row in rows]

    def tasks_json(self, since: int | None = None) -> tuple[int, list[tuple[int, TaskState, str]]]:
        """(the queue's version, tasks as (id, state, REST TASK JSON text)), by id.

        `since`: only the tasks changed after that version, and every running one (their
        progress is live, read from their packages). The version is read first, so a change made
        meanwhile is sent again next time rather than missed.

        The text is the `json` column, which triggers rebuild on every change (`_TASK_JSON` in
        `store_schema.py`). `TaskRecord.to_json` is the contract; a test holds the two to the same
        output.
        """
        with self._lock:
            version = self._db.execute("SELECT COALESCE(MAX(version), 0) FROM tasks").fetchone()[0]
            if since is None:
                rows = self._db.execute(_TASK_JSON_QUERY).fetchall()
            else:
                rows = self._db.execute(_CHANGED_JSON_QUERY, (since, TaskState.RUNNING)).fetchall()
        return version, [(task_id, STATES[state], text) for task_id, state, text in rows]

    def queued_ids(self) -> list[int]:
        """Ids of the queued tasks in the order they should start."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM tasks WHERE state = ? ORDER BY position, id", (TaskState.QUEUED,)
            ).fetchall()
        return [row[0] for row in rows]

    def get_many(self, task_ids: Iterable[int]) -> list[TaskRecord]:
        wanted = list(task_ids)
        if not wanted:
            return []
        with self._lock:
            rows = self._db.execute(
                f"SELECT {COLUMNS} FROM tasks WHERE id IN ({','.join('?' * len(wanted))})",
                wanted,
            ).fetchall()
        return [record(row) for row in rows]

    def running(self) -> list[TaskRecord]:
        return self.list_tasks([TaskState.RUNNING])

    def next_output_start(self, task: TaskRecord) -> int | None:
        """Where the next run of `task`'s package began writing its `_output.txt` (a continue
        of it, queued after it): where `task`'s own output ends. None while no later run has
        started. Analyzers write none there (their kernels keep theirs), so they do not count."""
        writers = [kind.value for kind, runner in RUNNERS.items() if runner is Runner.PROCESS]
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(output_start) FROM tasks WHERE package_path = ? AND id > ?"
                " AND output_start >= ? AND started_at IS NOT NULL"
                f" AND kind IN ({','.join('?' * len(writers))})",
                (task.package_path, task.id, task.output_start, *writers),
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def holding(self) -> list[TaskRecord]:
        """The tasks that hold devices: starting (claimed, being launched) and running ones."""
        return self.list_tasks(_HOLDING)

    def claim(
        self,
        task_id: int,
        reserved_mb: Mapping[int, int],
        owner: str | None = None,
        output_start: int = 0,
        now: float | None = None,
    ) -> TaskRecord | None:
        """Move a queued task to `starting`, holding `reserved_mb`, for `owner` to launch.

        One write: the state is tested and changed together, so of several schedulers claiming
        one task exactly one gets it. None: the task was no longer queued (someone else claimed
        it, or it was deleted), and nothing must be launched. `output_start`: where this run's
        text will begin in the package's shared output file.
        """
        now = time.time() if now is None else now
        with self._write() as db:
            claimed = db.execute(
                "UPDATE tasks SET state = ?, reserved_mb = ?, owner = ?, output_start = ?"
                " WHERE id = ? AND state = ?",
                (
                    TaskState.STARTING,
                    json.dumps({str(k): v for k, v in reserved_mb.items()}),
                    owner,
                    output_start,
                    task_id,
                    TaskState.QUEUED,
                ),
            ).rowcount
            if not claimed:
                return None
            db.execute(
                "INSERT INTO task_events (task_id, at, state, detail) VALUES (?, ?, ?, ?)",
                (task_id, now, TaskState.STARTING, owner),
            )
        return self.get(task_id)

    def unclaim(self, task_id: int, why: str, now: float | None = None) -> TaskRecord:
        """Back to the queue, in its old place: its claimant died before launching it."""
        now = time.time() if now is None else now
        with self._transition(task_id, TaskState.QUEUED, now, detail=why) as db:
            db.execute("UPDATE tasks SET reserved_mb = '{}', owner = NULL WHERE id = ?", (task_id,))
        return self.get(task_id)

    def mark_running(
        self,
        task_id: int,
        pid: int | None = None,
        pid_start_time: float | None = None,
        now: float | None = None,
        kernel_id: str | None = None,
    ) -> TaskRecord:
        """A claimed task's process (or kernel) was launched. TaskStateError if the task is no
        longer starting (deleted meanwhile): its launcher must then stop what it launched."""
        now = time.time() if now is None else now
        with self._transition(task_id, TaskState.RUNNING, now) as db:
            db.execute(
                "UPDATE tasks SET pid = ?, pid_start_time = ?, started_at = ?, kernel_id = ?"
                " WHERE id = ?",
                (pid, pid_start_time, now, kernel_id, task_id),
            )
        return self.get(task_id)

    def finish(
        self,
        task_id: int,
        state: TaskState,
        *,
        exit_code: int | None = None,
        error: str | None = None,
        output_tail: str | None = None,
        now: float | None = None,
    ) -> TaskRecord:
        now = time.time() if now is None else now
        with self._transition(task_id, state, now, detail=error) as db:
            db.execute(
                "UPDATE tasks SET ended_at = ?, exit_code = ?, error = ?, output_tail = ? WHERE id = ?",
                (now, exit_code, error, output_tail, task_id),
            )
        return self.get(task_id)

    def set_progress(self, task_id: int, progress: Mapping[str, Any]) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE tasks SET progress = ? WHERE id = ?", (json.dumps(dict(progress)), task_id)
            )

    def set_waiting(self, reasons: Mapping[int, str]) -> None:
        """Record why each queued task waits (`core/waiting.py`), in one write. A task that left
        the queue meanwhile is passed over: its reason no longer shows."""
        if not reasons:
            return
        with self._write() as db:
            db.executemany(
                "UPDATE tasks SET waiting_for = ? WHERE id = ? AND state = ?",
                [(why, task_id, TaskState.QUEUED) for task_id, why in reasons.items()],
            )

    def revise_reservations(self, revisions: Mapping[int, Revision]) -> None:
        """Hold each running task's revised reservation (`core/memory_policy.py`), in one write;
        a task that ended meanwhile is passed over, and a flag once raised stays."""
        if not revisions:
            return
        with self._write() as db:
            db.executemany(
                "UPDATE tasks SET reserved_mb = ?, memory_note = ?, memory_over = memory_over OR ?"
                " WHERE id = ? AND state = ?",
                [
                    (json.dumps(r.reserved_mb), r.note, r.over, task_id, TaskState.RUNNING)
                    for task_id, r in revisions.items()
                ],
            )

    def events(self, task_id: int) -> list[tuple[float, TaskState, str | None]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT at, state, detail FROM task_events WHERE task_id = ? ORDER BY rowid",
                (task_id,),
            ).fetchall()
        return [(at, TaskState(state), detail) for at, state, detail in rows]

    # -- settings ---------------------------------------------------------------------------
    def settings(self) -> Settings:
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM settings").fetchall()
        stored = {key: json.loads(value) for key, value in rows}
        if stored.get("devices") is not None:
            stored["devices"] = tuple(stored["devices"])
        return Settings(**stored)

    def update_settings(self, changes: Mapping[str, Any]) -> Settings:
        """Check and persist `changes` (`Settings.updated`); a bad value is a RequestError."""
        stored = self.settings().updated(changes).to_json()
        with self._write() as db:
            for key in changes:
                db.execute(
                    "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, json.dumps(stored[key])),
                )
        return self.settings()

    # -- who schedules ----------------------------------------------------------------------
    def leader(self) -> dict[str, Any] | None:
        """What the scheduling service wrote of itself when it took the lease (`set_leader`)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'leader'").fetchone()
        return json.loads(row[0]) if row is not None else None

    def set_leader(self, leader: Mapping[str, Any] | None) -> None:
        with self._write() as db:
            if leader is None:
                db.execute("DELETE FROM meta WHERE key = 'leader'")
            else:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('leader', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (json.dumps(dict(leader)),),
                )

    def queue_id(self) -> str:
        """This queue's id, made once at random: unique across machines, as its path is not."""
        with self._write() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'queue_id'").fetchone()
            if row is not None:
                return str(row[0])
            made = secrets.token_hex(6)
            db.execute("INSERT INTO meta (key, value) VALUES ('queue_id', ?)", (made,))
            return made

    # -- a cluster's cards ------------------------------------------------------------------
    def card_ids(self, names: Iterable[str] = ()) -> dict[str, int]:
        """Every card this queue has seen on a cluster ("boxA:0"), by device id; `names` not yet
        seen get the next ids. Ids are never reused: a task's reservation names its cards by id."""
        names = list(names)
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value FROM meta WHERE key LIKE 'card:%'"
            ).fetchall()
        known = {key[len("card:") :]: int(value) for key, value in rows}
        if all(name in known for name in names):
            return known
        with self._write() as db:
            rows = db.execute("SELECT key, value FROM meta WHERE key LIKE 'card:%'").fetchall()
            known = {key[len("card:") :]: int(value) for key, value in rows}
            next_id = max(known.values(), default=-1) + 1
            for name in names:
                if name not in known:
                    db.execute(
                        "INSERT INTO meta (key, value) VALUES (?, ?)", (f"card:{name}", next_id)
                    )
                    known[name], next_id = next_id, next_id + 1
        return known

    # -- plumbing ---------------------------------------------------------------------------
    @contextmanager
    def _transition(
        self, task_id: int, wanted: TaskState, now: float, detail: str | None = None
    ) -> Iterator[sqlite3.Connection]:
        with self._write() as db:
            row = db.execute("SELECT state FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if row is None:
                raise TaskNotFoundError(task_id)
            check_transition(task_id, TaskState(row[0]), wanted)
            db.execute("UPDATE tasks SET state = ? WHERE id = ?", (wanted, task_id))
            db.execute(
                "INSERT INTO task_events (task_id, at, state, detail) VALUES (?, ?, ?, ?)",
                (task_id, now, wanted, detail),
            )
            yield db


_HOLDING = [state for state in TaskState if state.holds_devices]
_TASK_JSON_QUERY = "SELECT id, state, json FROM tasks ORDER BY id"
_CHANGED_JSON_QUERY = (
    "SELECT id, state, json FROM tasks WHERE version > ?"
    " UNION SELECT id, state, json FROM tasks WHERE state = ? ORDER BY id"
)
