"""A row of the queue's `tasks` table as a `TaskRecord`: which columns are read, in what order,
and how each becomes a field.

Apart from `store.py`: this changes with the table's columns and the record's fields (with
`store_schema.py` and `tasks.py`), the store with the queue's operations; and reading 10,000 rows
is a hot path whose speed is tuned here alone.
"""

from __future__ import annotations

import json
from typing import Any

from .tasks import TaskKind, TaskRecord, TaskState

COLUMNS = (
    "id, kind, state, spec, position, description, package_path, memory_mb, reserved_mb, created_at,"
    " started_at, ended_at, pid, pid_start_time, exit_code, error, output_tail, progress, output_start, kernel_id,"
    " owner, waiting_for, memory_note, memory_over"
)
STATES = {state.value: state for state in TaskState}
_KINDS = {kind.value: kind for kind in TaskKind}


def record(row: tuple[Any, ...]) -> TaskRecord:
    """A row read as `SELECT {COLUMNS}`, as the record the store hands out."""
    # Reading 10,000 tasks must stay well under 100 ms: positional columns and arguments, no JSON
    # for "{}", and the spec left as text until someone asks for it.
    (task_id, kind, state, spec, position, description, package_path, memory_mb, reserved, created_at,
     started_at, ended_at, pid, pid_start_time, exit_code, error, output_tail, progress, output_start, kernel_id,
     owner, waiting_for, memory_note, memory_over) = row  # fmt: skip
    return TaskRecord(
        task_id,
        _KINDS[kind],
        STATES[state],
        spec,
        position,
        description,
        package_path,
        memory_mb,
        {int(k): v for k, v in json.loads(reserved).items()} if reserved != "{}" else {},
        created_at,
        started_at,
        ended_at,
        pid,
        pid_start_time,
        exit_code,
        error,
        output_tail,
        json.loads(progress) if progress != "{}" else {},
        output_start,
        kernel_id,
        owner,
        waiting_for,
        memory_note,
        bool(memory_over),
    )
