"""Build a service with the defaults embedded mode and the server extension share."""

from __future__ import annotations

from pathlib import Path

from jupyter_core.paths import jupyter_data_dir

from ..core.devices import DeviceSource, FakeSource, parse_fake_gpus, source_from_env
from ..core.store import TaskStore
from .executor import Executor, LocalExecutor
from .private_analyzers import PrivateAnalyzerHost
from .service import DEFAULT_SCRIPTS_DIR, DLNestService


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
) -> DLNestService:
    """A service over `database`; `fake_gpus` ("4x16384") overrides `devices`, DLNEST_FAKE_GPUS
    and NVML. `executor`: what starts training tasks (default: local processes, forked from a
    pre-warmed zygote unless `zygote` is false).

    `analyzers`: run analyzer kernels under a kernel manager of the service's own (embedded
    mode); the server extension gives its service the server's kernel manager instead.
    """
    if fake_gpus is not None:
        devices = FakeSource(parse_fake_gpus(fake_gpus))
    store = TaskStore(database or default_database_path())
    service = DLNestService(
        store,
        devices if devices is not None else source_from_env(),
        executor if executor is not None else LocalExecutor(zygote=zygote),
        tick_interval_s,
        scripts_dir=scripts_dir,
    )
    if analyzers:
        service.attach_analyzers(PrivateAnalyzerHost())
    return service
