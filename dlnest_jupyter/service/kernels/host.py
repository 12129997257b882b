"""Analyzer kernels: started, watched and stopped through a Jupyter kernel manager.

In the server the kernel manager is the server's own (so `/api/kernels` lists analyzers and a
notebook can attach); embedded, a private one (service/kernels/private_host.py).
Kernel managers live on an asyncio loop; the scheduler ticks on other threads, so every call
crosses over with `run_coroutine_threadsafe`. This module never imports torch: the kernel does
the loading (runtime/analyzer_kernel.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
from collections.abc import Collection, Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from ...core import processes
from ...core.analyzer_protocol import STATUS_EXPRESSION
from ...core.devices import CPU_ID
from ...core.package import SavePackage
from ...core.tasks import AnalyzerState, ExperimentState, TaskRecord
from ..launch.executor import Executor, Launch
from .analyzer_record import AnalyzerRecord
from .experiments import Experiment, ExperimentBook
from .kernel_processes import KERNEL_NAME, kernel_ids, kernel_pid, start_kernel
from .kernel_sessions import name_session
from .load_and_farewell import LOAD_TIMEOUT_S, farewell_text, say_farewell, user_expression
from .messages import listen

log = logging.getLogger(__name__)
T = TypeVar("T")
START_TIMEOUT_S = 120.0


_LIVE = (AnalyzerState.LOADING, AnalyzerState.READY)  # a failed load shuts its kernel itself


class AnalyzerHost(Executor):
    ended_with = "the Jupyter server that ran it"  # what took an earlier service's kernels along

    def __init__(
        self,
        kernel_manager: Any,
        loop: asyncio.AbstractEventLoop,
        session_manager: Any = None,
        kernel_name: str = KERNEL_NAME,
    ) -> None:
        """Analyzers under a server's kernel manager, on the server's loop; the server shuts them."""
        self._kernel_manager: Any = kernel_manager
        self._loop: asyncio.AbstractEventLoop | None = loop
        self.session_manager, self.kernel_name = session_manager, kernel_name
        self.experiments = ExperimentBook()
        self._analyzers: dict[int, AnalyzerRecord] = {}
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()  # what `_spawn` runs on the loop now

    @property
    def kernel_manager(self) -> Any:
        return self._kernel_manager

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "no analyzer has started yet"
        return self._loop

    # -- the executor side (scheduler threads) ----------------------------------------------
    def start(self, task: TaskRecord, device_ids: tuple[int, ...]) -> Launch:
        """Start the kernel (it loads the package on its own) and return at once."""
        kernel_id = self._run(
            start_kernel(self.kernel_manager, self.kernel_name, task, device_ids), START_TIMEOUT_S
        )
        pid = kernel_pid(self.kernel_manager, kernel_id) or 0
        cards = [d for d in device_ids if d != CPU_ID]  # one at most: analyzers take one card
        analyzer = AnalyzerRecord(
            task.id,
            kernel_id,
            pid,
            card=cards[0] if cards else None,
            package_path=task.package_path,
        )
        with self._lock:
            self._analyzers[task.id] = analyzer
        self._spawn(self._load(analyzer, task), analyzer, "load")
        return Launch(pid, processes.start_time(pid) if pid else None, kernel_id=kernel_id)

    def exit_code(self, task: TaskRecord) -> int | None:
        with self._lock:
            analyzer = self._analyzers.get(task.id)
        if analyzer is None:  # started by an earlier server: its kernels ended with it
            return 1
        if analyzer.state is AnalyzerState.FAILED:
            return 1 if analyzer.kernel_id not in kernel_ids(self.kernel_manager) else None
        if analyzer.kernel_id in kernel_ids(self.kernel_manager):
            pid = kernel_pid(self.kernel_manager, analyzer.kernel_id)
            if analyzer.state is AnalyzerState.READY and pid is not None and pid != analyzer.pid:
                # Restarted from JupyterLab (or by the server's restarter after a crash): the
                # kernel's startup line loads the package again; follow that load.
                with self._lock:
                    analyzer.state, analyzer.pid = AnalyzerState.LOADING, pid
                self._spawn(self._reload(analyzer), analyzer, "reload")
            return None
        # Shut down from JupyterLab, or `exit` outside our guard: the analysis ended.
        if analyzer.state is not AnalyzerState.ENDED:
            analyzer.state = AnalyzerState.ENDED
            self._spawn(self._shut_down(analyzer), analyzer, "shutdown")
        return 0

    def end_reason(self, task: TaskRecord, code: int) -> str:
        with self._lock:
            analyzer = self._analyzers.get(task.id)
        if analyzer is None:
            return f"its analyzer kernel ended with {self.ended_with}"
        return analyzer.error or f"its kernel {analyzer.kernel_id} ended"

    def stop(self, task: TaskRecord) -> None:
        with self._lock:
            analyzer = self._analyzers.get(task.id)
        if analyzer is not None:
            self._spawn(
                self._shut_down(analyzer, farewell=farewell_text(task)), analyzer, "shutdown"
            )

    def adopt(self, task: TaskRecord, claimed_at: float) -> tuple[int, float | None] | None:
        return None  # a kernel dies with the server that started it: nothing to adopt

    def close(self) -> None:
        """Close our clients of the kernels; the server shuts the kernels down itself (see
        PrivateAnalyzerHost for a host that must). A client left open warns of its sockets
        wherever it is collected."""
        if self._loop is None or self._loop.is_closed():
            return
        with contextlib.suppress(Exception):  # a loop that no longer runs took them along
            self._run(self._release_clients(), 30)

    async def _release_clients(self) -> None:
        """Let what this host runs on the loop end (its shutdowns: cancelling one midway made
        the kernel manager's own shutdown of it fail), cancelling after 10 s what is left (a
        load still waiting for its kernel, which then closes the client it made); then close
        the clients. A loop torn down under either warns wherever it is collected."""
        await finish_pending(set(self._tasks))
        with self._lock:
            analyzers = list(self._analyzers.values())
        for analyzer in analyzers:
            if analyzer.listener is not None:
                analyzer.listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await analyzer.listener
            if analyzer.client is not None:
                analyzer.client.stop_channels()

    # -- analyzer state ---------------------------------------------------------------------
    def live_task_ids(self) -> list[int]:
        """The tasks whose kernels this host started and has not shut down."""
        with self._lock:
            return [i for i, a in self._analyzers.items() if a.state in _LIVE]

    def progress(self, task_id: int) -> dict[str, Any]:
        with self._lock:
            analyzer = self._analyzers.get(task_id)
        if analyzer is None:
            return {}
        progress = {
            "analyzer": analyzer.state,
            "experiments": self.experiments.count(task_id),
            "loads": analyzer.loads,
        }
        if analyzer.state is AnalyzerState.READY:
            progress["kernel"] = analyzer.execution_state
        if analyzer.card is not None and analyzer.package_path is not None:
            reported = SavePackage(Path(analyzer.package_path)).analyzer_memory(task_id)
            for key in ("memory_mb", "peak_memory_mb"):  # by card, as a training run's
                if isinstance(reported.get(key), int):
                    progress[key] = {str(analyzer.card): reported[key]}
        return progress

    def connection_file(self, task_id: int) -> str | None:
        with self._lock:
            analyzer = self._analyzers.get(task_id)
        if analyzer is None or analyzer.kernel_id not in kernel_ids(self.kernel_manager):
            return None
        return str(self.kernel_manager.get_kernel(analyzer.kernel_id).connection_file)

    def state(self, task_id: int) -> AnalyzerState | None:
        """The analyzer's state; None when this host never started it (an earlier server did)."""
        with self._lock:
            analyzer = self._analyzers.get(task_id)
        return None if analyzer is None else analyzer.state

    # -- experiments ------------------------------------------------------------------------
    def run(self, task_id: int, name: str, code: str) -> Experiment:
        """Send `code` to the analyzer's kernel; its output arrives in the returned experiment.

        While the model loads the experiment is queued, and sent once the load succeeded: the
        kernel would run it after its startup line anyway, but before we know the load worked.
        """
        with self._lock:
            analyzer = self._analyzers[task_id]
            if analyzer.state is AnalyzerState.LOADING:
                experiment = self.experiments.open(task_id, name, ExperimentState.QUEUED)
                analyzer.waiting.append((experiment, code))
                return experiment
        # Behind another experiment it waits in the kernel's queue: queued until the kernel
        # takes it up (its `busy`, messages.py), not "running" while another one runs.
        behind = bool(self.experiments.unfinished(task_id))
        experiment = self.experiments.open(
            task_id, name, ExperimentState.QUEUED if behind else ExperimentState.RUNNING
        )
        # Sent by the loop (the kernel client's sockets are its own) without waiting for it: the
        # experiment is on its way, and what goes wrong sending it lands in its record. Waiting
        # cost each runExp a wake-up of this thread by the loop's, in process the largest cost
        # the profile found outside the kernel; callbacks run in order, so experiments still do.
        self.loop.call_soon_threadsafe(self._send, analyzer, experiment, code)
        return experiment

    def interrupt(self, task_id: int, experiment_id: int | None = None) -> bool:
        """Interrupt what runs in the kernel; experiments still waiting for the load are dropped.

        `experiment_id`: only while that experiment runs, and once. A second click, or a second
        ■ in the cell, sent as it ends would otherwise land on the experiment run next (its
        record says running until the kernel's reply is read). Returns whether an interrupt
        went out or a waiting experiment was dropped."""
        named = None if experiment_id is None else self.experiments.get(task_id, experiment_id)
        with self._lock:
            analyzer = self._analyzers[task_id]
            loading = analyzer.state is AnalyzerState.LOADING
            if loading:
                dropped = [w for w in analyzer.waiting if named is None or w[0] is named]
                analyzer.waiting = [w for w in analyzer.waiting if w not in dropped]
        if loading:  # interrupting the kernel now would stop the load
            for experiment, _ in dropped:
                self.experiments.finish(
                    experiment, ExperimentState.INTERRUPTED, "interrupted before the model loaded"
                )
            return bool(dropped)
        if named is not None:
            with self._lock:
                if named.state is not ExperimentState.RUNNING or named.interrupt_sent:
                    return False
                named.interrupt_sent = True
        self._run(_maybe_await(self.kernel_manager.interrupt_kernel(analyzer.kernel_id)), 30)
        return True

    def change(self, experiment: Experiment, offset: int, display_offset: int) -> Future[None]:
        return self.experiments.change(experiment, offset, display_offset)

    # -- on the loop ------------------------------------------------------------------------
    async def _load(self, analyzer: AnalyzerRecord, task: TaskRecord | None = None) -> None:
        """Wait for the kernel's startup line to load the package, then route its output."""
        client, made = analyzer.client, None
        try:
            if client is None:
                client = made = self.kernel_manager.get_kernel(analyzer.kernel_id).client()
                client.start_channels()
            await client.wait_for_ready(timeout=LOAD_TIMEOUT_S)
            status = await user_expression(client, STATUS_EXPRESSION)
        except asyncio.CancelledError:  # its loop is stopping: the client made here goes too
            if made is not None and made is not analyzer.client:
                made.stop_channels()
            raise
        except Exception as error:  # the kernel died while loading, or never answered
            status = {"ok": False, "error": f"the analyzer kernel did not start: {error!r}"}
        with self._lock:
            # Shut down while it loaded (a `del`): it stays ended, and the client made here,
            # which the shutdown could not see, is closed here. (Closing it under the awaits
            # above makes jupyter_client open a new heartbeat channel.)
            ended = analyzer.state is AnalyzerState.ENDED
            if not ended:
                analyzer.client = client
        if ended:
            if client is not None and client is not analyzer.client:
                client.stop_channels()
            return
        with self._lock:
            waiting, analyzer.waiting = analyzer.waiting, []
            if status.get("ok"):
                analyzer.state, analyzer.loads = AnalyzerState.READY, analyzer.loads + 1
            else:
                analyzer.state, analyzer.error = AnalyzerState.FAILED, str(status.get("error"))
        if analyzer.state is AnalyzerState.FAILED:
            for experiment, _ in waiting:
                self.experiments.finish(
                    experiment,
                    ExperimentState.FAILED,
                    f"the analyzer failed to load: {analyzer.error}",
                )
            await self._shut_down(analyzer)
            return
        # Sent in the order they came, before anything sent from now on (no await until then);
        # each is queued in the kernel until it takes it up (its `busy`, messages.py).
        for experiment, code in waiting:
            self._send(analyzer, experiment, code)
        analyzer.listener = asyncio.ensure_future(listen(self.experiments, analyzer))
        if task is not None and self.session_manager is not None:
            analyzer.session_id = await name_session(self.session_manager, analyzer.kernel_id, task)

    async def _reload(self, analyzer: AnalyzerRecord) -> None:
        """The kernel restarted: what ran in it is gone, and its startup line loads again."""
        if analyzer.listener is not None:
            analyzer.listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await analyzer.listener
        sent, analyzer.pending, analyzer.ends = list(analyzer.pending.values()), {}, {}
        for experiment in sent:  # what waits for the reload is sent once it is done
            self.experiments.finish(
                experiment,
                ExperimentState.INTERRUPTED,
                "the analyzer's kernel restarted; its model was reloaded",
            )
        await self._load(analyzer)

    def _send(self, analyzer: AnalyzerRecord, experiment: Experiment, code: str) -> None:
        """Send an experiment to its kernel (on the loop); one that cannot be sent fails."""
        try:
            # stop_on_error=False: by default a kernel aborts the requests queued behind one that
            # failed (or was interrupted); an experiment sent just after another's error ran
            # nothing.
            message_id = analyzer.client.execute(
                code, store_history=False, allow_stdin=False, stop_on_error=False
            )
        except Exception as error:  # its kernel's channels closed under it (a shutdown)
            log.exception("analyzer %s: experiment %s not sent", analyzer.task_id, experiment.id)
            self.experiments.finish(
                experiment,
                ExperimentState.FAILED,
                f"could not send it to the analyzer's kernel {analyzer.kernel_id}: {error!r}",
            )
            return
        analyzer.pending[message_id] = experiment

    async def _shut_down(self, analyzer: AnalyzerRecord, farewell: str | None = None) -> None:
        """Shut the kernel down; `farewell`: its last output first, for a notebook or console
        attached to it, which would otherwise find its kernel gone without a word."""
        with self._lock:
            if analyzer.shutting_down:  # a `del` and the scheduler's pass both ask: once is enough
                return
            analyzer.shutting_down = True
            goodbye = farewell if analyzer.state is AnalyzerState.READY else None
            if analyzer.state is not AnalyzerState.FAILED:
                analyzer.state = AnalyzerState.ENDED
            analyzer.waiting = []
        if goodbye is not None and analyzer.client is not None:
            if analyzer.listener is not None:  # it would take the reply this waits for
                analyzer.listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await analyzer.listener
            await say_farewell(analyzer.client, goodbye)
        for experiment in self.experiments.unfinished(analyzer.task_id):
            self.experiments.finish(
                experiment, ExperimentState.INTERRUPTED, "the analyzer was shut down"
            )
        if analyzer.listener is not None:
            analyzer.listener.cancel()
        if analyzer.client is not None:
            analyzer.client.stop_channels()
        with contextlib.suppress(Exception):  # already gone is fine
            if analyzer.session_id is not None:
                await self.session_manager.delete_session(analyzer.session_id)
            elif analyzer.kernel_id in kernel_ids(self.kernel_manager):
                await self.kernel_manager.shutdown_kernel(analyzer.kernel_id, now=True)
        if analyzer.package_path is not None:  # its figures end with it (its kernel is gone)
            package = SavePackage(Path(analyzer.package_path))
            package.analyzer_memory_path(analyzer.task_id).unlink(missing_ok=True)

    def _spawn(
        self, coroutine: Coroutine[Any, Any, None], analyzer: AnalyzerRecord, what: str
    ) -> None:
        """Run `coroutine` on the loop without waiting. What it raises is not lost: it goes to
        the log, and an analyzer still loading fails with it, with the experiments waiting on it
        (their records say why), instead of staying "loading" for ever."""
        try:
            future = _scheduled(self._tracked(coroutine), self._loop)
        except BaseException:
            coroutine.close()
            raise

        def done(finished: Future[None]) -> None:
            error = finished.exception() if not finished.cancelled() else None
            if error is None:
                return
            log.error("analyzer %s: its %s failed", analyzer.task_id, what, exc_info=error)
            why = f"the analyzer's {what} failed: {error!r}"
            with self._lock:
                failed = analyzer.state is AnalyzerState.LOADING
                if failed:
                    analyzer.state, analyzer.error = AnalyzerState.FAILED, why
                waiting, analyzer.waiting = analyzer.waiting, []
                sent, analyzer.pending = list(analyzer.pending.values()), {}
            for experiment in [*(e for e, _ in waiting), *sent]:
                self.experiments.finish(experiment, ExperimentState.FAILED, why)
            if failed:  # its kernel goes, and the task ends failed with `why` (exit_code)
                self._spawn(self._shut_down(analyzer), analyzer, "shutdown")

        future.add_done_callback(done)

    async def _tracked(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await coroutine
        finally:
            self._tasks.discard(task)

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float) -> T:
        """Run on the kernel manager's loop and wait: only ever from another thread."""
        with contextlib.suppress(RuntimeError):
            if asyncio.get_running_loop() is self._loop:
                coroutine.close()
                raise AssertionError("AnalyzerHost's blocking calls must not run on its own loop")
        return _scheduled(coroutine, self._loop).result(timeout_s)


