"""DLNest's plugins' names and configs, the one place that holds them, and reading a user's.

The four shipped plugins (DLNest 0.3.2's `DLNest/Plugins/*.py`) each have a full config
(`_config`) and the keys `new -p` / `addP` write without `-F` (`_defaultKeys`). The runtime's
plugins read their defaults from `SHIPPED`; `addP` writes them into a project's config.

MailsNote differs from DLNest on purpose: its host defaults to "localhost" (DLNest's was Fudan
University's mail server, where nobody else has an account), and it gains `password_env` (the
name of an environment variable holding the password, so no config need hold one) and
`timeout_s` (every SMTP attempt is bounded, so a dead mail host never holds training).

A user's plugin is a `.py` file defining `class DLNestPlugin`. Its `_NAME`, `_config` and
`_defaultKeys` are read from the file's syntax tree (`ast.literal_eval` of the class-body
assignments), never by running it: `addP` and `new -p` run in the server, which must not run
user code. What is supported: plain literal assignments in the class body; a base class
defined in the same file supplies what the class does not (one level, as a mixin would); a base
imported as DLNest's `DLNestPluginBase` supplies `_config = {}` and `_defaultKeys = []` (as
DLNest's does; its `_NAME` is misspelt there, so it supplies none). Anything computed, or
inherited from another file, is refused with a `PluginConfigError` naming the file and the
attribute.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import ConfigError, PluginConfigError

PLUGINS_KEY = "plugins"  # the config key listing the plugins a run uses, in order
PLUGINS_CONFIG_KEY = "plugins_config"  # the config key holding {plugin name: its config}
PLUGIN_CLASS = "DLNestPlugin"
# DLNest's base class, by the name it is imported as (any alias): it defines `_config = {}` and
# `_defaultKeys = []`, so a plugin that sets neither has an empty config.
BASE_CLASS = "DLNestPluginBase"
_NAME_ATTR, _CONFIG_ATTR, _DEFAULT_KEYS_ATTR = "_NAME", "_config", "_defaultKeys"
_ATTRS = (_NAME_ATTR, _CONFIG_ATTR, _DEFAULT_KEYS_ATTR)


@dataclass(frozen=True)
class PluginDefaults:
    """One plugin's config as DLNest declares it: `full` is `_config`, `default_keys` is
    `_defaultKeys` (the keys `addP` writes without -F). Read-only: take copies with `config`."""

    name: str
    full: Mapping[str, Any]
    default_keys: tuple[str, ...]

    def config(self, full: bool = False) -> dict[str, Any]:
        """A fresh copy of the full config, or of its default keys only (DLNest's
        `getFullConfig` / `getDefaultConfig`); the caller may change it freely."""
        keys = tuple(self.full) if full else self.default_keys
        return {key: copy.deepcopy(self.full[key]) for key in keys}

    def value(self, key: str) -> Any:
        """The default of one key (a copy), for a plugin reading a key its config lacks."""
        return copy.deepcopy(self.full[key])


def _shipped(name: str, full: dict[str, Any], default_keys: tuple[str, ...]) -> PluginDefaults:
    missing = [key for key in default_keys if key not in full]
    assert not missing, f"{name}: default keys {missing} are not in its config"
    return PluginDefaults(name, MappingProxyType(full), default_keys)


LOG_INIT = _shipped(
    "LogInit",
    {
        "level": "INFO",
        "format": "[%(asctime)s][%(levelname)s] %(message)s",
        "datefmt": "%Y-%m-%d %H:%M:%S",
    },
    ("level",),
)
SIMPLE_CMD_VISUALIZE = _shipped(
    "SimpleCMDVisualize",
    {"stride": 1, "keys": [], "format": {}},
    ("stride", "keys", "format"),
)
AUTO_TENSORBOARD_SCALAR = _shipped("AutoTensorboardScalar", {}, ())
MAILS_NOTE = _shipped(
    "MailsNote",
    {
        "enable_list": ["Aborting", "TrainFinish"],
        "username": "",
        "password": "",
        "host": "localhost",
        "port": 25,
        "password_env": "",
        "timeout_s": 10,
    },
    # DLNest's four, and `password_env`: the default config shows the way to keep the password
    # out of the file.
    ("enable_list", "username", "password", "host", "password_env"),
)

SHIPPED: Mapping[str, PluginDefaults] = MappingProxyType(
    {p.name: p for p in (LOG_INIT, SIMPLE_CMD_VISUALIZE, AUTO_TENSORBOARD_SCALAR, MAILS_NOTE)}
)
SHIPPED_NAMES: tuple[str, ...] = tuple(SHIPPED)


def is_plugin_file(name_or_path: str) -> bool:
    """True when a `plugins` entry names a user's file rather than a shipped plugin."""
    return name_or_path not in SHIPPED and name_or_path.endswith(".py")


def unknown_plugin_message(name: str) -> str:
    return (
        f"unknown plugin {name!r}: the shipped plugins are {', '.join(SHIPPED_NAMES)}; "
        f"a plugin of your own is a path to a .py file defining class {PLUGIN_CLASS}"
    )


