"""What an API verb reads and returns: the matched request, its reply, and a long poll's wait.

Kept apart from the dispatcher (`dispatcher.py`) so the routes (`routes.py`) can name these
without importing the dispatcher that imports them: a call reads the dispatcher only through
`Scope`, which the dispatcher's `Api` fulfils.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..service import DLNestService
from . import requests as api_requests


class Scope(Protocol):
    """What a call may reach of its dispatcher: the service, and the limits on requests."""

    service: DLNestService
    root_dir: Path  # what relative paths in requests are relative to
    allowed_roots: list[Path]  # the folders whose paths requests may name
    max_body_bytes: int


@dataclass(frozen=True)
class Reply:
    status: int
    text: str  # JSON

    def json(self) -> Any:
        return json.loads(self.text)


@dataclass(frozen=True)
class Wait:
    """A long poll: reply with `then()` once `future` is done or `timeout_s` has passed."""

    future: concurrent.futures.Future[None]
    timeout_s: float
    then: Callable[[], Reply]


def json_reply(status: int, value: Any) -> Reply:
    try:
        return Reply(status, json.dumps(value, allow_nan=False))
    except ValueError:  # a NaN or Infinity from a task's progress: JSON has no such numbers
        return Reply(status, json.dumps(_finite(value)))


@dataclass
class Call:
    """One request, matched to its route: what a verb reads."""

    api: Scope
    ids: dict[str, int]
    query: dict[str, str]
    raw_body: bytes | None

    @property
    def service(self) -> DLNestService:
        return self.api.service

    def body(self) -> dict[str, Any]:
        return api_requests.json_object(self.raw_body, self.api.max_body_bytes)

    def path(self, field_name: str, raw: str, folder: bool = False) -> Path:
        return api_requests.confined(
            field_name, raw, self.api.root_dir, self.api.allowed_roots, folder
        )


Verb = Callable[[Call], "Reply | Wait"]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str  # "tasks/{task}/output": {task}, {experiment} and {sweep} are ids
    verb: Verb
    segments: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(self.pattern.split("/")) if self.pattern else ())

    def ids(self, segments: Sequence[str]) -> dict[str, int] | None:
        """The ids in `segments` if they fit this route's pattern, else None."""
        if len(segments) != len(self.segments) or any(
            wanted != given
            for wanted, given in zip(self.segments, segments, strict=True)
            if not wanted.startswith("{")
        ):
            return None  # the literal parts decide the route; only then are ids checked
        ids: dict[str, int] = {}
        for wanted, given in zip(self.segments, segments, strict=True):
            if wanted == "{task}":
                ids["task"] = api_requests.task_id(given)
            elif wanted == "{experiment}":
                ids["experiment"] = api_requests.experiment_id(ids["task"], given)
            elif wanted == "{sweep}":
                ids["sweep"] = api_requests.sweep_id(given)
        return ids


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
