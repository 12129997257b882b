"""The queue's sweeps: each sweep's plan and state, and its trials, in the queue's database.

A trial is an ordinary task; its row here (`sweep_trials`) is written in the same transaction as
its task (`TaskStore.submit(trial=...)`), so a trial and its task exist together or not at all,
whoever crashes when. Beside the task it keeps what the sweep's driver learned (the trial's
objective so far) and whether the driver has told the engine how it ended (`told`): a driver
that takes over after a crash tells only the trials not yet told, and none twice.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from .errors import SweepNotFoundError, SweepStateError
from .store_connection import StoreConnection
from .sweeps import SweepPlan, SweepState, TrialView, trial_state
from .tasks import TaskState


class TrialRef(NamedTuple):
    """What a task submitted for a sweep's trial records (`TaskStore.submit(trial=...)`)."""

    sweep_id: int
    number: int
    params: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.sweep_id, "trial": self.number, "params": dict(self.params)}


class SweepRow(NamedTuple):
    id: int
    plan: SweepPlan
    state: SweepState
    note: str | None
    created_at: float
    ended_at: float | None


class TrialRow(NamedTuple):
    number: int
    task_id: int
    params: dict[str, Any]
    value: float | None
    told: bool
    task_state: TaskState
    error: str | None
    package_path: str | None

    def view(self) -> TrialView:
        return TrialView(
            self.number, self.task_id, self.params, trial_state(self.task_state), self.value
        )


_SWEEP_COLUMNS = "id, plan, state, note, created_at, ended_at"


class SweepBook:
    def __init__(self, connection: StoreConnection) -> None:
        self.connection = connection

    def create(self, plan: SweepPlan, now: float | None = None) -> SweepRow:
        with self.connection._write() as db:
            cursor = db.execute(
                "INSERT INTO sweeps (plan, state, created_at) VALUES (?, ?, ?)",
                (
                    json.dumps(plan.to_json()),
                    SweepState.RUNNING,
                    time.time() if now is None else now,
                ),
            )
        return self.get(int(cursor.lastrowid or 0))

    def get(self, sweep_id: int) -> SweepRow:
        rows = self.connection.read(
            f"SELECT {_SWEEP_COLUMNS} FROM sweeps WHERE id = ?", (sweep_id,)
        )
        if not rows:
            raise SweepNotFoundError(sweep_id)
        return _sweep(rows[0])

    def all(self) -> list[SweepRow]:
        return [
            _sweep(row)
            for row in self.connection.read(f"SELECT {_SWEEP_COLUMNS} FROM sweeps ORDER BY id")
        ]

    def to_drive(self) -> list[SweepRow]:
        """Sweeps still running, and ended ones with trials whose end is not yet told."""
        rows = self.connection.read(
            f"SELECT {_SWEEP_COLUMNS} FROM sweeps WHERE state = ? OR id IN"
            " (SELECT sweep_id FROM sweep_trials WHERE told = 0) ORDER BY id",
            (SweepState.RUNNING,),
        )
        return [_sweep(row) for row in rows]

    def end(
        self, sweep_id: int, state: SweepState, note: str | None = None, now: float | None = None
    ) -> SweepRow:
        """A running sweep ends: finished, stopped or failed (`note` says why)."""
        with self.connection._write() as db:
            row = db.execute("SELECT state FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
            if row is None:
                raise SweepNotFoundError(sweep_id)
            if row[0] != SweepState.RUNNING:
                raise SweepStateError(sweep_id, row[0], state.value)
            db.execute(
                "UPDATE sweeps SET state = ?, note = COALESCE(?, note), ended_at = ? WHERE id = ?",
                (state, note, time.time() if now is None else now, sweep_id),
            )
        return self.get(sweep_id)

    def set_note(self, sweep_id: int, note: str | None) -> None:
        with self.connection._write() as db:
            db.execute("UPDATE sweeps SET note = ? WHERE id = ?", (note, sweep_id))

    def trials(self, sweep_id: int) -> list[TrialRow]:
        rows = self.connection.read(
            "SELECT s.number, s.task_id, s.params, s.value, s.told, t.state, t.error,"
            " t.package_path FROM sweep_trials s JOIN tasks t ON t.id = s.task_id"
            " WHERE s.sweep_id = ? ORDER BY s.number",
            (sweep_id,),
        )
        return [
            TrialRow(n, task, json.loads(params), value, bool(told), TaskState(state), error, path)
            for n, task, params, value, told, state, error, path in rows
        ]

    def set_value(self, sweep_id: int, number: int, value: float | None) -> None:
        with self.connection._write() as db:
            db.execute(
                "UPDATE sweep_trials SET value = ? WHERE sweep_id = ? AND number = ?",
                (value, sweep_id, number),
            )

    def mark_told(self, sweep_id: int, number: int, value: float | None) -> None:
        with self.connection._write() as db:
            db.execute(
                "UPDATE sweep_trials SET told = 1, value = ? WHERE sweep_id = ? AND number = ?",
                (value, sweep_id, number),
            )


def add_trial(db: sqlite3.Connection, trial: TrialRef, task_id: int) -> None:
    """The trial's row, inside the transaction that stores its task (`TaskStore.submit`)."""
    row = db.execute("SELECT state FROM sweeps WHERE id = ?", (trial.sweep_id,)).fetchone()
    if row is None:
        raise SweepNotFoundError(trial.sweep_id)
    if row[0] != SweepState.RUNNING:  # stopped meanwhile (by another server): queue nothing
        raise SweepStateError(trial.sweep_id, row[0], "running", "it queues no more trials")
    db.execute(
        "INSERT INTO sweep_trials (sweep_id, number, task_id, params) VALUES (?, ?, ?, ?)",
        (trial.sweep_id, trial.number, task_id, json.dumps(dict(trial.params))),
    )


def _sweep(row: tuple[Any, ...]) -> SweepRow:
    sweep_id, plan, state, note, created_at, ended_at = row
    return SweepRow(
        sweep_id,
        SweepPlan.from_json(json.loads(plan)),
        SweepState(state),
        note,
        created_at,
        ended_at,
    )
