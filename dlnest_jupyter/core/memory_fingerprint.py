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

import functools
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from .package import CHECKPOINTS_DIR, SavePackage

_PLACE_SUFFIXES = ("_path", "_paths", "_dir", "_root", "_file")
_RUN_KEYS = frozenset({"description", "epochs", "checkpoint_args", "plugins_config"})


def memory_fingerprint(package: SavePackage, args: Mapping[str, Any]) -> str:
    """The fingerprint of a run of `package` with config `args` (16 hex digits)."""
    files = [(relative, package.path / relative) for relative in _code_files(package)]
    return fingerprint_of(files, args)


def fingerprint_of(files: Iterable[tuple[str, Path]], args: Mapping[str, Any]) -> str:
    """The fingerprint of Python `files` (their path in the package, and where to read them)
    and config `args`: a submission hashes the project's files it is about to copy, a continue
    the package's copies, and the two agree."""
    digest = hashlib.sha256()
    for relative, path in sorted(files):
        digest.update(os.path.normpath(relative).encode() + b"\0" + _file_digest(path) + b"\0")
    digest.update(json.dumps(memory_relevant(args), sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=4096)
def _digest_of(path: Path, mtime_ns: int, size: int) -> bytes:
    """A file's digest, kept while it is unchanged: a sweep submits the same project's files
    hundreds of times a second."""
    with open(path, "rb") as code:
        return hashlib.sha256(code.read()).digest()


def _file_digest(path: Path) -> bytes:
    stat = path.stat()
    return _digest_of(path, stat.st_mtime_ns, stat.st_size)


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


def copied_files(copies: Iterable[tuple[Path, PurePosixPath]]) -> list[tuple[str, Path]]:
    """The Python files a package will hold, from the project (`ProjectLayout.copies`)."""
    files = []
    for source, inside in copies:
        if source.is_dir():
            files += [(os.path.join(str(inside), rel), path) for rel, path in _python_files(source)]
        elif source.name.endswith(".py"):
            files.append((str(inside), source))
    return files


def _code_files(package: SavePackage) -> list[str]:
    """The package's Python files, relative to it; checkpoints are not walked."""
    return [relative for relative, _ in _python_files(package.path)]


def _python_files(root: Path) -> Iterator[tuple[str, Path]]:
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [
            name for name in subfolders if name != CHECKPOINTS_DIR and not name.startswith(".")
        ]
        for name in files:
            if name.endswith(".py"):
                path = Path(folder, name)
                yield os.path.relpath(path, root), path
