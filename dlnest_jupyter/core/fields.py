"""Request fields: what a JSON value must be, checked before anything acts on it.

Every value a request carries is checked here, against a table of `FieldSpec`s: its type, its
range (integers must fit SQLite's 64 bits, numbers must be finite), and for text the things that
would otherwise fail deep inside (a NUL byte reaches `open()` as `ValueError`, a lone surrogate
reaches the filesystem as `UnicodeEncodeError`, a 300-byte name as ENAMETOOLONG). A wrong value
is a `RequestError` naming the field. The tables themselves live with what they describe (task
kinds, settings, projects); the API dispatcher applies them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import RequestError

MAX_INT = 2**63 - 1  # SQLite's INTEGER
MAX_PATH_BYTES = 4096  # PATH_MAX
MAX_NAME_BYTES = 255  # NAME_MAX: one path component
MAX_TEXT_CHARS = 10_000  # a description, a script name

Check = Callable[[Any], str | None]  # returns why the value is wrong, or None


@dataclass(frozen=True)
class FieldSpec:
    check: Check
    required: bool = False


def integer(minimum: int, maximum: int = MAX_INT) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            upper = "" if maximum == MAX_INT else f" and <= {maximum}"
            return f"must be an integer >= {minimum}{upper}"
        return None

    return check


def number(minimum: float, maximum: float) -> Check:
    def check(value: Any) -> str | None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (math.isfinite(value) and minimum <= value <= maximum)
        ):
            return f"must be a number from {minimum:g} to {maximum:g}"
        return None

    return check


def optional(inner: Check) -> Check:
    return lambda value: None if value is None else inner(value)


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def text(max_chars: int = MAX_TEXT_CHARS) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return "must be a string"
        if len(value) > max_chars:
            return f"is {len(value)} characters long; the limit is {max_chars}"
        return _unusable_text(value)

    return check


def path(value: Any) -> str | None:
    """A path the filesystem can take: non-empty, no NUL, valid Unicode, within PATH_MAX."""
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty path"
    problem = _unusable_text(value)
    if problem is not None:
        return problem
    encoded = value.encode()
    if len(encoded) > MAX_PATH_BYTES:
        return f"is {len(encoded)} bytes long; a path may have {MAX_PATH_BYTES}"
    if any(len(part) > MAX_NAME_BYTES for part in encoded.split(b"/")):
        return f"has a name longer than {MAX_NAME_BYTES} bytes"
    return None


def one_of(*choices: str) -> Check:
    return lambda value: (
        None
        if isinstance(value, str) and value in choices
        else f"must be one of {', '.join(choices)}"
    )


def integer_list(minimum: int, maximum: int, max_items: int, what: str) -> Check:
    def check(value: Any) -> str | None:
        if (
            isinstance(value, list | tuple)
            and len(value) <= max_items
            and all(integer(minimum, maximum)(item) is None for item in value)
        ):
            return None
        return f"must be a list of {what}"

    return check


def validated(
    body: Mapping[str, Any], fields: Mapping[str, FieldSpec], what: str = "field"
) -> dict[str, Any]:
    """`body` as a dict if every field is known, present when required and of the right kind."""
    for name in body:
        if name not in fields:
            raise RequestError(
                f"unknown {what} {shown(name)}; known {what}s: {', '.join(sorted(fields))}"
            )
    for name, spec in fields.items():
        if name not in body:
            if spec.required:
                raise RequestError(f"missing {what} {name!r}")
            continue
        problem = spec.check(body[name])
        if problem is not None:
            raise RequestError(f"{what} {name!r} {problem}")
    return dict(body)


def shown(value: object, limit: int = 60) -> str:
    """`repr(value)`, cut short: an error names the culprit without echoing a megabyte of it."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + "...'"


def _unusable_text(value: str) -> str | None:
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode()
    except UnicodeEncodeError:
        return "is not valid Unicode text (it holds a lone surrogate)"
    return None
