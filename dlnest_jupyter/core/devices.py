"""What devices this machine has, as frozen snapshots: NVML GPUs, fake GPUs for tests, and the CPU.

Every NVML call goes through `NvmlSource._query`, which never raises into callers: no driver, no
library or a broken card all mean "no GPUs" (or that card missing), with the reason kept for the
user. The CPU is always device -1. Fake GPUs come from `DLNEST_FAKE_GPUS`:

    DLNEST_FAKE_GPUS="4x16384"                  four 16 GiB cards
    DLNEST_FAKE_GPUS="2x24576,1x8192"           mixed sizes
    DLNEST_FAKE_GPUS_FOREIGN_MB="0=2048,3=512"  memory used on cards by processes that are not ours
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import ConfigError

CPU_ID = -1
FAKE_GPUS_ENV = "DLNEST_FAKE_GPUS"
FAKE_FOREIGN_ENV = "DLNEST_FAKE_GPUS_FOREIGN_MB"
_MIB = 2**20


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    used_memory_mb: int


@dataclass(frozen=True)
class GpuSnapshot:
    id: int
    name: str
    memory_total_mb: int
    memory_used_mb: int  # all processes, ours included, as the driver sees it
    utilization_pct: int | None
    processes: tuple[GpuProcess, ...] | None  # None where the driver will not list them
    node: str | None = None  # on a cluster: the machine holding the card ("boxA")
    index: int | None = None  # on a cluster: the card's index on its machine (its CUDA index)

    def foreign_memory_mb(self, our_pids: frozenset[int], our_reserved_mb: int) -> int:
        """Memory used on this card by processes that are not our tasks."""
        if self.processes is not None:
            return sum(p.used_memory_mb for p in self.processes if p.pid not in our_pids)
        # Without a process list, whatever exceeds our reservations is someone else's.
        return max(0, self.memory_used_mb - our_reserved_mb)


@dataclass(frozen=True)
class InventorySnapshot:
    gpus: tuple[GpuSnapshot, ...]
    source: str  # "nvml" | "fake" | "none"
    reason: str | None = None  # why there are no GPUs, when there are none
    taken_at: float = field(default_factory=time.time)
    # The devices could not be read now (a cluster's head unreachable): nothing can be said of
    # what would fit, so submissions are queued rather than refused.
    unavailable: bool = False
    local_node: str | None = None  # on a cluster: the node this server runs on

    def gpu(self, gpu_id: int) -> GpuSnapshot | None:
        return next((g for g in self.gpus if g.id == gpu_id), None)

    @property
    def device_ids(self) -> tuple[int, ...]:
        return (*(g.id for g in self.gpus), CPU_ID)


class DeviceSource(Protocol):
    def snapshot(self) -> InventorySnapshot: ...


@dataclass
class FakeSource:
    """GPUs that exist only on paper; tests change `foreign_mb` to simulate other users."""

    totals_mb: tuple[int, ...]
    foreign_mb: dict[int, int] = field(default_factory=dict)

    def snapshot(self) -> InventorySnapshot:
        gpus = tuple(
            GpuSnapshot(
                id=i,
                name=f"Fake GPU {i}",
                memory_total_mb=total,
                memory_used_mb=self.foreign_mb.get(i, 0),
                utilization_pct=0,
                processes=(GpuProcess(pid=-1, used_memory_mb=self.foreign_mb[i]),)
                if self.foreign_mb.get(i)
                else (),
            )
            for i, total in enumerate(self.totals_mb)
        )
        return InventorySnapshot(gpus=gpus, source="fake")


class NvmlSource:
    """Real GPUs through nvidia-ml-py; initialised on first use, never raising."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._reason: str | None = None

    def snapshot(self) -> InventorySnapshot:
        if not self._ready():
            return InventorySnapshot(gpus=(), source="none", reason=self._reason)
        nvml = self._nvml
        count = self._query(nvml.nvmlDeviceGetCount, default=0)
        gpus = tuple(g for g in (self._gpu(i) for i in range(count)) if g is not None)
        return InventorySnapshot(
            gpus=gpus, source="nvml", reason=None if gpus else "NVML reports no usable GPU"
        )

    def _ready(self) -> bool:
        if self._nvml is not None:
            return True
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception as exc:  # ImportError, or any NVMLError: no library, no driver
            self._reason = f"NVML unavailable: {exc}"
            return False
        self._nvml = pynvml
        return True

    def _gpu(self, index: int) -> GpuSnapshot | None:
        nvml = self._nvml
        handle = self._query(nvml.nvmlDeviceGetHandleByIndex, index)
        memory = self._query(nvml.nvmlDeviceGetMemoryInfo, handle) if handle is not None else None
        if memory is None:
            return None  # a card that fails its queries is left out, and retried next snapshot
        name = self._query(nvml.nvmlDeviceGetName, handle, default=f"GPU {index}")
        utilization = self._query(nvml.nvmlDeviceGetUtilizationRates, handle)
        processes = self._query(nvml.nvmlDeviceGetComputeRunningProcesses, handle)
        return GpuSnapshot(
            id=index,
            name=name.decode() if isinstance(name, bytes) else str(name),
            memory_total_mb=int(memory.total // _MIB),
            memory_used_mb=int(memory.used // _MIB),
            utilization_pct=int(utilization.gpu) if utilization is not None else None,
            processes=None
            if processes is None
            else tuple(
                GpuProcess(int(p.pid), int((p.usedGpuMemory or 0) // _MIB)) for p in processes
            ),
        )

    def _query(self, function: Callable[..., Any], *args: Any, default: Any = None) -> Any:
        try:
            return function(*args)
        except Exception:  # the one choke point: a failing NVML call is a missing value
            return default


def source_from_env(env: Mapping[str, str] | None = None) -> DeviceSource:
    """Fake GPUs if `DLNEST_FAKE_GPUS` is set, else NVML (which may find none)."""
    env = os.environ if env is None else env
    spec = env.get(FAKE_GPUS_ENV)
    if spec is None or not spec.strip():
        return NvmlSource()
    return FakeSource(parse_fake_gpus(spec), parse_foreign_mb(env.get(FAKE_FOREIGN_ENV, "")))


def parse_fake_gpus(spec: str) -> tuple[int, ...]:
    """ "4x16384" or "2x24576,1x8192" -> card sizes in MiB; "0" means no GPUs."""
    if spec.strip() == "0":
        return ()
    totals: list[int] = []
    for part in spec.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", part)
        if not match or int(match.group(2)) <= 0:
            raise ConfigError(
                f"{FAKE_GPUS_ENV}={spec!r}: expected COUNTxMIB[,COUNTxMIB...], e.g. 4x16384",
                key=FAKE_GPUS_ENV,
            )
        totals += [int(match.group(2))] * int(match.group(1))
    return tuple(totals)


def parse_foreign_mb(spec: str) -> dict[int, int]:
    """ "0=2048,3=512" -> {0: 2048, 3: 512}."""
    foreign: dict[int, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        match = re.fullmatch(r"(\d+)\s*=\s*(\d+)", part)
        if not match:
            raise ConfigError(
                f"{FAKE_FOREIGN_ENV}={spec!r}: expected GPU=MIB[,GPU=MIB...]", key=FAKE_FOREIGN_ENV
            )
        foreign[int(match.group(1))] = int(match.group(2))
    return foreign
