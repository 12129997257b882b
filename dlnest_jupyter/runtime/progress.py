"""Progress (epoch, iteration, steps per second) for the scheduler, without parsing any output.

With the planned epoch count (`args["epochs"]`, DLNest's convention, when it is an integer) and
the loader's length, a reader can estimate the time left.

The main process rewrites `_progress.json` in its package at most every `interval_s`; the
service reads it (SavePackage.progress) when it looks at the task. A rename makes each write atomic; no fsync: a
progress figure lost in a crash costs nothing.

The rate is the steps of the last `RATE_WINDOW_S` seconds over their time, not of the few
steps since the previous write: that jumped between 3.6/s and 294/s on identical runs as a
write happened to land after one step or after many. `epoch_s` is the mean wall time of the
whole epochs this process has run (validation and saving included): one epoch's time swung
the estimate on a busy machine (41 s left at 29 s, 17 s at 91 s of a 114 s run). Readers
estimate the time left from it, and only once one epoch has ended, so the first estimate is
not a guess from warm-up. The file is removed when a run starts: a continue must not show the
last run's rate and estimate before its own first step.

With a GPU, each write also carries the process's GPU memory by card, now and at its peak
(`memory_mb`, `peak_memory_mb`); DDP ranks other than 0 write theirs to files of their own,
which `SavePackage.progress` merges.
"""

from __future__ import annotations

import collections
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.package import PROGRESS_FILE

RATE_WINDOW_S = 10.0


class ProgressFile:
    def __init__(
        self,
        folder: Path,
        interval_s: float = 0.5,
        epochs: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        memory: Callable[[], dict[str, Any]] | None = None,
        name: str = PROGRESS_FILE,
        ranks: int = 1,
    ) -> None:
        """`memory`: the process's GPU memory figures, written with each progress
        (`gpu_memory.py`); `name`: a DDP rank other than 0 writes a file of its own
        (`core/package.py` RANK_PROGRESS), whose count rank 0 writes as `ranks`."""
        self.path = folder / name
        self.memory = memory
        self.ranks = ranks
        self.interval_s = interval_s
        self.epochs = epochs  # planned, when known
        self.steps_per_epoch: int | None = None  # the loader's length, when it has one
        self._clock = clock
        self._last_write = float("-inf")
        self._steps = 0  # in this process
        self._position = (0, 0)
        # (time, steps so far) at each write: the window's oldest entry gives the rate.
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._epoch_began: tuple[int, float] | None = None  # (epoch, its first step's time)
        self._first_epoch_began: float | None = None
        self._epochs_done = 0  # whole epochs of this process
        self._epoch_s: float | None = None
        self.path.unlink(missing_ok=True)  # the last run's figures are not this run's

    def __call__(self, epoch: int, iteration: int) -> None:
        """Called once per training step; cheap unless a write is due or an epoch begins."""
        now = self._clock()
        self._steps += 1
        if not self._samples:
            self._samples.append((now, self._steps))  # the first step's end starts the clock
        self._position = (epoch, iteration)
        if self._epoch_began is None or self._epoch_began[0] != epoch:
            if self._epoch_began is None:
                self._first_epoch_began = now
            else:
                self._epochs_done += 1
                self._epoch_s = (now - (self._first_epoch_began or now)) / self._epochs_done
            self._epoch_began = (epoch, now)
        if now - self._last_write >= self.interval_s:
            self._write(epoch, iteration, now)

    def flush(self) -> None:
        """Write the newest position now (at the end of an epoch, and of the run); a run that
        took no step yet writes its memory figures, if it has any."""
        if self._samples or (self.memory is not None and self.memory()):
            self._write(*self._position, self._clock())

    def steps_per_s(self, now: float) -> float | None:
        """Steps per second over the last RATE_WINDOW_S (None until some time has passed)."""
        if not self._samples:
            return None
        while len(self._samples) > 1 and now - self._samples[1][0] >= RATE_WINDOW_S:
            self._samples.popleft()  # keep one sample at or before the window's start
        since, steps = self._samples[0]
        elapsed = now - since
        return (self._steps - steps) / elapsed if elapsed > 0 else None

    def _write(self, epoch: int, iteration: int, now: float) -> None:
        stepped = self._steps > 0  # else only its memory is news: no "epoch 0 step 0"
        record = {
            "epoch": epoch if stepped else None,
            "iter": iteration if stepped else None,
            "steps_per_s": self.steps_per_s(now),
            "rate_window_s": RATE_WINDOW_S,
            "epoch_s": self._epoch_s,
            "updated_at": time.time(),
            "epochs": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "steps": self._steps,  # of this process: its warm-up (core/memory_policy.py)
            **(self.memory() if self.memory is not None else {}),
        }
        if self.ranks > 1:
            record["ranks"] = self.ranks
        self._samples.append((now, self._steps))
        temp = self.path.with_name(f".{PROGRESS_FILE}.{os.getpid()}.tmp")
        try:
            temp.write_text(json.dumps(record))
            os.replace(temp, self.path)
        except OSError:
            # Progress is only shown, never needed: a full disk must not end a run here, but at
            # its next checkpoint, whose error says which file and which checkpoint still loads.
            temp.unlink(missing_ok=True)
            return
        self._last_write = now
