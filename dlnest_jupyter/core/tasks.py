"""Tasks: their kinds and states, the transitions allowed between them, and the record the store keeps.

What each kind means (its request fields, how it is queued) is the table in
`service/task_kinds.py`; here a kind is a name and what runs it (`RUNNERS`), which the client
and dashboard need as much as the service. Experiments and analyzers have states of
their own, named here so every layer (the REST replies, the magics, the dashboard) spells them
the same way.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from .errors import TaskStateError
from .placement_values import Demand, Reservation


class TaskKind(enum.StrEnum):
    TRAIN = "train"
    CONTINUE = "continue"
    ANALYZE = "analyze"


class Runner(enum.Enum):
    """What runs a task of a kind: every layer asks this, not the kind's name."""

    PROCESS = "process"  # a training process, from the service's executor; writes its package
    KERNEL = "kernel"  # an IPython kernel holding the loaded model; only reads its package


RUNNERS: Mapping[TaskKind, Runner] = MappingProxyType(
    {
        TaskKind.TRAIN: Runner.PROCESS,
        TaskKind.CONTINUE: Runner.PROCESS,
        TaskKind.ANALYZE: Runner.KERNEL,
    }
)


def runs_in_kernel(kind: str) -> bool:
    """True for analyzers; false for training kinds and for a kind this version does not know."""
    runner = RUNNERS.get(kind)  # type: ignore[call-overload]  # a StrEnum key matches its str
    return runner is Runner.KERNEL


class TaskState(enum.StrEnum):
    QUEUED = "queued"
    # Claimed by a scheduler, which holds its devices and is launching it: claimed in the same
    # write that moves it here, so a task is launched once even by two racing schedulers.
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # A sweep's trial its pruner stopped early (service/sweeps): its checkpoints are kept.
    PRUNED = "pruned"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def holds_devices(self) -> bool:
        """Starting and running tasks hold their reservations."""
        return self in _HOLDING


class ExperimentState(enum.StrEnum):
    QUEUED = "queued"  # sent while its analyzer loads: it runs once the model is loaded
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    @property
    def terminal(self) -> bool:
        return self not in (ExperimentState.QUEUED, ExperimentState.RUNNING)


class AnalyzerState(enum.StrEnum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    ENDED = "ended"


_EMPTY: Mapping[Any, Any] = MappingProxyType({})
_TERMINAL = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.PRUNED}
)
_HOLDING = frozenset({TaskState.STARTING, TaskState.RUNNING})
_ALLOWED = {
    TaskState.QUEUED: frozenset({TaskState.STARTING, TaskState.CANCELLED, TaskState.FAILED}),
    # Back to queued: its claimant died before it could launch it.
    TaskState.STARTING: frozenset(
        {TaskState.RUNNING, TaskState.FAILED, TaskState.CANCELLED, TaskState.QUEUED}
    ),
    TaskState.RUNNING: frozenset(
        {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.PRUNED}
    ),
}


def check_transition(task_id: int, current: TaskState, wanted: TaskState) -> None:
    """Raise TaskStateError unless a task may go from `current` to `wanted`."""
    if wanted not in _ALLOWED.get(current, frozenset()):
        raise TaskStateError(task_id, current.value, wanted.value)


# In a launched task's spec, never stored (`launched_with`): the scheduler placed it on pretend
# cards (DLNEST_FAKE_GPUS), so its run reports its config's `fake_gpu_memory_mb` as its GPU
# memory; with the guard on, the cap of its allocator on each card (core/memory_policy.py).
PRETEND_GPUS = "pretend_gpus"
MEMORY_CAP_MB = "memory_cap_mb"
# In a task's spec: its memory fingerprint (core/memory_fingerprint.py), under which its run's
# peak is remembered, and, submitted without -m, what earlier runs of it taught: the MiB it
# reserves (their peak + the margin; for -DDP, each rank's) and how many runs that came from.
# A -DDP retry after running out of memory keeps its number of ranks (`LEARNED_RANKS`); a -DDP
# run learned from history has one rank, as a -DDP run without -m always had (90% of a card).
FINGERPRINT = "memory_fingerprint"
LEARNED_MB = "learned_mb"
LEARNED_RUNS = "learned_runs"
LEARNED_RANKS = "learned_ranks"
# In a sweep's trial's spec (and its package's `_task.json`): `{"id", "trial", "params"}`, its
# sweep, its trial number and the values set in its config (service/sweeps).
SWEEP = "sweep"
OOM_RETRIES_USED = "oom_retries_used"  # a retry after running out of GPU memory: how many so far


