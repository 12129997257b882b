"""What a running task is doing, shared by the runner, dataset and life cycle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CPU, GPU, MULTI_GPU, DDP = "CPU", "GPU", "GPUs", "DDP"


@dataclass
class RunningStatus:
    """DLNest's RunningStatus: epoch and iteration, phase, environment and rank."""

    env: str = CPU  # "CPU" | "GPU" | "GPUs" | "DDP"
    rank: int = -1  # -1 outside DDP
    worldSize: int = 1
    epoch: int = 0
    iter: int = 0
    status: str = "Waiting"  # "Training" | "Validating" | "Analyzing" | "Waiting"
    device: Any = None  # the torch.device modules and batches go to

    @property
    def is_main_process(self) -> bool:
        return self.rank <= 0
