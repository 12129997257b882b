"""What the analyzer host keeps for each analyzer kernel it started: `AnalyzerRecord`.

Apart from host.py because more than the host reads it: the message router (messages.py) and
the tests fill and inspect these fields, and the record changes when what is followed per kernel
changes, not when how the host drives its kernel manager does.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ...core.tasks import AnalyzerState
from .experiments import Experiment


@dataclass
class AnalyzerRecord:
    task_id: int
    kernel_id: str
    pid: int  # the kernel's process at the last load: a new one means the kernel restarted
    card: int | None = None  # the GPU it was placed on (None: the CPU)
    package_path: str | None = None  # where its kernel reports its GPU memory
    session_id: str | None = None
    client: Any = None  # an AsyncKernelClient once the kernel is ready
    state: AnalyzerState = AnalyzerState.LOADING
    error: str | None = None
    loads: int = 0  # 1 after the first load; a restart loads the package again
    pending: dict[str, Experiment] = field(default_factory=dict)  # execute msg_id -> experiment
    ends: dict[str, set[str]] = field(default_factory=dict)  # msg_id -> ends seen (reply, idle)
    # Experiments sent while the model loads, with their code: sent to the kernel once loaded.
    waiting: list[tuple[Experiment, str]] = field(default_factory=list)
    listener: asyncio.Future[None] | None = None  # routes IOPub messages while ready
    # The kernel's own word (busy / idle), whoever's code it runs: a notebook attached to it
    # keeps it busy without any experiment of ours.
    execution_state: str = "idle"
    shutting_down: bool = False
