"""Waiting in tests for a condition, never for a guessed time: a slow or busy machine only
makes a test take longer, and the timeout is a bound on a hang, not a measurement."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
What = str | Callable[[], object]  # what was awaited, or a call saying what was last seen


def _said(what: What, condition: object) -> str:
    return f"timed out waiting for {(what() if callable(what) else what) or condition}"


def wait_until(
    condition: Callable[[], T], timeout_s: float = 120, what: What = "", every_s: float = 0.05
) -> T:
    """Call `condition` until it returns something truthy, and return that; fail after
    `timeout_s` saying what was awaited (`what`, called when it is a function, else the
    condition)."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, _said(what, condition)
        time.sleep(every_s)
    return value


async def wait_until_async(
    condition: Callable[[], Awaitable[T]],
    timeout_s: float = 120,
    what: What = "",
    every_s: float = 0.1,
) -> T:
    """`wait_until` on the running event loop: `condition` is awaited, and the loop sleeps
    between calls (so the server under test runs meanwhile)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not (value := await condition()):
        assert asyncio.get_running_loop().time() < deadline, _said(what, condition)
        await asyncio.sleep(every_s)
    return value
