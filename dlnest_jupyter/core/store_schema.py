"""The queue's SQLite schema, and the upgrades that bring an older queue to it.

Kept apart from `store.py`: this changes when the table does, that when the queue's operations do.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .errors import PackageError
from .tasks import TaskState

SCHEMA_VERSION = 9
# What each version added to a queue made by the one before it.
_UPGRADES = {
    2: "ALTER TABLE tasks ADD COLUMN output_start INTEGER NOT NULL DEFAULT 0",
    3: "ALTER TABLE tasks ADD COLUMN kernel_id TEXT",
    4: "ALTER TABLE tasks ADD COLUMN json TEXT",
    5: "ALTER TABLE tasks ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
    6: "ALTER TABLE tasks ADD COLUMN owner TEXT",
    7: "ALTER TABLE tasks ADD COLUMN waiting_for TEXT",
    8: (
        "ALTER TABLE tasks ADD COLUMN memory_note TEXT",
        "ALTER TABLE tasks ADD COLUMN memory_over INTEGER NOT NULL DEFAULT 0",
    ),
    9: (),  # the sweeps' tables, which the schema below makes where they are missing
}
# `json`: the REST TASK object, kept current by the triggers below; `version`: the queue's change
# counter when the row last changed; `owner`: the id of the service that claimed the task;
# `waiting_for`: why the scheduler's last pass left it queued (core/waiting.py); `memory_note`
# and `memory_over`: how its reservation last followed its measured use, and whether that use
# ever went past it (core/memory_policy.py). (No comments inside the table's SQL: SQLite rewrites that
# text when a column is dropped, and a trailing comment would swallow its closing parenthesis.)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,
    position REAL NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    package_path TEXT,
    memory_mb INTEGER,
    reserved_mb TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    pid INTEGER,
    pid_start_time REAL,
    exit_code INTEGER,
    error TEXT,
    output_tail TEXT,
    progress TEXT NOT NULL DEFAULT '{}',
    output_start INTEGER NOT NULL DEFAULT 0,
    kernel_id TEXT,
    json TEXT,
    version INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    waiting_for TEXT,
    memory_note TEXT,
    memory_over INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (state, position);
CREATE INDEX IF NOT EXISTS tasks_by_position ON tasks (position);
CREATE TABLE IF NOT EXISTS task_events (
    task_id INTEGER NOT NULL REFERENCES tasks (id),
    at REAL NOT NULL,
    state TEXT NOT NULL,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS memory_history (
    fingerprint TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    card_peak_mb INTEGER NOT NULL,
    total_peak_mb INTEGER NOT NULL,
    duration_s REAL,
    epochs INTEGER,
    ended_at REAL NOT NULL,
    PRIMARY KEY (fingerprint, task_id)
);
CREATE TABLE IF NOT EXISTS sweeps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    plan TEXT NOT NULL,
    state TEXT NOT NULL,
    note TEXT,
    created_at REAL NOT NULL,
    ended_at REAL
);
CREATE TABLE IF NOT EXISTS sweep_trials (
    sweep_id INTEGER NOT NULL REFERENCES sweeps (id),
    number INTEGER NOT NULL,
    task_id INTEGER NOT NULL UNIQUE REFERENCES tasks (id),
    params TEXT NOT NULL,
    value REAL,
    told INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sweep_id, number)
);
"""
# The REST TASK object (`TaskRecord.to_json`), built by SQLite. Triggers keep it in the `json`
# column: listing 10,000 tasks then reads text (15 ms here) instead of building it (45 ms), which
# was itself a third of the cost of building TaskRecords, then dicts, then dumping them.
_HOLDING = ", ".join(f"'{state.value}'" for state in TaskState if state.holds_devices)
_TASK_JSON = f"""json_object(
    'id', id, 'kind', kind, 'state', state, 'description', description,
    'package_path', package_path,
    'devices', CASE reserved_mb WHEN '{{}}' THEN json_array() ELSE
        (SELECT json_group_array(CAST(key AS INTEGER)) FROM json_each(reserved_mb)) END,
    'memory_mb', memory_mb,
    'cpu', json(CASE WHEN json_extract(spec, '$.cpu') THEN 'true' ELSE 'false' END),
    'reserved_mb', CASE WHEN state IN ({_HOLDING}) THEN
        (SELECT COALESCE(SUM(value), 0) FROM json_each(reserved_mb)) END,
    'waiting_for', CASE state WHEN '{TaskState.QUEUED.value}' THEN waiting_for END,
    'peak_memory_mb', CASE json_type(progress, '$.peak_memory_mb') WHEN 'object' THEN
        (SELECT SUM(value) FROM json_each(progress, '$.peak_memory_mb') WHERE type = 'integer')
        END,
    'memory_source', CASE WHEN memory_mb IS NOT NULL THEN 'given'
        WHEN json_extract(spec, '$.learned_mb') IS NOT NULL THEN 'learned' ELSE 'default' END,
    'memory_learned_mb', json_extract(spec, '$.learned_mb'),
    'memory_learned_runs', json_extract(spec, '$.learned_runs'),
    'memory_note', memory_note,
    'memory_over', json(CASE WHEN memory_over THEN 'true' ELSE 'false' END),
    'created_at', created_at, 'started_at', started_at,
    'ended_at', ended_at, 'exit_code', exit_code, 'error', error,
    'kernel_id', kernel_id, 'scripts_dir', json_extract(spec, '$.scripts_dir'),
    'sweep', json_extract(spec, '$.sweep'),
    'progress', CASE progress WHEN '{{}}' THEN json_object('epoch', NULL, 'iter', NULL) ELSE
        json_patch(json_object('epoch', json_extract(progress, '$.epoch'),
                               'iter', json_extract(progress, '$.iter')), progress) END
)"""
_JSON_COLUMNS = (
    "kind, state, spec, description, package_path, memory_mb, reserved_mb, created_at,"
    " started_at, ended_at, exit_code, error, progress, kernel_id, waiting_for, memory_note,"
    " memory_over"
)
# Every change to a shown column also takes the next value of the queue's change counter, so a
# reader that saw version V asks only for rows with a higher one (`GET tasks?since=V`).
_ON_CHANGE = f"""UPDATE tasks SET json = {_TASK_JSON},
    version = (SELECT COALESCE(MAX(version), 0) + 1 FROM tasks) WHERE id = NEW.id"""
