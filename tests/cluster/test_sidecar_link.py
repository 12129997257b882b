"""The server's link to its Ray sidecar, without Ray: `SidecarClient` drives a scripted sidecar
(`fake_sidecar.py`) that answers through the real protocol, so replies, errors crossing the
socket, calls that get no answer and refused operations are checked in a second each."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from threading import Thread
from typing import Any

import pytest

from dlnest_jupyter.cluster import waits
from dlnest_jupyter.cluster.errors import (
    AgentUnavailable,
    AnswerLost,
    ClusterError,
    ClusterUnavailable,
    LaunchDeferred,
    LaunchUnknown,
    NodeLost,
    OperationFailed,
)
from dlnest_jupyter.cluster.protocol import Op
from dlnest_jupyter.cluster.sidecar_client import SidecarClient
from dlnest_jupyter.core.errors import DLNestError

FAKE = [sys.executable, str(Path(__file__).with_name("fake_sidecar.py"))]


def connected(client: SidecarClient, timeout_s: float = 20.0) -> dict[str, Any]:
    """The sidecar's view, once one has connected (a call before that fails at once)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            view: dict[str, Any] = client.call(Op.VIEW, timeout_s=5)
            return view
        except ClusterUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def client() -> Iterator[SidecarClient]:
    client = SidecarClient("fake:1", zygote=False, retry_interval_s=0.2, command=FAKE)
    yield client
    client.close()


def test_a_call_is_answered_by_the_sidecar_the_command_started(client: SidecarClient) -> None:
    with pytest.raises(ClusterUnavailable, match="connecting"):  # nothing waits for it to start
        client.call(Op.VIEW, timeout_s=5)
    view = connected(client)
    assert view["address"] == "fake:1" and view["mode"] == "fork"
    assert client.call(Op.START, "0", timeout_s=5) == "started"
    assert client.reason is None


def test_calls_are_answered_as_they_end_not_in_turn(client: SidecarClient) -> None:
    connected(client)
    answers: list[str] = []
    slow = Thread(target=lambda: answers.append(client.call(Op.START, "3", timeout_s=20)))
    slow.start()
    time.sleep(0.2)
    began = time.monotonic()
    assert client.call(Op.START, "0", timeout_s=10) == "started"
    assert time.monotonic() - began < 2.0  # not behind the slow one
    slow.join()
    assert answers == ["started"]


@pytest.mark.parametrize(
    ("outcome", "raised"),
    [
        ("lost", NodeLost),
        ("deferred", LaunchDeferred),
        ("unknown", LaunchUnknown),
        ("unavailable", AgentUnavailable),
        ("boom", OperationFailed),
    ],
)
def test_an_error_crosses_the_link_as_its_own_class(
    client: SidecarClient, outcome: str, raised: type[Exception]
) -> None:
    connected(client)
    with pytest.raises(raised) as caught:
        client.call(Op.START, outcome, timeout_s=5)
    assert type(caught.value) is raised
    assert str(caught.value) == f"scripted {outcome}"
    assert isinstance(caught.value, DLNestError)
    # What the scheduler relies on: a launch outcome is no OSError; a failed link is one.
    assert isinstance(caught.value, OSError) == isinstance(caught.value, ClusterError)
    assert client.call(Op.START, "0", timeout_s=5) == "started"  # the link stays


def test_a_call_with_no_answer_fails_in_its_time_and_ends_the_sidecar(
    client: SidecarClient,
) -> None:
    first = connected(client)["pid"]
    began = time.monotonic()
    with pytest.raises(AnswerLost, match=r"did not answer in 0\.5 s"):
        client.call(Op.EXIT_CODE, timeout_s=0.5)
    assert time.monotonic() - began < 3.0
    # A stuck link is not trusted with the next request: calls fail at once till a new one.
    began = time.monotonic()
    with pytest.raises(ClusterUnavailable):
        client.call(Op.VIEW, timeout_s=5)
    assert time.monotonic() - began < 1.0
    assert connected(client)["pid"] != first


def test_calls_waiting_when_the_sidecar_ends_fail_at_once(client: SidecarClient) -> None:
    connected(client)
    failed: list[BaseException] = []

    def wait() -> None:
        try:
            client.call(Op.EXIT_CODE, timeout_s=30)
        except BaseException as exc:
            failed.append(exc)

    waiting = Thread(target=wait)
    waiting.start()
    time.sleep(0.3)
    began = time.monotonic()
    client.close()
    waiting.join(10)
    assert time.monotonic() - began < 3.0  # not its 30 s
    assert len(failed) == 1 and isinstance(failed[0], AnswerLost)


@pytest.mark.parametrize("op", ["_forget", "__init__", "stop_all", Op.STOP])
def test_the_sidecar_refuses_what_is_not_one_of_its_operations(
    client: SidecarClient, op: Any
) -> None:
    connected(client)
    with pytest.raises(OperationFailed, match="refused the operation"):
        client.call(op, timeout_s=5)
    assert client.call(Op.START, "0", timeout_s=5) == "started"  # and serves on


def test_a_sidecar_that_cannot_connect_says_why() -> None:
    client = SidecarClient("refuse", retry_interval_s=60, command=FAKE)
    try:
        with pytest.raises(ClusterUnavailable):
            client.call(Op.VIEW, timeout_s=5)
        deadline = time.monotonic() + 20
        while "no cluster at refuse" not in (client.reason or ""):
            assert time.monotonic() < deadline, client.reason
            time.sleep(0.05)
        with pytest.raises(ClusterUnavailable, match="no cluster at refuse"):
            client.call(Op.VIEW, timeout_s=5)
    finally:
        client.close()


def test_a_poll_that_failed_at_once_is_retried_soon_and_one_that_waited_out_its_time_late() -> None:
    """An agent restarting, or its node leaving, fails a poll at once: the next poll finds which
    (a lost node's tasks were said to fail 30 s late). A poll that waited out its time is not
    repeated for long: it would hold the scheduler as long again."""
    assert waits.quiet_after(0.05) == waits.QUIET_AFTER_REFUSAL_S < 5
    assert waits.quiet_after(waits.AGENT_POLL_S) == waits.QUIET_AFTER_TIMEOUT_S
