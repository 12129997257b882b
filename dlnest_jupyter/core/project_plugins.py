"""`addP` and `new -p`: add plugins and their configs to a project, as DLNest's `usePlugin` does.

The names go to the `plugins` list, and each plugin's default config (with `full`, its whole
`_config`) under `plugins_config`, in the project's `plugins_config.json` if it has one, else in
its `root_config.json` (the list and the object made if missing). Unlike DLNest:

- every name is checked before anything is written: one unknown name changes nothing, and the
  error names the shipped plugins (DLNest printed "Wrong plugin name" and went on);
- an empty list is refused (DLNest's server added a plugin named "[]" when no -p was given);
- a plugin already listed is left as it is and reported; a config the project already holds for
  a plugin it does not list is kept, only the keys it lacks are added (DLNest replaced it);
- a plugin file is listed by its absolute path (DLNest listed its `_NAME`, which then loaded
  as a shipped plugin of that name, or failed), its config under its `_NAME`;
- the file is replaced atomically, its keys kept in the user's order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic_io import atomic_writer
from .config import read_json_object
from .errors import ConfigError
from .fields import path, shown
from .plugin_configs import (
    PLUGIN_CLASS,
    PLUGINS_CONFIG_KEY,
    PLUGINS_KEY,
    SHIPPED_NAMES,
    is_plugin_file,
    plugin_config,
)

PLUGINS_FILE = "plugins_config.json"
ROOT_FILE = "root_config.json"
MAX_PLUGINS = 64  # per request: a bound on what a body may ask, far above any real project
NO_PLUGINS = "name at least one plugin: a shipped plugin's name or a .py file"
# The flags' help, for the `dlnest` command and the `%dlnest` magic alike.
PLUGINS_HELP = (
    f"plugins to use: {', '.join(SHIPPED_NAMES)}, or a .py file defining class {PLUGIN_CLASS}"
)
FULL_HELP = "write each plugin's full config, not only its default keys"


@dataclass(frozen=True)
class Resolved:
    """A plugin as it will be listed (`entry`) and configured (`name`: `config`)."""

    entry: str
    name: str
    config: dict[str, Any]


@dataclass(frozen=True)
class PluginsAdded:
    """What `add_plugins` did: the file it wrote, the entries it added, those already listed."""

    file: Path
    added: tuple[str, ...]
    already: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"file": str(self.file), "added": list(self.added), "already": list(self.already)}


def plugin_names(value: Any) -> str | None:
    """A request field's check (core/fields.py): a non-empty list of plugin names or paths."""
    if not isinstance(value, list) or not value:
        return "must be a list that names at least one plugin (leave it out for none)"
    if len(value) > MAX_PLUGINS:
        return f"names {len(value)} plugins; at most {MAX_PLUGINS} at once"
    for item in value:
        if not isinstance(item, str):
            return "must be a list of plugin names (strings)"
        problem = path(item)  # a name or a path: the path rule bounds both
        if problem is not None:
            return f"item {shown(item)} {problem}"
    return None


def resolve_plugins(entries: Sequence[str], full: bool = False) -> list[Resolved]:
    """Each entry's name and config (a file read, never run), all checked before any is used."""
    if not entries:
        raise ConfigError(f"no plugins given: {NO_PLUGINS}")
    resolved: dict[str, Resolved] = {}  # by entry: one named twice is added once
    for entry in entries:
        if is_plugin_file(entry):
            entry = str(Path(entry).expanduser().resolve())
        if entry not in resolved:
            name, config = plugin_config(entry, full)
            resolved[entry] = Resolved(entry, name, config[name])
    return list(resolved.values())


def plugins_target(project: Path) -> Path:
    """The file plugins are added to: `plugins_config.json` if the project has one, else
    `root_config.json`."""
    if not project.is_dir():
        problem = "is not a folder" if project.exists() else "does not exist"
        raise ConfigError(f"{problem}: give a project folder", file=project)
    for name in (PLUGINS_FILE, ROOT_FILE):
        if (project / name).is_file():
            return project / name
    raise ConfigError(
        f"holds neither {PLUGINS_FILE} nor {ROOT_FILE}: not a project folder", file=project
    )


def add_plugins(project: Path | str, entries: Sequence[str], full: bool = False) -> PluginsAdded:
    """Add `entries` (shipped names or plugin files) to the project in folder `project`."""
    return add_resolved(Path(project), resolve_plugins(entries, full))


def add_resolved(project: Path, plugins: Sequence[Resolved]) -> PluginsAdded:
    target = plugins_target(project)
    document = read_json_object(target)
    listed = document.setdefault(PLUGINS_KEY, [])
    if not isinstance(listed, list):
        raise ConfigError(
            f"{PLUGINS_KEY!r} must be a list of plugin names", file=target, key=PLUGINS_KEY
        )
    configs = document.setdefault(PLUGINS_CONFIG_KEY, {})
    if not isinstance(configs, dict):
        raise ConfigError(
            f"{PLUGINS_CONFIG_KEY!r} must be an object of plugin name: config",
            file=target,
            key=PLUGINS_CONFIG_KEY,
        )
    added: list[str] = []
    already: list[str] = []
    for plugin in plugins:
        if plugin.entry in listed:
            already.append(plugin.entry)
            continue
        listed.append(plugin.entry)
        held = configs.get(plugin.name)
        configs[plugin.name] = (
            {**plugin.config, **held} if isinstance(held, dict) else plugin.config
        )
        added.append(plugin.entry)
    if added:
        # The user's own file: written in its keys' order (not sorted, unlike our files), with
        # DLNest's indent, and replaced atomically so a crash leaves the old config whole.
        text = json.dumps(document, indent=4, ensure_ascii=False) + "\n"
        with atomic_writer(target, "w") as handle:
            handle.write(text)
    return PluginsAdded(target, tuple(added), tuple(already))


def plugins_added_lines(reply: Mapping[str, Any]) -> list[str]:
    """What an addP or `new -p` did, in words, from its JSON (`PluginsAdded.to_json`)."""
    lines = []
    if reply["added"]:
        lines.append(f"added {', '.join(reply['added'])} to {reply['file']}")
    if reply["already"]:
        were = "was" if len(reply["already"]) == 1 else "were"
        lines.append(
            f"{', '.join(reply['already'])} {were} already listed in {reply['file']}: left as is"
        )
    return lines
