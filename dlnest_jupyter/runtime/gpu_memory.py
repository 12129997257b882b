"""What a training process holds on each card it answers for, now and at its peak, in MiB.

On a real card: the CUDA caching allocator's reserved memory (`memory_reserved`, and
`max_memory_reserved` for the peak: what the process really holds from the allocator, cached
blocks included, as nvidia-smi shows them) plus the process's CUDA context, which the
allocator does not see. The context is measured once, as NVML's per-process `usedGpuMemory`
less what the allocator held at that moment; where NVML cannot say (no per-process figures
under WDDM, host PIDs in a container) `CONTEXT_FALLBACK_MB` stands for it.

On a pretend card (placed on a GPU where this process has no CUDA: `DLNEST_FAKE_GPUS`, a
CPU-only torch) the figure is the merged config's `fake_gpu_memory_mb`, so that measuring,
learning and guarding memory run end to end without a GPU.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core import atomic_io
from .devices import DevicePlan
from .session import Session

FAKE_MEMORY_KEY = "fake_gpu_memory_mb"
# A CUDA 12 context with cuBLAS and cuDNN loaded holds about 300-600 MiB on recent cards.
CONTEXT_FALLBACK_MB = 400
_MIB = 1 << 20


class GpuMemory:
    def __init__(self, plan: DevicePlan, args: Mapping[str, Any]) -> None:
        self.cards = dict(plan.own_cards)
        self.warning: str | None = None  # for the run's output, printed once
        fake = args.get(FAKE_MEMORY_KEY, 0)
        if isinstance(fake, bool) or not isinstance(fake, int) or fake < 0:
            self.warning = (
                f"dlnest: warning: {FAKE_MEMORY_KEY} must be a whole number of MiB, not "
                f"{fake!r}; pretend cards report 0"
            )
            fake = 0
        self.fake_mb = fake
        self._context_mb: dict[int, int] = {}

    def figures(self) -> dict[str, dict[str, int]]:
        """`{"memory_mb": {card: now}, "peak_memory_mb": {card: peak}}`, cards by physical id
        as strings (JSON keys); empty on the CPU."""
        if not self.cards:
            return {}
        now, peak = {}, {}
        for card, index in self.cards.items():
            if index is None:
                now[str(card)] = peak[str(card)] = self.fake_mb
                continue
            import torch  # only a process on a real card gets here

            context = self._context(card, index)
            now[str(card)] = torch.cuda.memory_reserved(index) // _MIB + context
            peak[str(card)] = torch.cuda.max_memory_reserved(index) // _MIB + context
        return {"memory_mb": now, "peak_memory_mb": peak}

    def guard(self, cap_mb_by_card: Mapping[int, int]) -> None:
        """Cap the allocator on each card at `cap_mb_by_card` (the guard): a run that outgrows
        its share fails itself with CUDA's out-of-memory error instead of its neighbours. On
        a pretend card, a `fake_gpu_memory_mb` over the cap fails the same way, at once."""
        import torch

        for card, index in self.cards.items():
            cap = cap_mb_by_card.get(card)
            if cap is None:
                continue
            if index is None:
                if self.fake_mb > cap:
                    raise torch.cuda.OutOfMemoryError(
                        f"CUDA out of memory on pretend GPU {card}: {self.fake_mb:,} MiB "
                        f"({FAKE_MEMORY_KEY}) is over the guard's cap of {cap:,} MiB"
                    )
                continue
            total_mb = torch.cuda.get_device_properties(index).total_memory // _MIB
            torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total_mb), index)

    def _context(self, card: int, index: int) -> int:
        if card not in self._context_mb:
            import torch

            if not torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
                return CONTEXT_FALLBACK_MB  # asked again once the run has touched the card
            used = _nvml_used_mb(card)
            held = torch.cuda.memory_reserved(index) // _MIB
            self._context_mb[card] = (
                max(0, used - held) if used is not None else CONTEXT_FALLBACK_MB
            )
        return self._context_mb[card]


def _nvml_used_mb(card: int) -> int | None:
    """NVML's figure for this process on `card` (NVML counts cards in PCI order, as the
    runtime asks CUDA to), or None where the driver does not give one."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(card)
            for process in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if process.pid == os.getpid() and process.usedGpuMemory is not None:
                    return int(process.usedGpuMemory) // _MIB
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no NVML here, or it cannot say: the fallback stands
        return None
    return None


def gpu_memory(session: Session, plan: DevicePlan | None = None) -> GpuMemory:
    """The memory of the session's cards (or `plan`'s), its config's mistake (if any) said
    once in its output."""
    memory = GpuMemory(plan or session.devices, session.args)
    if memory.warning is not None:
        print(memory.warning, file=sys.stderr)
    return memory


def report_in_background(memory: GpuMemory, path: Path, interval_s: float = 1.0) -> None:
    """Keep `path` holding this process's memory over its cards, now and at its peak, from a
    daemon thread: an analyzer kernel's, whose memory grows with each experiment and which
    writes no progress. Rewritten (by rename, no fsync) when the figures change."""
    if not memory.cards:
        return

    def report() -> None:
        last: dict[str, int] | None = None
        while True:
            with contextlib.suppress(Exception):  # a figure or a write failing must not end it
                figures = memory.figures()
                totals = {key: sum(by_card.values()) for key, by_card in figures.items()}
                if totals != last:
                    atomic_io.write_json(path, totals, durable=False)
                    last = totals
            time.sleep(interval_s)

    threading.Thread(target=report, name="dlnest-memory-report", daemon=True).start()


def out_of_memory(error: BaseException) -> bool:
    """CUDA's allocator ran out (or the guard's cap was hit), whatever the user code wrapped it in."""
    while error is not None:
        import torch

        if isinstance(error, torch.cuda.OutOfMemoryError) or "CUDA out of memory" in str(error):
            return True
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return False