def plugin_config(name_or_path: str, full: bool = False) -> tuple[str, dict[str, Any]]:
    """(its name, {name: config}) for a shipped plugin's name or a path to a plugin file, as
    DLNest's `getPluginConfig` returns them: the config is the full one with `full`, else its
    default keys only. A file is read, never run; its name is its `_NAME`.

    Raises PluginConfigError for an unknown name, a missing or unreadable file, or a class whose
    attributes cannot be read without running it.
    """
    if name_or_path in SHIPPED:
        plugin = SHIPPED[name_or_path]
    elif is_plugin_file(name_or_path):
        plugin = read_plugin_file(Path(name_or_path))
    else:
        raise PluginConfigError(unknown_plugin_message(name_or_path))
    return plugin.name, {plugin.name: plugin.config(full)}


def read_plugin_file(path: Path) -> PluginDefaults:
    """A user's plugin file's `_NAME`, `_config` and `_defaultKeys`, from its syntax tree."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise PluginConfigError(f"cannot read plugin file ({why})", file=path) from exc
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise PluginConfigError(
            f"invalid Python: {exc.msg}", file=path, line=exc.lineno, column=exc.offset
        ) from exc
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    plugin_class = classes.get(PLUGIN_CLASS)
    if plugin_class is None:
        raise PluginConfigError(f"defines no top-level class {PLUGIN_CLASS}", file=path)
    found = _class_attrs(plugin_class, path)
    missing = [attr for attr in _ATTRS if attr not in found]
    if missing:
        found = _inherited(plugin_class, classes, _base_aliases(tree), path, missing) | found
    return _checked(found, path)


def _class_attrs(node: ast.ClassDef, path: Path) -> dict[str, Any]:
    """The literal values the class body assigns to `_NAME`, `_config` and `_defaultKeys`."""
    found: dict[str, Any] = {}
    for statement in node.body:
        if isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets, value = [statement.target], statement.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in _ATTRS:
                try:
                    found[target.id] = ast.literal_eval(value)
                except ValueError:
                    raise PluginConfigError(
                        f"{node.name}.{target.id} is not a literal (line {statement.lineno}): "
                        "write it as plain values, which can be read without running the file",
                        file=path,
                        key=target.id,
                    ) from None
    return found


def _base_aliases(tree: ast.Module) -> set[str]:
    """The names DLNest's base class is imported as in this file (`... as DPB`)."""
    return {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name == BASE_CLASS
    }


def _inherited(
    plugin_class: ast.ClassDef,
    classes: Mapping[str, ast.ClassDef],
    base_aliases: set[str],
    path: Path,
    missing: list[str],
) -> dict[str, Any]:
    """What the plugin class's bases supply of the `missing` attributes, the first base first
    (Python's order for single-level bases)."""
    found: dict[str, Any] = {}
    for base in reversed(plugin_class.bases):  # later bases first, so the first one wins
        base_name = _base_name(base)
        if base_name is not None and base_name in classes:
            found |= _class_attrs(classes[base_name], path)
        elif base_name in base_aliases or base_name == BASE_CLASS:
            found |= {_CONFIG_ATTR: {}, _DEFAULT_KEYS_ATTR: []}
    still = [attr for attr in missing if attr not in found]
    if still:
        bases = ", ".join(ast.unparse(base) for base in plugin_class.bases) or "none"
        raise PluginConfigError(
            f"class {PLUGIN_CLASS} sets no {' or '.join(still)}, and its bases ({bases}) do not "
            "in this file: set them in the class as plain values (a base imported from another "
            f"file cannot be read without running it, except DLNest's {BASE_CLASS})",
            file=path,
            key=still[0],
        )
    return {attr: found[attr] for attr in missing}


def _base_name(base: ast.expr) -> str | None:
    if isinstance(base, ast.Name):
        return base.id
    if isinstance(base, ast.Attribute):  # DLNest.Plugins.DLNestPluginBase.DLNestPluginBase
        return base.attr
    return None


def _checked(found: Mapping[str, Any], path: Path) -> PluginDefaults:
    name, config, default_keys = (found[attr] for attr in _ATTRS)
    if not isinstance(name, str) or not name.strip():
        raise PluginConfigError(
            f"{PLUGIN_CLASS}._NAME must be a non-empty string, not {name!r}",
            file=path,
            key=_NAME_ATTR,
        )
    if not isinstance(config, dict) or not all(isinstance(key, str) for key in config):
        raise PluginConfigError(
            f"{PLUGIN_CLASS}._config must be a dict with string keys (it becomes JSON)",
            file=path,
            key=_CONFIG_ATTR,
        )
    if not isinstance(default_keys, list | tuple) or not all(
        isinstance(key, str) for key in default_keys
    ):
        raise PluginConfigError(
            f"{PLUGIN_CLASS}._defaultKeys must be a list of key names",
            file=path,
            key=_DEFAULT_KEYS_ATTR,
        )
    absent = [key for key in default_keys if key not in config]
    if absent:
        raise PluginConfigError(
            f"{PLUGIN_CLASS}._defaultKeys names {', '.join(map(repr, absent))}, which _config "
            "does not hold",
            file=path,
            key=_DEFAULT_KEYS_ATTR,
        )
    return PluginDefaults(name, MappingProxyType(config), tuple(default_keys))


def listed_plugins(args: Mapping[str, Any]) -> list[str]:
    """`args["plugins"]`: the plugins a run loads, in order, each once (DLNest ran a plugin
    listed twice twice: two mails at every end)."""
    listed = args.get(PLUGINS_KEY) or []
    if not isinstance(listed, list) or not all(isinstance(name, str) for name in listed):
        raise ConfigError("'plugins' must be a list of plugin names or .py paths", key=PLUGINS_KEY)
    return list(dict.fromkeys(listed))
