"""How a kernel's messages end an experiment (`service/kernels/messages.py`)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from dlnest_jupyter.core.tasks import AnalyzerState, ExperimentState
from dlnest_jupyter.service.kernels import messages
from dlnest_jupyter.service.kernels.experiments import ExperimentBook


def message(kind: str, parent: str, **content: Any) -> dict[str, Any]:
    return {"header": {"msg_type": kind}, "parent_header": {"msg_id": parent}, "content": content}


IDLE = {"execution_state": "idle"}


async def route_then_wait(book: ExperimentBook, routed: list[dict[str, Any]]) -> Any:
    analyzer = SimpleNamespace(pending={}, ends={}, state=AnalyzerState.READY)
    experiment = book.open(1, "spin")
    analyzer.pending["m1"] = experiment
    for each in routed:
        messages.route_message(book, analyzer, experiment, each, "m1")
    await asyncio.sleep(messages.REPLY_GRACE_S * 3)
    return experiment, analyzer


def test_an_idle_kernel_that_never_replies_ends_its_experiment_interrupted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What ipykernel sends when a SIGINT hits a request's handler before the user's code ran.
    monkeypatch.setattr(messages, "REPLY_GRACE_S", 0.05)
    book = ExperimentBook()

    experiment, analyzer = asyncio.run(route_then_wait(book, [message("status", "m1", **IDLE)]))

    assert experiment.state is ExperimentState.INTERRUPTED
    assert experiment.error == messages.NO_REPLY
    assert analyzer.pending == {} and analyzer.ends == {}


def test_a_reply_after_the_idle_status_ends_the_experiment_as_it_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(messages, "REPLY_GRACE_S", 0.05)
    book = ExperimentBook()
    routed = [message("status", "m1", **IDLE), message("execute_reply", "m1", status="ok")]

    experiment, analyzer = asyncio.run(route_then_wait(book, routed))

    assert (experiment.state, experiment.error) == (ExperimentState.SUCCEEDED, None)
    assert analyzer.pending == {}


def test_an_experiment_queued_behind_another_runs_once_its_kernel_takes_it_up() -> None:
    book = ExperimentBook()
    analyzer = SimpleNamespace(pending={}, ends={}, state=AnalyzerState.READY)
    experiment = book.open(1, "second", ExperimentState.QUEUED)
    analyzer.pending["m2"] = experiment

    assert book.unfinished(1) == [experiment]
    messages.route_message(
        book, analyzer, experiment, message("status", "m2", execution_state="busy"), "m2"
    )
    assert experiment.state is ExperimentState.RUNNING
