"""Request bodies: parse, check each field's type, and confine the paths they name.

Field names are the REST contract of DESIGN.md section 6. An unknown or wrongly typed field is
a RequestError naming it; a path outside the allowed roots (after resolving `..` and symlinks)
is a ForbiddenPathError. Value checks that belong to the domain (settings ranges, configs,
memory that cannot fit) stay with the service, which raises its own errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import DLNestError
from ..core.templates import TEMPLATE_NAMES


class RequestError(DLNestError):
    """A request body or parameter is malformed."""


class ForbiddenPathError(RequestError):
    """A request names a path outside the folders this server may touch."""


class BodyTooLargeError(RequestError):
    """A request body is larger than the server accepts."""


Check = Callable[[Any], str | None]  # returns why the value is wrong, or None


@dataclass(frozen=True)
class FieldSpec:
    check: Check
    required: bool = False


def _integer(minimum: int) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            return f"must be an integer >= {minimum}"
        return None

    return check


def _optional(inner: Check) -> Check:
    return lambda value: None if value is None else inner(value)


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def _path(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else "must be a non-empty path"


def _one_of(*choices: str) -> Check:
    return lambda value: None if value in choices else f"must be one of {', '.join(choices)}"


def _device_list(value: Any) -> str | None:
    if value is None or (
        isinstance(value, list)
        and all(isinstance(d, int) and not isinstance(d, bool) for d in value)
    ):
        return None
    return "must be a list of device ids (-1 is the CPU), or null for all"


def _number(value: Any) -> str | None:
    return (
        None
        if isinstance(value, int | float) and not isinstance(value, bool)
        else "must be a number"
    )


_PLACEMENT = {
    "description": FieldSpec(_text),
    "memory_mb": FieldSpec(_optional(_integer(1))),
    "cpu": FieldSpec(_boolean),
    "multi_gpu": FieldSpec(_boolean),
    "ddp": FieldSpec(_boolean),
    "jump": FieldSpec(_boolean),
}
TRAIN = {
    "kind": FieldSpec(_one_of("train"), required=True),
    "config_path": FieldSpec(_path, required=True),
    "freq_path": FieldSpec(_optional(_path)),
    "no_save": FieldSpec(_boolean),
    "use_description": FieldSpec(_boolean),
    **_PLACEMENT,
}
CONTINUE = {
    "kind": FieldSpec(_one_of("continue"), required=True),
    "record_path": FieldSpec(_path, required=True),
    "checkpoint_id": FieldSpec(_optional(_integer(-1))),
    **_PLACEMENT,
}
ANALYZE = {
    "kind": FieldSpec(_one_of("analyze"), required=True),
    "record_path": FieldSpec(_path, required=True),
    "checkpoint_id": FieldSpec(_optional(_integer(-1))),
    "scripts_dir": FieldSpec(_optional(_path)),
    "description": FieldSpec(_text),
    "memory_mb": FieldSpec(_optional(_integer(1))),
    "cpu": FieldSpec(_boolean),
    "jump": FieldSpec(_boolean),
}
EXPERIMENT = {"name": FieldSpec(_text), "code": FieldSpec(_text)}
SETTINGS = {
    "devices": FieldSpec(_device_list),
    "launch_delay_s": FieldSpec(_number),
    "max_tasks_per_device": FieldSpec(_integer(1)),
    "starvation_s": FieldSpec(_number),
}
PROJECT = {"path": FieldSpec(_path, required=True), "template": FieldSpec(_one_of(*TEMPLATE_NAMES))}
TASK_KINDS = {"train": TRAIN, "continue": CONTINUE, "analyze": ANALYZE}


def parse_json_object(raw: bytes, max_bytes: int) -> dict[str, Any]:
    if len(raw) > max_bytes:
        raise BodyTooLargeError(f"request body is {len(raw)} bytes; the limit is {max_bytes}")
    try:
        value = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise RequestError("request body must be a JSON object")
    return value


def validated(body: Mapping[str, Any], fields: Mapping[str, FieldSpec]) -> dict[str, Any]:
    """`body` if every field is known, present when required and of the right type."""
    for name in body:
        if name not in fields:
            raise RequestError(f"unknown field {name!r}; known fields: {', '.join(sorted(fields))}")
    for name, spec in fields.items():
        if name not in body:
            if spec.required:
                raise RequestError(f"missing field {name!r}")
            continue
        problem = spec.check(body[name])
        if problem is not None:
            raise RequestError(f"field {name!r} {problem}")
    return dict(body)


def task_fields(body: Mapping[str, Any]) -> Mapping[str, FieldSpec]:
    kind = body.get("kind")
    if kind not in TASK_KINDS:
        known = ", ".join(TASK_KINDS)
        raise RequestError(
            f"field 'kind' must be one of {known}" if "kind" in body else "missing field 'kind'"
        )
    return TASK_KINDS[kind]


def confined(raw: str, root_dir: Path, allowed_roots: Sequence[Path]) -> Path:
    """`raw` (relative to `root_dir`) resolved, if it lies under an allowed root."""
    path = (root_dir / Path(raw).expanduser()).resolve()
    for root in allowed_roots:
        if path == root or path.is_relative_to(root):
            return path
    raise ForbiddenPathError(f"{raw!r} resolves to {path}, outside the folders this server serves")


def experiment_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    fields = validated(body, EXPERIMENT)
    if ("name" in fields) == ("code" in fields):
        raise RequestError("give exactly one of 'name' (a script in the scripts folder) or 'code'")
    return fields


def offset_argument(raw: str | None, name: str = "offset") -> int:
    if raw is None:
        return 0
    if not raw.isdigit():
        raise RequestError(f"{name} must be a non-negative integer, got {raw!r}")
    return int(raw)


MAX_WAIT_S = 30.0


def wait_argument(raw: str | None) -> float:
    """`wait_s`: how long a read may wait for something new (long polling), 0 to 30 seconds."""
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_WAIT_S:
        raise RequestError(
            f"wait_s must be a number of seconds from 0 to {MAX_WAIT_S:.0f}, got {raw!r}"
        )
    return value
