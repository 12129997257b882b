"""Embedded mode's analyzers: a kernel manager of the service's own, on a loop of its own.

Without a Jupyter server (plain IPython, VS Code, nbclient, the `dlnest` scripts), analyzer
kernels run under a private `AsyncMultiKernelManager`. Both it and its event loop are made when
the first analyzer starts, so a service that never analyzes owns no loop and no sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from ...core.tasks import TaskRecord
from ..launch.executor import Launch
from .host import AnalyzerHost, finish_pending
from .kernel_processes import KERNEL_NAME


class PrivateAnalyzerHost(AnalyzerHost):
    """Analyzers attachable through their connection files, listed by no server, ending with
    this process's service (and, through JPY_PARENT_PID, with this process)."""

    ended_with = "the process whose in-process scheduler ran it"

    def __init__(self, kernel_name: str = KERNEL_NAME) -> None:
        super().__init__(None, None, kernel_name=kernel_name)  # type: ignore[arg-type]
        self._thread: threading.Thread | None = None

    def start(self, task: TaskRecord, device_ids: tuple[int, ...]) -> Launch:
        with self._lock:
            if self._loop is None:
                self._loop, self._thread, self._kernel_manager = _private_kernel_manager()
        return super().start(task, device_ids)

    def close(self) -> None:
        if self._loop is None:
            return
        with self._lock:
            analyzers = list(self._analyzers.values())
        for analyzer in analyzers:
            with contextlib.suppress(Exception):
                self._run(self._shut_down(analyzer), 30)
        with contextlib.suppress(Exception):
            self._run(self.kernel_manager.shutdown_all(now=True), 30)
        with contextlib.suppress(Exception):
            self._run(finish_pending(), 30)
        self.kernel_manager.context.destroy(linger=0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(30)
        self._loop.close()
        self._loop = self._thread = self._kernel_manager = None


def _private_kernel_manager() -> tuple[asyncio.AbstractEventLoop, threading.Thread, Any]:
    from jupyter_client.multikernelmanager import AsyncMultiKernelManager

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="dlnest-analyzers", daemon=True)
    thread.start()

    async def make() -> Any:
        return AsyncMultiKernelManager()

    return loop, thread, asyncio.run_coroutine_threadsafe(make(), loop).result(30)
