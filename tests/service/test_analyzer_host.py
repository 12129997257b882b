"""What the analyzer host does with work it hands to its loop and does not wait for."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from dlnest_jupyter.core.tasks import (
    AnalyzerState,
    ExperimentState,
    TaskKind,
    TaskRecord,
    TaskState,
)
from dlnest_jupyter.service.kernels.analyzer_record import AnalyzerRecord
from dlnest_jupyter.service.kernels.host import AnalyzerHost, finish_pending


class NoKernels:
    """A kernel manager whose kernels are all gone (what a failed load leaves)."""

    def list_kernel_ids(self) -> list[str]:
        return []


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    # What a test's host left running on it (a failed load's shutdown) ends first: a loop
    # stopped under it leaves a coroutine that warns in whichever test collects it.
    asyncio.run_coroutine_threadsafe(finish_pending(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_a_load_that_raises_fails_its_analyzer_and_the_experiments_waiting_on_it(
    loop: asyncio.AbstractEventLoop,
) -> None:
    host = AnalyzerHost(NoKernels(), loop)
    analyzer = AnalyzerRecord(task_id=7, kernel_id="k-7", pid=0)
    host._analyzers[7] = analyzer  # as `start` leaves it: loading
    waiting = host.experiments.open(7, "getAcc", ExperimentState.QUEUED)
    analyzer.waiting.append((waiting, "experience(self)"))

    async def load() -> None:
        raise RuntimeError("the kernel client broke")

    host._spawn(load(), analyzer, "load")  # what `start` does with the real load
    deadline = time.monotonic() + 10
    while host.state(7) is AnalyzerState.LOADING:
        assert time.monotonic() < deadline, "the failure was lost"
        time.sleep(0.01)

    why = "the analyzer's load failed: RuntimeError('the kernel client broke')"
    task = TaskRecord(7, TaskKind.ANALYZE, TaskState.RUNNING, "{}", 1.0)
    assert (host.state(7), host.end_reason(task, 1)) == (AnalyzerState.FAILED, why)
    assert (waiting.state, waiting.error) == (ExperimentState.FAILED, why)
    assert host.exit_code(task) == 1  # its task ends, saying why


class ClosedClient:
    """A kernel client whose channels a shutdown closed."""

    def execute(self, code: str, **options: object) -> str:
        raise RuntimeError("the shell channel is closed")


def test_an_experiment_that_cannot_be_sent_fails_saying_why(
    loop: asyncio.AbstractEventLoop,
) -> None:
    host = AnalyzerHost(NoKernels(), loop)
    analyzer = AnalyzerRecord(task_id=7, kernel_id="k-7", pid=0)
    analyzer.state, analyzer.client = AnalyzerState.READY, ClosedClient()
    host._analyzers[7] = analyzer

    experiment = host.run(7, "getAcc", "experience(self)")  # returns before the loop sends it
    assert host.change(experiment, 0, 0).result(10) is None

    assert experiment.state is ExperimentState.FAILED
    assert experiment.error == (
        "could not send it to the analyzer's kernel k-7:"
        " RuntimeError('the shell channel is closed')"
    )
    assert analyzer.pending == {}
