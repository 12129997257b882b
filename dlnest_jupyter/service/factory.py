"""Build a service with the defaults embedded mode and the server extension share."""

from __future__ import annotations

import os
from pathlib import Path

from jupyter_core.paths import jupyter_data_dir

from ..core.box_ledger import BOX_LEDGER_ENV, BoxLedger, Ledger
from ..core.devices import DeviceSource, FakeSource, parse_fake_gpus, source_from_env
from ..core.store import TaskStore
from .executor import Executor, LocalExecutor
from .private_analyzers import PrivateAnalyzerHost
from .service import DEFAULT_SCRIPTS_DIR, DLNestService

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
) -> DLNestService:
    """A service over `database`; `fake_gpus` ("4x16384") overrides `devices`, DLNEST_FAKE_GPUS
    and NVML. `executor`: what starts training tasks (default: local processes, forked from a
    pre-warmed zygote unless `zygote` is false).

    `analyzers`: run analyzer kernels under a kernel manager of the service's own (embedded
    mode); the server extension gives its service the server's kernel manager instead.

    `box_ledger`: the folder of the machine-wide GPU ledger that every user's scheduler on this
    box shares (`core/box_ledger.py`); unset: DLNEST_BOX_LEDGER, else none. `label`: how users
    are told which service schedules the queue.
    """
    if fake_gpus is not None:
        devices = FakeSource(parse_fake_gpus(fake_gpus))
    store = TaskStore(database or default_database_path())
    box_folder = box_ledger or os.environ.get(BOX_LEDGER_ENV) or None
    box: Ledger | None = BoxLedger(box_folder, store.path) if box_folder else None
    address = ray_address or os.environ.get(RAY_ADDRESS_ENV) or None
    kernels = None
    if address is not None:
        from ..cluster.ray_executor import build_cluster  # the `ray` extra: imported only here

        cluster_executor, devices, box = build_cluster(address, store, zygote)
        executor, kernels = cluster_executor, cluster_executor.kernels
    service = DLNestService(
        store,
        devices if devices is not None else source_from_env(),
        executor if executor is not None else LocalExecutor(zygote=zygote),
        tick_interval_s,
        scripts_dir=scripts_dir,
        box=box,
        label=label,
        kernels=kernels,
    )
    if analyzers:
        service.attach_analyzers(PrivateAnalyzerHost())
    return service