def _scheduled(
    coroutine: Coroutine[Any, Any, T], loop: asyncio.AbstractEventLoop | None
) -> Future[T]:
    """`coroutine` on `loop`; one that cannot run there (the host closed, its loop with it) is
    closed before the error goes up, or it would warn "never awaited" wherever it is collected."""
    try:
        if loop is None or loop.is_closed():
            raise RuntimeError("the analyzer host is closed: its event loop has gone")
        return asyncio.run_coroutine_threadsafe(coroutine, loop)
    except BaseException:
        coroutine.close()
        raise


async def finish_pending(
    tasks: Collection[asyncio.Task[Any]] | None = None, timeout_s: float = 10.0
) -> None:
    """Let `tasks` (default: what else runs on this loop: a shutdown a `del` started, a
    listener) end, then cancel the rest: a loop closed under them prints "Task was destroyed
    but it is pending!", and a coroutine or kernel client it held warns wherever collected."""
    others = asyncio.all_tasks() if tasks is None else tasks
    pending = [task for task in others if not task.done() and task is not asyncio.current_task()]
    if not pending:
        return
    _, late = await asyncio.wait(pending, timeout=timeout_s)
    for task in late:
        task.cancel()
    if late:
        await asyncio.wait(late, timeout=timeout_s)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
