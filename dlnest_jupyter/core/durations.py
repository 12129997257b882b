"""How far a run is and how long it has left, from the progress it reports: what the dashboard
shows as its bar and ETA, and what the scheduler backfills by (its expected end).

A run knows its planned epochs (`args["epochs"]`), its epoch and step, and, once one whole epoch
has ended in this launch, the mean time of its epochs (`epoch_s`, runtime/progress.py). Until
then its time left is unknown here; the scheduler then falls back on how long earlier runs of
its job took (core/memory_history.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard


def fraction_done(progress: Mapping[str, Any]) -> float | None:
    """How far a training run is, 0 to 1, when its epoch count is known."""
    epochs, epoch = progress.get("epochs"), progress.get("epoch")
    if not _whole(epochs) or not _whole(epoch) or epochs <= 0:
        return None
    steps, step = progress.get("steps_per_epoch"), progress.get("iter")
    within = (step + 1) / steps if _whole(steps) and steps > 0 and _whole(step) else 0
    return min(1.0, max(0.0, (epoch - 1 + min(within, 1.0)) / epochs))


def progress_label(progress: Mapping[str, Any]) -> str:
    """'epoch 2 step 5/23': where a run is, as the magics and the dashboard say it. The step is
    counted from 1 (a run reports its 0-based `iter`: a finished epoch of 23 read 'step 22'), out
    of the epoch's steps when its loader has a length."""
    epoch, step = progress.get("epoch"), progress.get("iter")
    if epoch is None:
        return ""
    if not _whole(step):
        return f"epoch {epoch}"
    steps = progress.get("steps_per_epoch")
    return f"epoch {epoch} step {step + 1}" + (f"/{steps}" if _whole(steps) and steps > 0 else "")


def seconds_left(progress: Mapping[str, Any]) -> float | None:
    """The epochs left times the mean time of its epochs; None until one epoch has ended in
    this launch (an estimate from the first seconds, warm-up and all, read 40 s for a 3-second
    task)."""
    done = fraction_done(progress)
    epoch_s, epochs = progress.get("epoch_s"), progress.get("epochs")
    if done is None or not _number(epoch_s) or not _whole(epochs):
        return None
    return float(epoch_s) * epochs * (1 - done)


def expected_end(
    progress: Mapping[str, Any], started_at: float | None, history_s: float | None, now: float
) -> float | None:
    """When a running task should end: by its own pace, else by its job's earlier runs (not
    before now), else unknown."""
    left = seconds_left(progress)
    if left is not None:
        return now + left
    if history_s is not None and started_at is not None:
        return max(now, started_at + history_s)
    return None


def _whole(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value
