"""`TrainRequest`: what one training run is asked to do (kind, devices, checkpoint, overrides).

Apart from train.py so that ddp.py, which train.py imports to launch the ranks, can name it
without an import cycle; the task entry and the CLI build one from their own inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrainRequest:
    kind: str  # "train" | "continue"
    device_ids: tuple[int, ...] = (-1,)
    checkpoint_id: int | None = None  # continue from this id (-1: the branch head); None: fresh
    ddp: bool = False
    memory_mb: int | None = None
    echo: bool = False  # also show the output on this process's terminal
    # A continue's config changes (core/continuation.py), laid over args.json when it starts.
    overrides: Mapping[str, Any] | None = None
    freq_path: str | None = None  # where the overrides came from, for the launch record
    # Placed on pretend cards (DLNEST_FAKE_GPUS): the run reports its config's
    # `fake_gpu_memory_mb` as its GPU memory (runtime/gpu_memory.py), wherever it runs.
    pretend_gpus: bool = False
    # What the scheduler reserved on each card, and with the guard on, the cap of the run's
    # allocator there (its reservation plus the margin): runtime/gpu_memory.py.
    reserved_mb: Mapping[int, int] | None = None
    memory_cap_mb: Mapping[int, int] | None = None
