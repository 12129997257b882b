"""Which runs are "the same job" as far as GPU memory goes: a fingerprint of a run's code and
config, under which the queue remembers what earlier runs used (`store.py` memory_history).

The fingerprint hashes the package's Python files (by their path in the package) and its
merged config, less what does not change memory:

- keys that name places: ending in `_path`, `_paths`, `_dir`, `_root` or `_file`;
- keys that describe or number a run: `description`, `epochs`, anything with `seed` in its
  name, and the package's own marks (keys beginning with `_`: `_description`, `_seed`);
- `checkpoint_args` (how many checkpoints are kept) and `plugins_config`.

These are dropped at any depth. Anything else counts: a changed batch size, width or model
class gets no history (and reserves the default until measured), while a new description, seed,
epoch count or save folder keeps it. A continue with a config change (`-f`) is a new job only if
the change touches what counts.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

from .package import CHECKPOINTS_DIR, SavePackage

_PLACE_SUFFIXES = ("_path", "_paths", "_dir", "_root", "_file")
_RUN_KEYS = frozenset({"description", "epochs", "checkpoint_args", "plugins_config"})


def memory_fingerprint(package: SavePackage, args: Mapping[str, Any]) -> str:
    """The fingerprint of a run of `package` with config `args` (16 hex digits)."""
    digest = hashlib.sha256()
    for relative in _code_files(package):
        digest.update(relative.encode() + b"\0")
        with open(package.path / relative, "rb") as code:
            digest.update(code.read() + b"\0")
    digest.update(json.dumps(memory_relevant(args), sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def memory_relevant(args: Mapping[str, Any]) -> dict[str, Any]:
    """`args` without the keys that do not change a run's memory (this module's rule)."""
    kept: dict[str, Any] = {}
    for key, value in args.items():
        if (
            key.startswith("_")
            or key in _RUN_KEYS
            or "seed" in key
            or key.endswith(_PLACE_SUFFIXES)
        ):
            continue
        kept[key] = memory_relevant(value) if isinstance(value, Mapping) else value
    return kept


def _code_files(package: SavePackage) -> list[str]:
    """The package's Python files, relative to it, sorted; checkpoints are not walked."""
    found = []
    for folder, subfolders, files in os.walk(package.path):
        subfolders[:] = [
            name for name in subfolders if name != CHECKPOINTS_DIR and not name.startswith(".")
        ]
        relative = os.path.relpath(folder, package.path)
        found += [os.path.normpath(os.path.join(relative, f)) for f in files if f.endswith(".py")]
    return sorted(found)
