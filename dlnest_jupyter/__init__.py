"""dlnest-jupyter: run, queue, record and analyse PyTorch training from Jupyter.

The user API (base classes, `analyze`) imports torch and `Dashboard` imports ipywidgets, so they
load on first use: the Jupyter server imports this package to find its extension and must never
import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .core.package import SavePackage

if TYPE_CHECKING:  # `__getattr__` loads these on first use: torch and ipywidgets come with them
    from .dashboard import Dashboard
    from .runtime import (
        DatasetBase,
        LifeCycleBase,
        ModelBase,
        ModelBaseTorch,
        RunnerBase,
        RunnerBaseTorch,
        analyze,
    )

__all__ = [
    "Dashboard",
    "DatasetBase",
    "LifeCycleBase",
    "ModelBase",
    "ModelBaseTorch",
    "RunnerBase",
    "RunnerBaseTorch",
    "SavePackage",
    "__version__",
    "analyze",
]
_RUNTIME_NAMES = frozenset(__all__) - {"Dashboard", "SavePackage", "__version__"}


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .server.app import DLNestApp

    return [{"module": "dlnest_jupyter.server.app", "app": DLNestApp}]


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext dlnest_jupyter`: register the `%dlnest` magics."""
    from .client.magics import DLNestMagics

    def dashboard(client: Any) -> Any:
        return importlib.import_module(".dashboard", __name__).Dashboard(client)

    ipython.register_magics(DLNestMagics(ipython, dashboard_factory=dashboard))


def __getattr__(name: str) -> Any:
    if name == "Dashboard":
        return importlib.import_module(".dashboard", __name__).Dashboard
    if name in _RUNTIME_NAMES:
        return getattr(importlib.import_module(".runtime", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
