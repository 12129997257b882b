"""Import the user's classes from a save package's own copy of the code."""

from __future__ import annotations

import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType

from ..core.errors import UserCodeError
from ..core.project import ProjectLayout, UserClassRef
from . import dlnest_names
from .dataset import DatasetBase
from .lifecycle import LifeCycleBase
from .runner import RunnerBase

BASES: dict[str, type] = {
    "ModelBase": RunnerBase,
    "DatasetBase": DatasetBase,
    "LifeCycleBase": LifeCycleBase,
}


def load_user_classes(layout: ProjectLayout) -> dict[str, type]:
    """Return {role: class} for the runner, dataset and life cycle, each checked against its base.

    The package root and the folder of every code file go first on sys.path, so helpers named in
    `other_file_paths` import from the package copy rather than from the live project. A DLNest
    0.3 project's `from DLNest.Common.RunnerBaseTorch import ...` resolves to ours
    (`dlnest_names.py`).
    """
    dlnest_names.install()
    _put_on_sys_path(layout)
    return {ref.role: _load_class(ref) for ref in layout.classes}


def import_file(path: Path) -> ModuleType:
    """Import a Python file by path, once; a second call returns the same module."""
    name = path.stem
    existing = sys.modules.get(name)
    if existing is not None:
        if Path(getattr(existing, "__file__", "") or "").resolve() == path.resolve():
            return existing
        name = f"dlnest_user_{abs(hash(str(path)))}_{path.stem}"  # e.g. a user file named random.py
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserCodeError("cannot be imported as a Python module", file=path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # No __pycache__ written into a save package (nor the helpers it imports): a package is a
    # record of the code, and creating those files costs milliseconds at every launch.
    writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        del sys.modules[name]
        detail = "".join(traceback.format_exception_only(exc)).strip()
        raise UserCodeError(f"importing it failed: {detail}", file=path) from exc
    finally:
        sys.dont_write_bytecode = writes_bytecode
    return module


def _load_class(ref: UserClassRef) -> type:
    module = import_file(ref.source)
    cls = getattr(module, ref.class_name, None)
    if not isinstance(cls, type):
        raise UserCodeError(
            f"defines no class {ref.class_name!r}", file=ref.source, key=ref.file_key
        )
    base = BASES[ref.base_name]
    if not issubclass(cls, base):
        raise UserCodeError(
            f"{ref.class_name} is not a subclass of dlnest_jupyter.{ref.base_name}",
            file=ref.source,
            key=ref.file_key,
        )
    return cls


def _put_on_sys_path(layout: ProjectLayout) -> None:
    folders = [layout.root_dir]
    for source, _ in layout.copies():
        folders.append(source if source.is_dir() else source.parent)
    for folder in reversed(dict.fromkeys(str(f) for f in folders)):
        if folder in sys.path:
            sys.path.remove(folder)
        sys.path.insert(0, folder)
