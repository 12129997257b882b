"""Build a service with the defaults embedded mode and the server extension share."""

from __future__ import annotations

import os
from pathlib import Path

from jupyter_core.paths import jupyter_data_dir

from ..core.box_ledger import BOX_LEDGER_ENV, BoxLedger
from ..core.devices import DeviceSource, FakeSource, parse_fake_gpus, source_from_env
from ..core.errors import ConfigError
from ..core.store import TaskStore
from .kernels.private_host import PrivateAnalyzerHost
from .launch.backend import Backend, BackendParts, LocalBackend
from .launch.executor import Executor
from .service import DLNestService
from .submissions import DEFAULT_SCRIPTS_DIR

RAY_ADDRESS_ENV = "DLNEST_RAY_ADDRESS"


def default_database_path() -> Path:
    """`<jupyter data dir>/dlnest/dlnest.sqlite`: one queue per user, shared by all their servers."""
    return Path(jupyter_data_dir()) / "dlnest" / "dlnest.sqlite"


def build_service(
    database: Path | str | None = None,
    fake_gpus: str | None = None,
    zygote: bool = True,
    tick_interval_s: float = 1.0,
    analyzers: bool = False,
    scripts_dir: str = DEFAULT_SCRIPTS_DIR,
    executor: Executor | None = None,
    devices: DeviceSource | None = None,
    box_ledger: Path | str | None = None,
    label: str | None = None,
    ray_address: str | None = None,
    backend: Backend | None = None,
) -> DLNestService:
    """A service over `database`; `fake_gpus` ("4x16384") overrides `devices`, DLNEST_FAKE_GPUS
    and NVML.

    Where tasks run (`service/launch/backend.py`): a Ray cluster when `ray_address` (or
    DLNEST_RAY_ADDRESS) names one, else `backend`, else this machine's processes, started by
    `executor` (default: forked from a pre-warmed zygote unless `zygote` is false). A cluster
    keeps its own books and runs its own executor, so a backend, an executor or a box ledger
    beside an address is refused rather than silently ignored.

    `analyzers`: run analyzer kernels under a kernel manager of the service's own (embedded
    mode); the server extension gives its service the server's kernel manager instead.

    `box_ledger`: the folder of the machine-wide GPU ledger that every user's scheduler on this
    box shares (`core/box_ledger.py`); unset: DLNEST_BOX_LEDGER, else none. `label`: how users
    are told which service schedules the queue.
    """
    address = ray_address or os.environ.get(RAY_ADDRESS_ENV) or None
    box_folder = box_ledger or os.environ.get(BOX_LEDGER_ENV) or None
    backend = _chosen_backend(address, backend, executor, box_folder)
    if fake_gpus is not None:
        devices = FakeSource(parse_fake_gpus(fake_gpus))
    store = TaskStore(database or default_database_path())
    parts = backend.build(store, zygote)
    box = parts.box
    if box is None and box_folder:
        box = BoxLedger(box_folder, store.path)
    service = DLNestService(
        store,
        parts.devices or (devices if devices is not None else source_from_env()),
        parts.executor,
        tick_interval_s,
        scripts_dir=scripts_dir,
        box=box,
        label=label,
        kernels=parts.kernels,
    )
    if analyzers:
        service.attach_analyzers(PrivateAnalyzerHost())
    return service


def _chosen_backend(
    address: str | None,
    backend: Backend | None,
    executor: Executor | None,
    box_folder: Path | str | None,
) -> Backend:
    if address is None:
        if backend is not None:
            return backend
        return _GivenExecutor(executor) if executor is not None else LocalBackend()
    clashes = [
        what
        for what, given in (
            ("a backend of its own (backend_class)", backend is not None),
            ("an executor of its own (executor_class)", executor is not None),
            ("a box ledger (box_ledger_path, DLNEST_BOX_LEDGER)", box_folder is not None),
        )
        if given
    ]
    if clashes:
        raise ConfigError(
            f"a Ray cluster is configured ({address}), which runs tasks with its own executor "
            f"and keeps every server's reservations itself; {' and '.join(clashes)} cannot "
            "apply there: configure one or the other",
            key="ray_address",
        )
    from ..cluster.backend import RayBackend  # the `ray` extra: imported only here

    return RayBackend(address)


class _GivenExecutor(Backend):
    """An executor made by the caller (tests, benchmarks, the server's executor_class)."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def build(self, store: TaskStore, zygote: bool) -> BackendParts:
        return BackendParts(self.executor)
