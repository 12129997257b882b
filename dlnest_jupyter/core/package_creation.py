"""Making a save package: check the project, claim a folder, copy the code and the merged args.

A sweep submits hundreds of packages a second, so this module counts inode operations: on a VM's
disk each costs up to a millisecond.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from . import atomic_io
from .config import LoadedConfig
from .errors import ConfigError, as_disk_full
from .package import (
    ARGS_FILE,
    CHECKPOINTS_DIR,
    NOSAVE_NAME,
    PACKAGE_FILE,
    SavePackage,
)
from .package_state import PackageState
from .plugin_configs import PLUGINS_KEY
from .project import OTHER_FILES_KEY, ROLES, ProjectLayout, project_layout

_COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
_COPY_CHUNK_BYTES = 1024 * 1024
_NEW_PACKAGE_STATE = atomic_io.json_text(PackageState().to_json()).encode()


@dataclass(frozen=True)
class PackageOptions:
    description: str = ""
    no_save: bool = False  # -ns: reuse the NOSAVE scratch folder
    use_description: bool = False  # -sd: name the folder after the description
    seed: int | None = None  # None: args' "seed", else a fresh random one (recorded either way)
    # Package folders that queued or running tasks use: a no-save run never clears one of
    # them under its run, and takes NOSAVE_2, NOSAVE_3, ... instead.
    in_use: frozenset[str] = frozenset()


def project_root(loaded: LoadedConfig) -> Path:
    """`root_file_path`, resolved against the root config's folder (its default)."""
    raw = loaded.args.get("root_file_path") or "."
    if not isinstance(raw, str):
        raise ConfigError(
            "root_file_path must be a string",
            file=loaded.source_of("root_file_path"),
            key="root_file_path",
        )
    return (loaded.root_path.parent / raw).resolve()


def save_root(loaded: LoadedConfig, root_dir: Path) -> Path:
    raw = loaded.args.get("save_root", "./Saves")
    if not isinstance(raw, str) or not raw:
        raise ConfigError(
            "save_root must be a non-empty string",
            file=loaded.source_of("save_root"),
            key="save_root",
        )
    return (root_dir / raw).resolve()


def create_package(
    loaded: LoadedConfig,
    options: PackageOptions = PackageOptions(),
    layout: ProjectLayout | None = None,
) -> SavePackage:
    """Copy the code and merged args into a new package folder and return it.

    The folder gets a name no other package has; if anything fails it is removed again, so
    bad input never leaves a half-made package behind.
    """
    if layout is None:
        layout = project_layout(loaded.args, project_root(loaded), loaded.blame)
    root = save_root(loaded, layout.root_dir)
    try:
        folder = _claim_folder(root, options)
    except OSError as error:
        full = as_disk_full(error, root, "making a save package")
        if full is not None:
            raise full from error
        raise ConfigError(  # a file in the way, a folder nobody may write to, /proc/...
            f"save_root {root}: no save package can be made there ({error.strerror or error})",
            file=loaded.blame("save_root"),
            key="save_root",
        ) from error
    # A sweep submits hundreds a second, and on a VM's disk every inode operation costs up to a
    # millisecond: each folder is made once, files are copied without their metadata, and the
    # files of this folder, which no task names yet, are written in place rather than renamed
    # there. `_package.json` comes last: a package cut short by a crash lacks it, or holds a
    # torn one, and either fails its task with a PackageError. Nothing is fsynced: the queue's
    # own commit (SQLite, synchronous=NORMAL) is not power-cut proof either. Checkpoint writes
    # stay durable.
    made = {folder}
    try:
        for source, inside in layout.copies():
            _copy(source, folder / inside, made)
        (folder / CHECKPOINTS_DIR).mkdir()
        args = _package_args(loaded.args, layout, folder, options)
        _write_new_file(folder / ARGS_FILE, atomic_io.json_text(args).encode())
        _write_new_file(folder / PACKAGE_FILE, _NEW_PACKAGE_STATE)
    except BaseException as error:
        shutil.rmtree(folder, ignore_errors=True)
        full = as_disk_full(error, folder, "making a save package; nothing of it was kept")
        if full is not None:
            raise full from error
        raise
    return SavePackage(folder)


