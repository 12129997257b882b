"""The parts of a request before any verb sees it: its JSON body, its query, its ids and its paths.

Each turns what a client sent into checked Python values or a `RequestError` naming the part at
fault; none of them acts on anything. A path is confined: resolved against the caller's root
(after `..` and symlinks) and refused unless it lies under one of the caller's allowed roots.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ...core.errors import (
    BodyTooLargeError,
    ExperimentNotFoundError,
    ForbiddenPathError,
    RequestError,
    SweepNotFoundError,
    TaskNotFoundError,
)
from ...core.fields import MAX_INT, shown

MAX_WAIT_S = 30.0
_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII only: str.isdigit() takes "²", which int() refuses
_MAX_QUERY_FIELDS = 64


def json_object(raw: bytes | None, max_bytes: int) -> dict[str, Any]:
    """A request body: a JSON object of at most `max_bytes` (an empty body is `{}`)."""
    if raw and len(raw) > max_bytes:
        raise BodyTooLargeError(f"request body is {len(raw)} bytes; the limit is {max_bytes}")
    try:
        value = json.loads(raw or b"{}", parse_constant=_no_constant)
    except RecursionError:
        raise RequestError("request body is not valid JSON: nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, bad UTF-8, an integer of 4,300 digits
        raise RequestError(f"request body is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise RequestError("request body must be a JSON object")
    return value


def _no_constant(name: str) -> Any:
    raise RequestError(f"request body is not valid JSON: {name} is not a JSON number")


def query(raw: str) -> dict[str, str]:
    """The query string's parameters; the last of a repeated one wins, as in Tornado."""
    try:
        pairs = urllib.parse.parse_qsl(
            raw, keep_blank_values=True, max_num_fields=_MAX_QUERY_FIELDS
        )
    except ValueError as error:
        raise RequestError(f"query string not understood: {error}") from None
    return dict(pairs)


def offset(parameters: Mapping[str, str], name: str = "offset") -> int:
    raw = parameters.get(name)
    if raw is None:
        return 0
    if not _DIGITS.fullmatch(raw) or int(raw) > MAX_INT:
        raise RequestError(f"{name} must be a non-negative integer below 2**63, got {shown(raw)}")
    return int(raw)


def wait_s(parameters: Mapping[str, str]) -> float:
    """`wait_s`: how long a read may wait for something new (long polling), 0 to 30 seconds."""
    raw = parameters.get("wait_s")
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_WAIT_S:  # NaN fails this too
        raise RequestError(
            f"wait_s must be a number of seconds from 0 to {MAX_WAIT_S:.0f}, got {shown(raw)}"
        )
    return value


def task_id(raw: str) -> int:
    """A task id in a path (unquoted); anything that cannot be one is an id no task has."""
    if not _DIGITS.fullmatch(raw) or int(raw) > MAX_INT:
        raise TaskNotFoundError(raw[:60])
    return int(raw)


def sweep_id(raw: str) -> int:
    if not _DIGITS.fullmatch(raw) or int(raw) > MAX_INT:
        raise SweepNotFoundError(raw[:60])
    return int(raw)


def experiment_id(task: int, raw: str) -> int:
    if not _DIGITS.fullmatch(raw) or int(raw) > MAX_INT:
        raise ExperimentNotFoundError(task, raw[:60])
    return int(raw)


def confined(
    field: str, raw: str, root_dir: Path, allowed_roots: Sequence[Path], folder: bool = False
) -> Path:
    """`raw` (relative to `root_dir`) resolved, if it lies under an allowed root.

    `raw` has passed `core.fields.path`, so the filesystem can take it; `folder`: it must also
    be an existing folder now.
    """
    try:
        resolved = (root_dir / Path(raw).expanduser()).resolve()
    except (OSError, RuntimeError) as error:  # a symlink loop is a RuntimeError before 3.13
        raise RequestError(f"field {field!r}: cannot resolve {shown(raw)}: {error}") from None
    if not any(resolved == root or resolved.is_relative_to(root) for root in allowed_roots):
        raise ForbiddenPathError(
            f"field {field!r}: {shown(raw)} resolves to {resolved}, outside the folders this "
            "server serves"
        )
    if folder and not resolved.is_dir():
        problem = "is not a folder" if resolved.exists() else "does not exist"
        raise RequestError(f"field {field!r}: {resolved} {problem}")
    return resolved
