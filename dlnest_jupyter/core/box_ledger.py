"""One machine-wide ledger of GPU reservations, shared by every user's scheduler on the box.

Each user's Jupyter server has its own queue and runs its tasks as that user. Without this, a
task reserved on a card but not yet allocated is invisible to another user's scheduler, which
places its own task there, and both run out of memory (DLNest's "tasks stacked on one GPU",
across users).

The ledger is a folder every user may write, with the sticky bit (mode 1777, like /tmp):
- each scheduler writes its reservations to a file of its own, `<uid>-<queue>.json`, which the
  sticky bit lets no other user replace or delete: every user adds and removes only their own
  rows, and the file's owner, not its content, says whose rows they are. (One shared SQLite
  file cannot do that: anyone who may write it may write every row.)
- placing takes an exclusive `flock` on `<folder>/.lock` (opened read-only, so every user can
  lock it) across read, decide, claim and publish: two users' concurrent placements are
  serialised, and neither can reserve what the other just took;
- a row names its task's process (or, before the launch, the scheduler's), by pid and start
  time; a row whose process is gone is dropped by whoever reads it, and rewritten away by its
  owner at the next publish.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from . import atomic_io, processes
from .errors import ConfigError
from .placement_values import Reservation

BOX_LEDGER_ENV = "DLNEST_BOX_LEDGER"
_LOCK_NAME = ".lock"


@dataclass(frozen=True)
class OtherReservation:
    """A reservation of another scheduler on this box (another user's, or another queue's)."""

    user: str
    task_id: int
    memory_mb_by_device: dict[int, int]
    pid: int | None

    def reservation(self) -> Reservation:
        # Negative ids: never one of our task ids.
        return Reservation(-1 - self.task_id, self.memory_mb_by_device, pid=self.pid)


class Ledger(Protocol):
    """Where a scheduler finds other schedulers' reservations and shows its own: this box's
    ledger, or a cluster's (`cluster/ray_executor.py`)."""

    def locked(self) -> contextlib.AbstractContextManager[list[OtherReservation]]:
        """Held across a placement pass and its claims; yields the others' live reservations."""

    def others(self) -> list[OtherReservation]: ...

    def publish(self, holding: Sequence[dict[str, Any]]) -> None: ...


class BoxLedger:
    def __init__(self, folder: Path | str, queue_path: Path | str) -> None:
        self.folder = Path(folder).expanduser()
        queue = hashlib.sha256(str(Path(queue_path).resolve()).encode()).hexdigest()[:12]
        self.own_file = self.folder / f"{os.getuid()}-{queue}.json"
        self._published: str | None = None
        self._lock_fd: int | None = None
        _prepare_folder(self.folder)

    @contextlib.contextmanager
    def locked(self) -> Iterator[list[OtherReservation]]:
        """Hold the box's placement lock; yields the other schedulers' live reservations."""
        fd = os.open(self.folder / _LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_fd = fd
            yield self.others()
        finally:
            self._lock_fd = None
            os.close(fd)

    def others(self) -> list[OtherReservation]:
        """Live reservations in every file but ours (a file's owner names the user)."""
        found: list[OtherReservation] = []
        for path in self.folder.glob("*.json"):
            if path == self.own_file:
                continue
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                found += _live_rows(path)
        return found

    def publish(self, holding: Sequence[dict[str, Any]]) -> None:
        """Replace our rows with `holding` (see `row`); takes the lock unless it is held."""
        text = atomic_io.json_text({"rows": sorted(holding, key=lambda r: r["task_id"])})
        if text == self._published:
            return
        if self._lock_fd is None:
            with self.locked():
                self._write(text)
        else:
            self._write(text)

    def _write(self, text: str) -> None:
        with atomic_io.atomic_writer(self.own_file, "w", durable=False) as handle:
            handle.write(text)
        self._published = text


def row(
    task_id: int,
    memory_mb_by_device: dict[int, int],
    pid: int | None,
    pid_start_time: float | None,
) -> dict[str, Any]:
    """One reservation as published: the task's process, or this scheduler before the launch."""
    holder = pid if pid is not None else os.getpid()
    started = pid_start_time if pid is not None else processes.start_time(os.getpid())
    return {
        "task_id": task_id,
        "memory_mb": {str(k): v for k, v in memory_mb_by_device.items()},
        "pid": holder,
        "pid_start_time": started,
    }


def _live_rows(path: Path) -> list[OtherReservation]:
    with open(path, encoding="utf-8") as handle:
        owner = os.fstat(handle.fileno()).st_uid
        rows = json.load(handle)["rows"]
    user = _user_name(owner)
    live = []
    for entry in rows:
        pid, started = int(entry["pid"]), entry.get("pid_start_time")
        if not processes.is_alive(pid, None if started is None else float(started)):
            continue  # its process is gone: the reservation is void
        memory = {int(k): int(v) for k, v in entry["memory_mb"].items()}
        live.append(OtherReservation(user, int(entry["task_id"]), memory, pid))
    return live


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _prepare_folder(folder: Path) -> None:
    """Make the folder (sticky, writable by all) and its lock file, if nobody has yet."""
    try:
        if not folder.exists():
            folder.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(PermissionError):  # someone else made it meanwhile
                os.chmod(folder, 0o1777)
        lock = folder / _LOCK_NAME
        if not lock.exists():
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            os.close(fd)
            with contextlib.suppress(PermissionError):
                os.chmod(lock, 0o644)
        # A real write, not os.access: that one ignores what the process may do beyond its
        # real uid, and can say no where a write would work.
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise ConfigError(
            f"cannot use it as the box-wide GPU ledger ({error.strerror or error}); it must be a "
            "folder every user of the box may write, mode 1777",
            file=folder,
            key=BOX_LEDGER_ENV,
        ) from error
