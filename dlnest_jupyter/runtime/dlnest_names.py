"""DLNest 0.3's module paths, for projects that import from them: `DLNest.Common.RunnerBaseTorch`,
`DLNest.Plugins.MailsNote` and the rest give our classes and plugins.

Installed (`install`) only in the processes that run user code: training processes and their DDP
ranks, analyzer kernels and the `dlnest` command's foreground runs all load the user's classes
through `user_code.load_user_classes`, which installs it first. Nothing named `DLNest` is put in
site-packages, so a real DLNest installed beside us stays importable everywhere else; in a
process running a project, ours answers first, because that project's classes must derive from
our bases. A module under `DLNest` that we do not provide fails to import with a message that
names it and lists what is provided.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

ROOT = "DLNest"
_PACKAGES = {"DLNest", "DLNest.Common", "DLNest.Plugins"}
# DLNest module path -> (our module, the names it exports under DLNest's path)
_CLASSES = {
    "DLNest.Common.DatasetBase": ("dlnest_jupyter.runtime.dataset", ("DatasetBase",)),
    "DLNest.Common.RunnerBase": ("dlnest_jupyter.runtime.runner", ("RunnerBase",)),
    "DLNest.Common.ModelBase": ("dlnest_jupyter.runtime.runner", ("ModelBase",)),
    "DLNest.Common.RunnerBaseTorch": ("dlnest_jupyter.runtime.runner_torch", ("RunnerBaseTorch",)),
    "DLNest.Common.ModelBaseTorch": ("dlnest_jupyter.runtime.runner_torch", ("ModelBaseTorch",)),
    "DLNest.Common.LifeCycleBase": ("dlnest_jupyter.runtime.lifecycle", ("LifeCycleBase",)),
    "DLNest.Common.RunningStatus": ("dlnest_jupyter.runtime.status", ("RunningStatus",)),
    "DLNest.Plugins.DLNestPluginBase": (
        "dlnest_jupyter.runtime.plugins.base",
        ("DLNestPluginBase",),
    ),
}
# A shipped plugin's DLNest module holds our module's names, so
# `DLNest.Plugins.MailsNote.DLNestPlugin` (which a life cycle calls `giveResultValues` on) is
# the very class the run's plugin list holds.
PLUGIN_MODULES = {
    "LogInit": "dlnest_jupyter.runtime.plugins.log_init",
    "SimpleCMDVisualize": "dlnest_jupyter.runtime.plugins.simple_cmd_visualize",
    "AutoTensorboardScalar": "dlnest_jupyter.runtime.plugins.auto_tensorboard_scalar",
    "MailsNote": "dlnest_jupyter.runtime.plugins.mails_note",
}


class _DLNestFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != ROOT and not fullname.startswith(ROOT + "."):
            return None
        if fullname in _PACKAGES or fullname in _CLASSES or _plugin_name(fullname):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=fullname in _PACKAGES)
        raise ModuleNotFoundError(
            f"{fullname} is not provided by dlnest-jupyter, which runs DLNest 0.3 projects with "
            f"its own classes: it provides {', '.join(sorted(_CLASSES))} and the plugins "
            f"{', '.join(f'DLNest.Plugins.{name}' for name in PLUGIN_MODULES)}",
            name=fullname,
        )

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # a module of its own, filled by exec_module

    def exec_module(self, module: ModuleType) -> None:
        plugin = _plugin_name(module.__name__)
        if plugin is not None:  # every public name of ours, the same objects
            ours = importlib.import_module(PLUGIN_MODULES[plugin])
            module.__dict__.update(
                {name: value for name, value in vars(ours).items() if not name.startswith("__")}
            )
        elif module.__name__ in _CLASSES:
            ours_name, names = _CLASSES[module.__name__]
            source = importlib.import_module(ours_name)
            for name in names:
                setattr(module, name, getattr(source, name))
        elif module.__name__ in _PACKAGES:
            module.__path__ = []


def _plugin_name(fullname: str) -> str | None:
    prefix = "DLNest.Plugins."
    name = fullname[len(prefix) :] if fullname.startswith(prefix) else ""
    return name if name in PLUGIN_MODULES else None


_FINDER = _DLNestFinder()


def install() -> None:
    """Make `DLNest.*` resolve to ours in this process (idempotent)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    # A submodule is never imported without its package: no ROOT, nothing stale (a training
    # process holds over a thousand modules; scanning them all on every launch costs).
    if ROOT not in sys.modules:
        return
    stale = [name for name in sys.modules if name == ROOT or name.startswith(ROOT + ".")]
    for name in stale:  # a real DLNest imported earlier in this process: ours answers now
        if getattr(sys.modules[name], "__loader__", None) is not _FINDER:
            del sys.modules[name]
