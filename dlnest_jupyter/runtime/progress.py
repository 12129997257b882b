"""Progress (epoch, iteration, steps per second) for the scheduler, without parsing any output.

With the planned epoch count (`args["epochs"]`, DLNest's convention, when it is an integer) and
the loader's length, a reader can estimate the time left.

The main process rewrites `_progress.json` in its package at most every `interval_s`; the
service reads it (SavePackage.progress) when it looks at the task. A rename makes each write atomic; no fsync: a
progress figure lost in a crash costs nothing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..core.package import PROGRESS_FILE


class ProgressFile:
    def __init__(self, folder: Path, interval_s: float = 0.5, epochs: int | None = None) -> None:
        self.path = folder / PROGRESS_FILE
        self.interval_s = interval_s
        self.epochs = epochs  # planned, when known
        self.steps_per_epoch: int | None = None  # the loader's length, when it has one
        self._last_write = float("-inf")
        self._steps_since = 0
        self._position = (0, 0)

    def __call__(self, epoch: int, iteration: int) -> None:
        """Called once per training step; cheap unless a write is due."""
        self._steps_since += 1
        self._position = (epoch, iteration)
        now = time.monotonic()
        if now - self._last_write >= self.interval_s:
            self._write(epoch, iteration, now)

    def flush(self) -> None:
        """Write the newest position now (at the end of an epoch)."""
        if self._steps_since:
            self._write(*self._position, time.monotonic())

    def _write(self, epoch: int, iteration: int, now: float) -> None:
        elapsed = now - self._last_write
        rate = self._steps_since / elapsed if elapsed != float("inf") and elapsed > 0 else None
        record = {
            "epoch": epoch,
            "iter": iteration,
            "steps_per_s": rate,
            "updated_at": time.time(),
            "epochs": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
        }
        temp = self.path.with_name(f".{PROGRESS_FILE}.{os.getpid()}.tmp")
        try:
            temp.write_text(json.dumps(record))
            os.replace(temp, self.path)
        except OSError:
            # Progress is only shown, never needed: a full disk must not end a run here, but at
            # its next checkpoint, whose error says which file and which checkpoint still loads.
            temp.unlink(missing_ok=True)
            return
        self._last_write, self._steps_since = now, 0
