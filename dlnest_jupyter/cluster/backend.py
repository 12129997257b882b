"""The Ray backend: a service whose GPU tasks run on a Ray cluster's nodes (`ray_address`)."""

from __future__ import annotations

from ..core.store import TaskStore
from ..service.launch.backend import Backend, BackendParts
from .ray_executor import build_cluster


class RayBackend(Backend):
    def __init__(self, address: str) -> None:
        self.address = address

    def build(self, store: TaskStore, zygote: bool) -> BackendParts:
        executor, devices, ledger = build_cluster(self.address, store, zygote)
        return BackendParts(executor, devices, ledger, executor.kernels)
