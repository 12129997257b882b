"""Which torch device a task runs on, and moving batches there."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..core.devices import CPU_ID
from .status import CPU, DDP, GPU, MULTI_GPU


@dataclass(frozen=True)
class DevicePlan:
    env: str
    device: torch.device
    gpu_ids: tuple[int, ...]  # physical ids as placed; () on the CPU
    warning: str | None = None  # for the task's output: why it does not run where it was placed
    # The cards this process answers for, by physical id -> its cuda index (a DDP rank: its own
    # card only); on pretend cards (placed on a GPU, no CUDA here) the index is None.
    own_cards: dict[int, int | None] = field(default_factory=dict)


def plan_devices(
    device_ids: Sequence[int], ddp: bool = False, rank: int = 0, pretend: bool = False
) -> DevicePlan:
    """Turn placed device ids (-1 is the CPU) into a torch device.

    A task placed on a GPU where CUDA is unavailable (fake GPUs in tests, a CPU-only torch)
    runs on the CPU with a warning (on the plan, for the caller to print once), rather than failing. Under DDP, rank r takes the r-th
    placed device; a DDP run on the CPU (`-devices -1 -1`) uses one CPU process per entry.
    `pretend`: the cards are pretend ones (DLNEST_FAKE_GPUS), whose memory the run only
    pretends to use (`own_cards` without cuda indices), wherever it runs.
    """
    cpu_env = DDP if ddp else CPU
    gpu_ids = tuple(i for i in device_ids if i != CPU_ID)
    if not gpu_ids:
        return DevicePlan(cpu_env, torch.device("cpu"), ())
    if not torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        # Before CUDA starts, narrowing visibility makes the placed cards cuda:0..n-1.
        os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpu_ids))
        index = rank if ddp else 0
        indices = {card: i for i, card in reversed(list(enumerate(gpu_ids)))}
    else:
        index = gpu_ids[rank] if ddp else gpu_ids[0]
        indices = {card: card for card in gpu_ids}
    own = (gpu_ids[rank],) if ddp else gpu_ids
    if not torch.cuda.is_available():
        cards = ", ".join(map(str, gpu_ids))
        warning = (  # pretend cards are meant to be so: that is a note, not a warning
            f"dlnest: on pretend GPU {cards} (DLNEST_FAKE_GPUS): training on the CPU"
            if pretend
            else f"dlnest: warning: placed on GPU {cards} but CUDA is not available in this "
            "process; running on the CPU"
        )
        unreachable: dict[int, int | None] = dict.fromkeys(own)
        return DevicePlan(cpu_env, torch.device("cpu"), (), warning, unreachable)
    env = DDP if ddp else (GPU if len(gpu_ids) == 1 else MULTI_GPU)
    own_cards = {card: None if pretend else indices[card] for card in own}
    return DevicePlan(env, torch.device("cuda", index), gpu_ids, own_cards=own_cards)


def default_device_ids(cpu: bool) -> list[int]:
    """The CLI's default when no devices are given: GPU 0 if CUDA works, else the CPU."""
    return [CPU_ID] if cpu or not torch.cuda.is_available() else [0]


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Move tensors in a batch of any nesting (lists, tuples, named tuples, dicts) to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return type(batch)({k: move_to_device(v, device) for k, v in batch.items()})  # type: ignore[call-arg]
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(move_to_device(v, device) for v in batch))
    if isinstance(batch, list | tuple):
        return type(batch)(move_to_device(v, device) for v in batch)
    mover = getattr(batch, "to", None)
    if callable(mover):  # batch objects such as torch_geometric's Data
        return mover(device)
    return batch
