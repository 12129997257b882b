"""DLNest's plugins: loading `args["plugins"]`, and running each plugin's hook before the host's.

DLNest wrapped every hook of the runner, the dataset and the life cycle in a decorator that, on
each call, walked the plugins and `dir()`-ed each one (187 µs a step with three plugins). Here a
host's methods are wrapped once, when it is built, and only those some plugin defines: a hook no
plugin defines is the host's own bound method, at no cost per call. The wrapper calls each
plugin's function with the host as `self` (DLNest's mixin semantics) and the hook's own
arguments, then the host's method; `initLog` and `getSaveDict` of the runner and the dataset
merge the plugins' dicts under the host's. A plugin that raises is reported once per plugin and
hook in the run's output (DLNest swallowed it at debug level) and the run goes on.
"""

from __future__ import annotations

import functools
import importlib
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError, UserCodeError
from ..core.plugin_configs import (
    PLUGIN_CLASS,
    PLUGINS_KEY,
    is_plugin_file,
    listed_plugins,
    unknown_plugin_message,
)
from .dlnest_names import PLUGIN_MODULES
from .lifecycle import LifeCycleBase
from .user_code import import_file

# Plugin method -> the host method it precedes, per host (DLNest's wrapped methods, less their
# underscore; `runnerInit` and `datasetInit` precede the host's `init`).
RUNNER_HOOKS: Mapping[str, str] = {
    "runnerInit": "init",
    **{
        name: name
        for name in (
            "initOptimizer",
            "initLog",
            "getSaveDict",
            "loadSaveDict",
            "runOneStep",
            "visualize",
            "validate",
            "validationInit",
            "validateABatch",
            "validationAnalyze",
        )
    },
}
DATASET_HOOKS: Mapping[str, str] = {
    "datasetInit": "init",
    "getSaveDict": "getSaveDict",
    "loadSaveDict": "loadSaveDict",
}
LIFE_CYCLE_HOOKS: Mapping[str, str] = {
    name: name
    for name in dir(LifeCycleBase)
    if (name[:1] in "BA" and name[1:2].isupper())
    or name in ("commandLineOutput", "getSaveDict", "loadSaveDict", "trainAborting")
}
MERGED = frozenset({"initLog", "getSaveDict"})  # on the runner and the dataset


@dataclass(frozen=True)
class Plugin:
    name: str  # as listed in args["plugins"]
    cls: type


@dataclass
class Plugins:
    """A run's plugins, and which of their failures were already reported."""

    loaded: Sequence[Plugin] = ()
    _reported: set[tuple[str, str]] = field(default_factory=set)

    def attach(
        self, host: Any, hooks: Mapping[str, str], merged: frozenset[str] = frozenset()
    ) -> None:
        """Wrap `host`'s hooked methods that some plugin defines."""
        for plugin_hook, method in hooks.items():
            original = getattr(host, method, None)
            if not callable(original):
                continue  # a runner without `validate`: a plugin must not make it grow one
            functions = [
                (plugin.name, function)
                for plugin in self.loaded
                if callable(function := getattr(plugin.cls, plugin_hook, None))
            ]
            if functions:
                wrapped = self._wrapped(
                    host, plugin_hook, original, functions, plugin_hook in merged
                )
                object.__setattr__(host, method, wrapped)

    def _wrapped(
        self,
        host: Any,
        hook: str,
        original: Callable[..., Any],
        functions: list[tuple[str, Callable[..., Any]]],
        merge: bool,
    ) -> Callable[..., Any]:
        @functools.wraps(original)
        def hooked(*args: Any, **kwargs: Any) -> Any:
            merged: dict[str, Any] = {}
            for name, function in functions:
                try:
                    result = function(host, *args, **kwargs)
                except Exception as error:
                    self._report(name, hook, error)
                    continue
                if merge and isinstance(result, dict):
                    merged.update(result)
            value = original(*args, **kwargs)
            if merge:
                return {**merged, **(value or {})}
            return value

        return hooked

    def _report(self, name: str, hook: str, error: Exception) -> None:
        if (name, hook) in self._reported:
            return
        self._reported.add((name, hook))
        print(
            f"dlnest: plugin {name} failed in {hook} (said once; the run goes on):\n"
            + "".join(traceback.format_exception(error)).rstrip(),
            file=sys.stderr,
            flush=True,
        )


def load_plugins(args: Mapping[str, Any]) -> Plugins:
    """`args["plugins"]`: shipped plugins by name, others as paths to a `.py` file defining
    `DLNestPlugin` (absolute, or relative to the save package)."""
    return Plugins([Plugin(name, _plugin_class(name, args)) for name in listed_plugins(args)])


def _plugin_class(name: str, args: Mapping[str, Any]) -> type:
    if name in PLUGIN_MODULES:
        return importlib.import_module(PLUGIN_MODULES[name]).DLNestPlugin  # type: ignore[no-any-return]
    if not is_plugin_file(name):
        raise ConfigError(unknown_plugin_message(name), key=PLUGINS_KEY)
    path = Path(name).expanduser()
    if not path.is_absolute():  # the package's own copy (core/package_creation.py)
        path = Path(str(args.get("root_file_path") or ".")) / path
    if not path.is_file():
        raise ConfigError(f"plugin file {path} does not exist", key=PLUGINS_KEY)
    plugin = getattr(import_file(path), PLUGIN_CLASS, None)
    if not isinstance(plugin, type):
        raise UserCodeError(f"defines no class {PLUGIN_CLASS}", file=path, key=PLUGINS_KEY)
    return plugin
