"""The scheduling loop: a thread that runs the scheduler's pass, and the lock that makes a pass
and a delete exclusive.

A pass runs every `tick_interval_s`, at once when another service writes to the queue (a
submission to another server, a delete of our analyzer: SQLite's data version moves), at once
when this service takes the queue's lease from a scheduler that died, and at once when woken
(`wake`: a submission whose reply does not wait for its launch).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

from ..core.store import TaskStore
from ..core.tasks import TaskRecord
from .leadership import Leadership
from .scheduler import Scheduler

log = logging.getLogger(__name__)
# How often the thread looks for writes by other services: a PRAGMA, microseconds each.
POLL_INTERVAL_S = 0.05


class SchedulingLoop:
    def __init__(
        self,
        scheduler: Scheduler,
        store: TaskStore,
        leadership: Leadership,
        tick_interval_s: float = 1.0,
    ) -> None:
        self.scheduler, self.store, self.leadership = scheduler, store, leadership
        self.tick_interval_s = tick_interval_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._woken = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def wake(self) -> None:
        """Make the thread run a pass now, rather than at its next poll or interval."""
        self._woken.set()

    def tick(self, now: float | None = None) -> list[TaskRecord]:
        """Notice ended tasks, then start every queued task that fits (if this service holds
        the queue's lease); returns those started."""
        with self._lock:
            return self.scheduler.tick(time.time() if now is None else now)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No pass of ours starts or finishes a task while this is held."""
        with self._lock:
            yield

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="dlnest-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and step down from the queue's lease."""
        self._stop.set()
        self._woken.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            self.scheduler.close()

    def _run(self) -> None:
        seen, next_tick = None, 0.0
        while not self._stop.is_set():
            try:
                version = self.store.data_version()
                # A leader's death frees the lease: a follower tries for it on every poll.
                took_over = not self.leadership.leading and self.leadership.lead()
                # Cleared only when seen set: a wake after this check is seen next time round.
                woken = self._woken.is_set()
                if woken:
                    self._woken.clear()
                if version != seen or time.monotonic() >= next_tick or took_over or woken:
                    seen, next_tick = version, time.monotonic() + self.tick_interval_s
                    self.tick()
            except Exception:  # the scheduler thread must outlive any one bad tick
                log.exception("dlnest scheduler tick failed")
                next_tick = time.monotonic() + self.tick_interval_s
            self._woken.wait(POLL_INTERVAL_S)
