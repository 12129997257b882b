"""Secrets in plugin configs never leave in a reply: the one redaction rule.

DLNest served every task's full args, MailsNote's SMTP password included, from `/get_task_info`.
Here a value under `plugins_config`, inside a plugin's config, at a key whose name holds
`password`, `token` or `secret` (any case: `password`, `api_token`, `clientSecret`) is a secret.
Every place that shows config values (`run --dry-run`, the checkpoints' branch overrides, a
task's output) shows `redacted(...)` or `scrubbed(...)` of them instead; sweeps refuse to vary a
secret (`sweep_secret`), since a trial's values are shown in every reply about it. The user's
own files (the project, the save package's `args.json`) keep what the user wrote.

An empty value (`""`, `null`, `[]`, `{}`) is shown as it is: it hides nothing, and a dry run
that shows `password = ''` tells that no login will be tried.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .plugin_configs import PLUGINS_CONFIG_KEY

SECRET_MARKERS = ("password", "token", "secret")
REDACTED = "***"
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")  # snake, kebab and camelCase words
# A secret shorter than this is not scrubbed from free text: replacing every "42" in a run's
# output would garble it and tell the secret anyway. Structured places redact any length.
MIN_SCRUBBED_CHARS = 4


def is_secret_name(key: str) -> bool:
    """A key named like a secret: one of its words is `password`, `token` or `secret`, in any
    case, or its plural (`password`, `api_token`, `clientSecret`, `tokens`). Words, not
    substrings: `tokenizer` is no secret; and a key ending in `_env` names the environment
    variable that holds a secret (MailsNote's `password_env`), which is no secret itself."""
    words = [word.lower().removesuffix("s") for word in _WORDS.findall(key)]
    return bool(words) and words[-1] != "env" and any(w in SECRET_MARKERS for w in words)


def is_secret_key(dotted: str) -> bool:
    """A dotted config key at or inside a secret: `plugins_config.MailsNote.password`."""
    parts = dotted.split(".")
    return parts[0] == PLUGINS_CONFIG_KEY and any(is_secret_name(p) for p in parts[2:])


def redacted(args: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `args` with every secret under `plugins_config` replaced by "***"; the rest
    is shared with `args`, not copied (callers only read it)."""
    shown = dict(args)
    plugins = args.get(PLUGINS_CONFIG_KEY)
    if isinstance(plugins, Mapping):
        shown[PLUGINS_CONFIG_KEY] = {
            name: _redacted_value(config) for name, config in plugins.items()
        }
    return shown


def secret_values(args: Mapping[str, Any]) -> set[str]:
    """Each secret's value as text (non-empty ones): what `scrubbed` hides in free text."""
    found: set[str] = set()
    plugins = args.get(PLUGINS_CONFIG_KEY)
    if isinstance(plugins, Mapping):
        for config in plugins.values():
            _collect(config, found)
    return found


def scrubbed(text: str, secrets: Iterable[str]) -> str:
    """`text` with each secret (of `MIN_SCRUBBED_CHARS` or more) replaced by "***", the
    longest first so one secret inside another is not half-replaced."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= MIN_SCRUBBED_CHARS:
            text = text.replace(secret, REDACTED)
    return text


def sweep_secret(dotted: str, values: Iterable[Any]) -> bool:
    """True when a sweep varying `dotted` over `values` would vary a secret: the key is one, or
    a value (a whole plugin config, say) holds one."""
    if is_secret_key(dotted):
        return True
    for value in values:
        nested: Any = value
        for part in reversed(dotted.split(".")):
            nested = {part: nested}
        if redacted(nested) != nested:
            return True
    return False


def _filled(value: Any) -> bool:
    return value not in (None, "", [], {})


def _redacted_value(value: Any) -> Any:
    """Inside a plugin's config: secret-named keys' values hidden, at any depth."""
    if isinstance(value, Mapping):
        return {
            key: REDACTED
            if isinstance(key, str) and is_secret_name(key) and _filled(item)
            else _redacted_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redacted_value(item) for item in value]
    return value


def _collect(value: Any, found: set[str], secret: bool = False) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _collect(item, found, secret or (isinstance(key, str) and is_secret_name(key)))
    elif isinstance(value, list):
        for item in value:
            _collect(item, found, secret)
    elif secret and _filled(value):
        found.add(value if isinstance(value, str) else str(value))
