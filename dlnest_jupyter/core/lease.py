"""Leases the operating system releases when their holder dies: exclusive `flock`s on files.

One queue has one scheduler: the service holding the queue's scheduler lease (a file beside the
database). Each service also holds a presence lease of its own, so others can tell whether the
service that claimed a task (and owns its analyzer kernel) is still alive. A holder killed with
SIGKILL loses both at once; nobody waits out a timeout or trusts a heartbeat.

`flock` locks belong to an open file description, not to a process: two services in one process
exclude each other as two processes do. The descriptors are close-on-exec, so neither training
processes nor kernels inherit a lease and outlive the service holding it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from pathlib import Path


class Lease:
    """An exclusive, non-blocking `flock` on `path`, held until `release` or the holder's death."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; True when this object holds it now."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the last descriptor of the description drops the lock

    def __del__(self) -> None:
        # A holder dropped without `release` (a service never stopped) lets go when collected,
        # as a dead process does, rather than keeping its queue unscheduled for this process's life.
        self.release()


class Presence:
    """A service's sign of life: `<folder>/<id>.lock`, locked for as long as the service lives."""

    def __init__(self, folder: Path, service_id: str | None = None) -> None:
        self.folder = folder
        self.id = service_id or uuid.uuid4().hex[:12]
        self._lease = Lease(folder / f"{self.id}.lock")

    def enter(self) -> None:
        """Lock a new file under a temporary name, then rename it into place: a file visible
        under a service's name is locked from its first instant, so nobody takes the service
        for dead (and deletes its file) while it starts."""
        if self._lease.held:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        starting = Lease(self.folder / f".{self.id}.starting")
        if not starting.try_acquire():
            raise RuntimeError(f"{starting.path} is locked by another service with this id")
        os.replace(starting.path, self._lease.path)
        starting.path = self._lease.path
        self._lease = starting

    def leave(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            if self._lease.held:
                self._lease.path.unlink()
        self._lease.release()

    def sweep(self) -> None:
        """Remove the files of services that died without leaving (SIGKILL, a power cut)."""
        for path in self.folder.glob("*.lock"):
            if path.stem != self.id:
                is_present(self.folder, path.stem)

    def is_alive(self, service_id: str) -> bool:
        """Whether the service `service_id` (of this folder) is alive; ours always is."""
        if service_id == self.id:
            return self._lease.held
        return is_present(self.folder, service_id)


def is_present(folder: Path, service_id: str) -> bool:
    """Whether a live service holds `<folder>/<service_id>.lock`; a dead one's file is removed."""
    if not service_id or "/" in service_id or service_id.startswith("."):
        return False
    path = folder / f"{service_id}.lock"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # its holder is gone: tidy up after it
        return False
    finally:
        os.close(fd)
