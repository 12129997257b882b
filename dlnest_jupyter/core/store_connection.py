"""The queue's SQLite connection: its file opened in WAL mode, one connection shared by the
service's threads, every write one `BEGIN IMMEDIATE` transaction, and a write that failed for
want of space reported as a `DiskFullError` naming the file.

Apart from `store.py`: this changes with how SQLite is driven (pragmas, locking, its error codes),
the store (`TaskStore`, built on this class) with the queue's operations.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import DiskFullError

_BUSY_TIMEOUT_S = 30.0


class StoreConnection:
    """One connection to the queue's file; `TaskStore` is the queue over it."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # one connection, shared by the service's threads
        self._db = sqlite3.connect(
            self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across process crashes

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def data_version(self) -> int:
        """Changes when another connection (another service, any process) commits a write.

        A cheap poll: a scheduler that did not make a change notices it within one poll.
        """
        with self._lock:
            return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def read(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query, under the connection's lock."""
        with self._lock:
            return self._db.execute(sql, parameters).fetchall()

    # -- plumbing ---------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if _full(error, self.path):
                    raise DiskFullError(self.path, "the task queue's database") from error
                raise


def _full(error: sqlite3.OperationalError, path: Path) -> bool:
    """SQLITE_FULL, or an I/O error on a disk with no room left (SQLite may report either)."""
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF
    if code == _SQLITE_FULL:
        return True
    if code != _SQLITE_IOERR:
        return False
    try:
        return shutil.disk_usage(path.parent).free < _NEARLY_FULL_BYTES
    except OSError:
        return False


_SQLITE_FULL, _SQLITE_IOERR = 13, 10
_NEARLY_FULL_BYTES = 1 << 20
