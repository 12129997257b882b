"""Which service schedules a queue: the one holding the queue's scheduler lease.

Every service (each Jupyter server, each embedded scheduler) on a queue takes part: all accept
submissions, deletes and settings, and serve reads; only the lease holder places, launches,
re-adopts and reaps. The lease is an `flock` the operating system drops when its holder dies
(`core/lease.py`), so the next service to try takes over at once, with no timeout to tune.

Files beside the database `<db>`: `<db>.scheduler` (the lease) and `<db>.services/<id>.lock`
(each live service's presence, which tells whether the service that claimed a task, and owns its
analyzer kernel, is still alive).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from ..core.lease import Lease, Presence
from ..core.store import TaskStore

log = logging.getLogger(__name__)


class Leadership:
    def __init__(self, store: TaskStore, label: str | None = None) -> None:
        """`label`: how users know this service ("Jupyter server at http://..."); see `describe`."""
        self.store = store
        self.label = label or f"in-process scheduler of process {os.getpid()}"
        self._lease = Lease(Path(f"{store.path}.scheduler"))
        self.presence = Presence(Path(f"{store.path}.services"))
        self.since: float | None = None
        # The scheduler thread tries for the lease outside the service's tick lock; two threads
        # trying at once would each open the file, and the loser would think another service leads.
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        return self.presence.id

    @property
    def leading(self) -> bool:
        return self._lease.held

    def lead(self) -> bool:
        """Take the lease if it is free; True while this service schedules the queue."""
        if self._lease.held:
            return True
        with self._lock:
            if self._lease.held:
                return True
            self.presence.enter()
            if not self._lease.try_acquire():
                return False
            self.since = time.time()
            self.store.set_leader(self._record())
            self.presence.sweep()
        log.info("dlnest: %s schedules the queue %s now", self.label, self.store.path)
        return True

    def owner_alive(self, owner: str | None) -> bool:
        """Whether the service that claimed a task still runs (None: claimed before leases)."""
        return owner is not None and self.presence.is_alive(owner)

    def answers_for(self, owner: str | None) -> bool:
        """Whether this service may act on a task `owner` claimed: it is ours, or its owner is
        gone. (A kernel is followed and stopped by the service that started it while it lives.)"""
        return owner == self.id or not self.owner_alive(owner)

    def describe(self) -> dict[str, Any]:
        """`GET scheduler`: who schedules this queue, and whether it is this service."""
        leader = self.store.leader()
        if leader is not None and not self.owner_alive(leader.get("id")):
            leader = None  # it died; the next service to try takes over within a poll
        return {
            "leader": leader,
            "this_service": {"id": self.id, "label": self.label, "leading": self.leading},
            "queue": str(self.store.path),
        }

    def close(self) -> None:
        """Step down: another service takes the lease at its next try."""
        with self._lock:
            if self._lease.held:
                leader = self.store.leader()
                if leader is not None and leader.get("id") == self.id:
                    try:
                        self.store.set_leader(None)
                    except Exception:  # a full queue disk must not keep us from stepping down
                        log.exception("dlnest: could not clear the scheduler record")
                self._lease.release()
                self.since = None
            self.presence.leave()

    def _record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": self.since,
        }