_JSON_TRIGGERS = (
    f"""CREATE TRIGGER tasks_json_on_insert AFTER INSERT ON tasks
    BEGIN {_ON_CHANGE}; END""",
    f"""CREATE TRIGGER tasks_json_on_update AFTER UPDATE OF {_JSON_COLUMNS} ON tasks
    BEGIN {_ON_CHANGE}; END""",
)


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Create or upgrade the schema, inside the caller's write transaction."""
    for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
        db.execute(statement)
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
    elif int(row[0]) < SCHEMA_VERSION:
        for version in range(int(row[0]) + 1, SCHEMA_VERSION + 1):
            upgrade = _UPGRADES[version]
            for statement in (upgrade,) if isinstance(upgrade, str) else upgrade:
                db.execute(statement)
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
        db.execute(f"UPDATE tasks SET json = {_TASK_JSON}, version = id")
    elif int(row[0]) > SCHEMA_VERSION:
        raise PackageError(
            f"task database schema {row[0]} is newer than this dlnest-jupyter ({SCHEMA_VERSION});"
            " upgrade dlnest-jupyter",
            path=path,
        )
    # After the upgrades, which add the columns these name. Triggers are made anew each time, so
    # an upgraded queue runs this version's.
    db.execute("CREATE INDEX IF NOT EXISTS tasks_by_version ON tasks (version)")
    for name in ("tasks_json_on_insert", "tasks_json_on_update"):
        db.execute(f"DROP TRIGGER IF EXISTS {name}")
    for trigger in _JSON_TRIGGERS:
        db.execute(trigger)
