"""The jupyter_server extension: traits, the API's one handler, and the scheduler's lifetime.

Enabled on install by `labextension_config/jupyter_server_config.d/dlnest_jupyter.json`.
The service ticks on a thread of its own, as in embedded mode; at shutdown scheduling stops but
tasks keep running, and the next server re-adopts them. Which executor starts training tasks and
where devices come from are `Type` traits, so another executor (a cluster's) plugs in by
configuration.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Integer, List, Type, Unicode

from ..core.server_env import TOKEN_ENV, URL_ENV
from ..service.api import DEFAULT_MAX_BODY_BYTES, Api
from ..service.factory import build_service
from ..service.kernels.host import AnalyzerHost
from ..service.launch.backend import Backend, LocalBackend
from ..service.launch.executor import Executor, LocalExecutor
from ..service.service import DLNestService
from ..service.submissions import DEFAULT_SCRIPTS_DIR
from .handlers import ROUTES


class DLNestApp(ExtensionApp):
    name = "dlnest_jupyter"

    database_path = Unicode(
        "",
        help="SQLite file of the task queue and settings; empty: <jupyter data dir>/dlnest/dlnest.sqlite.",
    ).tag(config=True)
    fake_gpus = Unicode(
        None,
        allow_none=True,
        help='Pretend GPUs for tests and demos, as COUNTxMIB ("4x16384"); unset: NVML, or DLNEST_FAKE_GPUS.',
    ).tag(config=True)
    tick_interval_s = Float(1.0, help="Seconds between two scheduler passes.").tag(config=True)
    allowed_roots = List(
        Unicode(),
        help="Folders whose paths requests may name (configs, packages, new projects); "
        "empty: the server's root_dir only.",
    ).tag(config=True)
    zygote = Bool(
        True, help="Start tasks by forking a pre-warmed process (milliseconds, not seconds)."
    ).tag(config=True)
    scripts_dir = Unicode(
        DEFAULT_SCRIPTS_DIR,
        help="Where runExp finds an analyzer's scripts when `analyze` names no folder: relative "
        "to the package's project folder (DLNest's AnalyzeScripts), or an absolute path.",
    ).tag(config=True)
    max_body_bytes = Integer(
        DEFAULT_MAX_BODY_BYTES, help="Largest request body accepted, in bytes."
    ).tag(config=True)
    executor_class = Type(
        LocalExecutor,
        klass=Executor,
        help="What starts, watches and stops training tasks on this machine (a subclass of "
        "service/launch/executor.py's Executor), called as executor_class(zygote=<the zygote "
        "setting>). Not with ray_address: the cluster's executor runs tasks there.",
    ).tag(config=True)
    backend_class = Type(
        None,
        klass=Backend,
        allow_none=True,
        help="Where tasks run, for a backend of one's own (a subclass of service/launch/backend.py's "
        "Backend, called with no arguments); unset: this machine (executor_class), or the Ray "
        "cluster that ray_address names.",
    ).tag(config=True)
    box_ledger_path = Unicode(
        "",
        help="A folder every user of this machine may write (mode 1777, e.g. "
        "/var/lib/dlnest/box) holding the machine-wide GPU ledger, so several users' servers never "
        "reserve one card's memory twice; empty: DLNEST_BOX_LEDGER, else this queue's own ledger only.",
    ).tag(config=True)
    ray_address = Unicode(
        "",
        help="A Ray cluster (the head's HOST:PORT) to run GPU tasks on, shared with other "
        "users' servers: its nodes' cards are the devices (see README, Several machines); empty: "
        "DLNEST_RAY_ADDRESS, else this machine only. Needs the ray extra.",
    ).tag(config=True)
    device_source_class = Type(
        None,
        klass=object,
        allow_none=True,
        help="Where the devices come from (core/devices.py's DeviceSource), called with no "
        "arguments; unset: fake_gpus, else DLNEST_FAKE_GPUS, else NVML.",
    ).tag(config=True)

    _exported_token: str | None = None

    @property
    def service(self) -> DLNestService:
        service: DLNestService = self.settings["dlnest_service"]
        return service

    def initialize_settings(self) -> None:
        assert self.serverapp is not None, "initialize_settings runs inside a server"
        root_dir = Path(self.serverapp.root_dir).resolve()
        roots = [Path(r).expanduser().resolve() for r in self.allowed_roots] or [root_dir]
        # Built by the factory, so that a Ray address beside either is refused, not ignored.
        # Type traits are typed loosely; `klass` has checked what each class is.
        backend: Backend | None = None
        if self.backend_class is not None:
            backend = self.backend_class()  # type: ignore[abstract]
        elif self.executor_class is not LocalExecutor:
            backend = LocalBackend(self.executor_class)  # type: ignore[type-abstract]
        devices: Any = (
            self.device_source_class()
            if self.device_source_class is not None and self.fake_gpus is None
            else None
        )
        service = build_service(
            self.database_path or None,
            self.fake_gpus,
            zygote=self.zygote,
            tick_interval_s=self.tick_interval_s,
            scripts_dir=self.scripts_dir,
            backend=backend,
            devices=devices,
            box_ledger=self.box_ledger_path or None,
            ray_address=self.ray_address or None,
        )
        self.settings.update(
            dlnest_service=service,
            dlnest_api=Api(service, root_dir, roots, self.max_body_bytes),
            # A password-only server has no token to hand its kernels: they get this key
            # instead, which opens /dlnest/api/ and nothing else (handlers.DLNestHandler).
            dlnest_kernel_key=secrets.token_urlsafe(32),
        )

    def initialize_handlers(self) -> None:
        self.handlers.extend(ROUTES)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        if not serverapp.sock:  # kernels started from now on find this server (client.discovery)
            os.environ[URL_ENV] = f"http://127.0.0.1:{serverapp.port}{serverapp.base_url}"
            os.environ[TOKEN_ENV] = self._exported_token = (
                serverapp.identity_provider.token or self.settings["dlnest_kernel_key"]
            )
        # Known once the server listens: what `GET scheduler` calls this server.
        self.service.leadership.label = (
            f"Jupyter server at {serverapp.connection_url} (pid {os.getpid()})"
        )
        # Analyzers are kernels of this server: /api/kernels lists them, notebooks can attach.
        self.service.attach_analyzers(
            AnalyzerHost(
                serverapp.kernel_manager, asyncio.get_running_loop(), serverapp.session_manager
            )
        )
        self.service.start()

    async def stop_extension(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.service.stop)
        if self._exported_token is not None and os.environ.get(TOKEN_ENV) == self._exported_token:
            os.environ.pop(URL_ENV, None)
            os.environ.pop(TOKEN_ENV, None)

    def current_activity(self) -> bool:
        """Running tasks count as activity, so an idle-shutdown never stops live work."""
        return bool(self.service.store.running())
