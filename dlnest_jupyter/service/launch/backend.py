"""Where tasks run: the one setting that chooses it, and what each choice builds.

A backend makes the executor that starts, watches and stops tasks (`executor.Executor`), and
may bring the devices those tasks are placed on, the ledger of other schedulers' reservations
and a wrapper for analyzer kernels. This machine's processes are `LocalBackend`; a Ray cluster
is `cluster/backend.py`'s `RayBackend`, which `ray_address` chooses; a third plugs in through
`DLNestApp.backend_class`, as jupyter-scheduler's `scheduler_class` does.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass

from ...core.box_ledger import Ledger
from ...core.devices import DeviceSource
from ...core.store import TaskStore
from .executor import Executor, LocalExecutor


@dataclass(frozen=True)
class BackendParts:
    executor: Executor
    devices: DeviceSource | None = None  # None: fake_gpus, DLNEST_FAKE_GPUS or NVML
    box: Ledger | None = None  # None: the box ledger setting, if any
    kernels: Callable[[Executor], Executor] | None = None  # what analyzer kernels start through


class Backend(abc.ABC):
    """Builds what runs a service's tasks, once, when the service is made."""

    @abc.abstractmethod
    def build(self, store: TaskStore, zygote: bool) -> BackendParts:
        """The parts for a service over `store`; `zygote`: start tasks from a warm process."""


class LocalBackend(Backend):
    """Tasks as processes of this machine, started by `executor_class(zygote=...)`."""

    def __init__(self, executor_class: type[Executor] = LocalExecutor) -> None:
        self.executor_class = executor_class

    def build(self, store: TaskStore, zygote: bool) -> BackendParts:
        # Executors take their own keywords; `zygote` is the one every executor_class takes.
        return BackendParts(self.executor_class(zygote=zygote))  # type: ignore[call-arg]