class TaskRecord(NamedTuple):
    """One task as stored. A NamedTuple, not a dataclass: listing 10,000 of them must be cheap."""

    id: int
    kind: TaskKind
    state: TaskState
    spec_json: str  # what the kind's submission stored (service/task_kinds.py), parsed on access
    position: float  # queue order: lower starts first
    description: str = ""
    package_path: str | None = None
    memory_mb: int | None = None
    reserved_mb: Mapping[int, int] = _EMPTY  # device id -> MiB, while running
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    pid: int | None = None
    pid_start_time: float | None = None  # tells a re-used pid from ours after a restart
    exit_code: int | None = None
    error: str | None = None
    output_tail: str | None = None
    progress: Mapping[str, Any] = _EMPTY
    output_start: int = 0  # byte offset of this task's first output in the package's _output.txt
    kernel_id: str | None = None  # analyzers: the kernel holding the loaded model
    owner: str | None = None  # the service that claimed it (analyzer kernels stay with it)
    waiting_for: str | None = None  # why the last placement pass left it queued
    memory_note: str | None = None  # how its reservation last followed its use (memory_policy)
    memory_over: bool = False  # its use went past its reservation at some point

    @property
    def spec(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.spec_json)
        return parsed

    @property
    def devices(self) -> tuple[int, ...]:
        return tuple(self.reserved_mb)

    def demand(self) -> Demand:
        return demand_of(self.id, self.memory_mb, self.spec, self.created_at)

    def reservation(self) -> Reservation:
        return Reservation(
            self.id, dict(self.reserved_mb), started_at=self.started_at or 0.0, pid=self.pid
        )

    def launched_with(self, marks: Mapping[str, Any]) -> TaskRecord:
        """This task as launched, with the scheduler's `marks` (`PRETEND_GPUS`,
        `MEMORY_CAP_MB`) in its spec; the stored spec stays as it was."""
        return self._replace(spec_json=json.dumps({**self.spec, **marks})) if marks else self

    @property
    def memory_source(self) -> str:
        """Where its reservation comes from: its -m, earlier runs of it, or 90% of a card."""
        return _memory_source(self.memory_mb, self.spec)

    @property
    def peak_memory_mb(self) -> int | None:
        """The most GPU memory the run held, summed over its cards, as it last reported."""
        peaks = self.progress.get("peak_memory_mb")
        if not isinstance(peaks, dict) or not peaks:
            return None
        whole = [mb for mb in peaks.values() if isinstance(mb, int) and not isinstance(mb, bool)]
        return sum(whole) if whole else None

    def to_json(self) -> dict[str, Any]:
        """The REST contract's TASK object (DESIGN.md section 6)."""
        spec = self.spec
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state.value,
            "description": self.description,
            "package_path": self.package_path,
            "devices": list(self.devices),
            "memory_mb": self.memory_mb,
            "cpu": bool(spec.get("cpu")),  # asked for the CPU (-CPU): reserves no GPU
            # What it holds (the default, 90% of a card, included) while it holds anything.
            "reserved_mb": sum(self.reserved_mb.values()) if self.state.holds_devices else None,
            # What the run used at its peak, over every card it ran on (null until measured),
            # and where its reservation came from: its -m ("given"), earlier runs of its job
            # ("learned"), or 90% of a card ("default").
            "peak_memory_mb": self.peak_memory_mb,
            "memory_source": _memory_source(self.memory_mb, spec),  # the spec parsed once
            "memory_learned_mb": spec.get(LEARNED_MB),
            "memory_learned_runs": spec.get(LEARNED_RUNS),
            "memory_note": self.memory_note,
            "memory_over": self.memory_over,
            "waiting_for": self.waiting_for if self.state is TaskState.QUEUED else None,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "exit_code": self.exit_code,
            "error": self.error,
            "kernel_id": self.kernel_id,
            "scripts_dir": spec.get("scripts_dir"),  # only analyzers store one
            "sweep": spec.get(SWEEP),  # a sweep's trial: {"id", "trial", "params"}
            "progress": {
                "epoch": self.progress.get("epoch"),
                "iter": self.progress.get("iter"),
                **self.progress,
            },
        }


def demand_of(
    task_id: int, memory_mb: int | None, spec: Mapping[str, Any], queued_at: float = 0.0
) -> Demand:
    """What placement needs of a task with this `-m` and spec: its `-m`, else what its job
    taught (for -DDP each rank's figure, times its ranks), else the default."""
    ddp = bool(spec.get("ddp"))
    learned = spec.get(LEARNED_MB) if memory_mb is None else None
    rank_mb = learned if ddp and isinstance(learned, int) else None
    if rank_mb is not None:
        ranks = spec.get(LEARNED_RANKS)
        learned = rank_mb * (ranks if isinstance(ranks, int) and ranks > 0 else 1)
    return Demand(
        task_id=task_id,
        memory_mb=memory_mb if memory_mb is not None else learned,
        cpu=bool(spec.get("cpu")),
        multi_gpu=bool(spec.get("multi_gpu")),
        ddp=ddp,
        rank_mb=rank_mb,
        queued_at=queued_at,
    )


def _memory_source(memory_mb: int | None, spec: Mapping[str, Any]) -> str:
    if memory_mb is not None:
        return "given"
    return "learned" if spec.get(LEARNED_MB) is not None else "default"