def discard_new_package(package: SavePackage) -> None:
    """Remove a package this process created moments ago and that never ran."""
    shutil.rmtree(package.path, ignore_errors=True)


def _claim_folder(root: Path, options: PackageOptions) -> Path:
    if not root.is_dir():
        root.mkdir(parents=True, exist_ok=True)
    if options.no_save:
        names = itertools.chain([NOSAVE_NAME], (f"{NOSAVE_NAME}_{n}" for n in itertools.count(2)))
        folder = next(root / name for name in names if str(root / name) not in options.in_use)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        return folder
    if options.use_description and options.description:
        base = _folder_safe(options.description)
        return _claim_first_free(
            root, itertools.chain([base], (f"{base}_{n}" for n in itertools.count(1)))
        )
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    # A sweep submits hundreds a second: start after the last index this process claimed for
    # the stamp, not at 1, or each claim would try every name taken that second.
    first = _next_stamp_index.pop((root, stamp), 1)
    _next_stamp_index.clear()  # only the current second is ever asked for again
    folder = _claim_first_free(root, (f"{stamp}_{n}" for n in itertools.count(first)))
    _next_stamp_index[(root, stamp)] = int(folder.name.rsplit("_", 1)[1]) + 1
    return folder


_next_stamp_index: dict[tuple[Path, str], int] = {}


def _claim_first_free(root: Path, names: Iterator[str]) -> Path:
    for name in names:
        try:
            (root / name).mkdir()  # the atomic claim: a racing creator moves on to the next name
            return root / name
        except FileExistsError:
            continue
    raise AssertionError("unreachable: the name generators are infinite")


def _folder_safe(description: str) -> str:
    return re.sub(r"[^\w.\- ]", "_", description).strip(" .") or "run"


def _copy(source: Path, target: Path, made: set[Path]) -> None:
    """Copy a file or folder into the package; `made` holds the folders known to exist."""
    if target.parent not in made:
        target.parent.mkdir(parents=True, exist_ok=True)
        made.update(target.parent.parents)
        made.add(target.parent)
    if source.is_dir():
        shutil.copytree(source, target, ignore=_COPY_IGNORE, dirs_exist_ok=True)
        made.add(target)
    else:
        _copy_file(source, target)


def _copy_file(source: Path, target: Path) -> None:
    # Not shutil.copyfile, nor open(): their same-file, special-file and isatty checks were a
    # third of the cost of copying a project's few small files. The mode is kept (an
    # executable helper stays executable); times are not.
    reader = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        mode = os.fstat(reader).st_mode & 0o777
        writer = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        try:
            while chunk := os.read(reader, _COPY_CHUNK_BYTES):
                _write_all(writer, chunk)
        finally:
            os.close(writer)
    finally:
        os.close(reader)


def _write_new_file(target: Path, data: bytes) -> None:
    writer = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        _write_all(writer, data)
    finally:
        os.close(writer)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _package_args(
    args: Mapping[str, Any], layout: ProjectLayout, folder: Path, options: PackageOptions
) -> dict[str, Any]:
    rewritten = dict(args)
    for role in ROLES:
        ref = layout.by_role(role.role)
        rewritten[ref.file_key] = _relative(ref.package_path)
    if OTHER_FILES_KEY in rewritten:
        rewritten[OTHER_FILES_KEY] = [_relative(inside) for _, inside in layout.other_files]
    if layout.plugin_files:  # the package's copies, relative to it, where the run loads them
        copied = {entry: _relative(inside) for entry, _, inside in layout.plugin_files}
        rewritten[PLUGINS_KEY] = [copied.get(entry, entry) for entry in rewritten[PLUGINS_KEY]]
    seed = options.seed if options.seed is not None else args.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        seed = secrets.randbelow(2**31)
    rewritten.update(root_file_path=str(folder), _description=options.description, _seed=seed)
    return rewritten


def _relative(path: PurePosixPath) -> str:
    return f"./{path}"
