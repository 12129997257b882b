"""Where a project's code lives, checked before anything is copied or run.

A project names three user classes (runner, dataset, life cycle), each by a file key and a class
key, plus `other_file_paths` (helpers, files or folders). This module resolves those paths,
checks that each file exists and defines its class (by parsing, never importing: the server must
not run user code), and says where each file goes inside a save package.
"""

from __future__ import annotations

import ast
import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from stat import S_ISREG
from typing import Any

from .errors import ConfigError, UserCodeError
from .plugin_configs import (
    PLUGINS_KEY,
    SHIPPED,
    is_plugin_file,
    listed_plugins,
    unknown_plugin_message,
)


@dataclass(frozen=True)
class ClassRole:
    role: str
    file_keys: tuple[str, ...]  # the first present wins; later ones are DLNest-era aliases
    name_keys: tuple[str, ...]
    base_name: str  # the public base class it must derive from


ROLES = (
    ClassRole(
        "runner",
        ("runner_file_path", "model_file_path"),
        ("runner_name", "model_name"),
        "ModelBase",
    ),
    ClassRole("dataset", ("dataset_file_path",), ("dataset_name",), "DatasetBase"),
    ClassRole("life_cycle", ("life_cycle_file_path",), ("life_cycle_name",), "LifeCycleBase"),
)
OTHER_FILES_KEY = "other_file_paths"
_MISSING = object()
CODE_PATH_KEYS = (*(k for r in ROLES for k in r.file_keys), OTHER_FILES_KEY)


@dataclass(frozen=True)
class UserClassRef:
    """One user class: which file defines it and where that file sits in a package."""

    role: str
    class_name: str
    source: Path  # absolute path of the file to import or copy
    package_path: PurePosixPath  # relative path inside a save package
    file_key: str
    base_name: str


@dataclass(frozen=True)
class ProjectLayout:
    root_dir: Path
    classes: tuple[UserClassRef, ...]
    other_files: tuple[tuple[Path, PurePosixPath], ...]  # (absolute source, package path)
    # Plugin files named in `plugins` (not the shipped plugins): copied like the code, so a
    # package, and a continue of it, runs the plugin as it was (entry, source, package path).
    plugin_files: tuple[tuple[str, Path, PurePosixPath], ...] = ()

    def by_role(self, role: str) -> UserClassRef:
        return next(ref for ref in self.classes if ref.role == role)

    def copies(self) -> list[tuple[Path, PurePosixPath]]:
        classes = [(ref.source, ref.package_path) for ref in self.classes]
        plugins = [(source, inside) for _, source, inside in self.plugin_files]
        return classes + list(self.other_files) + plugins


SourceOf = Callable[[str], "Path | None"]


def project_layout(
    args: Mapping[str, Any],
    root_dir: Path,
    source_of: SourceOf | None = None,
    check_names: bool = True,
) -> ProjectLayout:
    """Resolve and check the code files `args` names, relative to `root_dir`.

    `check_names=False` skips parsing each class's file for its class: a save package's were
    checked when it was made, and importing them checks again (parsing costs a launch ~2 ms).
    """
    blame = source_of or (lambda key: None)
    root_dir = Path(os.path.realpath(root_dir))  # once: a sweep lays out the same project often
    classes = tuple(_class_ref(args, role, root_dir, blame, check_names) for role in ROLES)
    other_files = tuple(_other_files(args, root_dir, blame))
    plugin_files = tuple(_plugin_files(args, root_dir, blame))
    layout = ProjectLayout(root_dir, classes, other_files, plugin_files)
    _check_no_collisions(layout, blame)
    return layout


def package_relative(raw: str, root_dir: Path) -> tuple[Path, PurePosixPath]:
    """Map a configured path to (absolute source, path inside the package).

    Paths under the project root keep their relative place; anything else (absolute, or
    escaping with `..`) lands at the package root under its own name. `root_dir` must be
    resolved already.
    """
    source = os.path.realpath(os.path.join(root_dir, raw))  # an absolute `raw` replaces root_dir
    inside = os.path.relpath(source, root_dir)
    if inside == os.pardir or inside.startswith(os.pardir + os.sep):
        inside = os.path.basename(source)
    return Path(source), PurePosixPath(inside)


def defines_name(source: Path, name: str, stat: os.stat_result | None = None) -> bool:
    """True when the module binds `name` at top level (class, assignment or import)."""
    stat = stat or source.stat()
    return name in _top_level_names(source, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _top_level_names(source: Path, mtime_ns: int, size: int) -> frozenset[str]:
    # Parsing costs about a millisecond a file here; a sweep submits the same files many times.
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update(alias.asname or alias.name.split(".")[0] for alias in node.names)
    return frozenset(names)


def _class_ref(
    args: Mapping[str, Any], role: ClassRole, root_dir: Path, blame: SourceOf, check_names: bool
) -> UserClassRef:
    file_key, raw_file = _first_present(args, role.file_keys)
    name_key, class_name = _first_present(args, role.name_keys)
    if raw_file is _MISSING or class_name is _MISSING:
        missing = role.file_keys[0] if raw_file is _MISSING else role.name_keys[0]
        raise ConfigError(f"missing key {missing!r}", file=blame(missing), key=missing)
    for key, value in ((file_key, raw_file), (name_key, class_name)):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key} must be a non-empty string", file=blame(key), key=key)
    source, inside = package_relative(raw_file, root_dir)
    try:
        stat = source.stat()
    except OSError:
        stat = None
    if stat is None or not S_ISREG(stat.st_mode):
        what = "does not exist" if stat is None else "is not a Python file"
        raise ConfigError(
            f"{file_key} names {source}, which {what}", file=blame(file_key), key=file_key
        )
    if not check_names:
        return UserClassRef(role.role, class_name, source, inside, file_key, role.base_name)
    try:
        found = defines_name(source, class_name, stat)
    except SyntaxError as exc:
        raise UserCodeError(
            f"syntax error: {exc.msg}", file=source, line=exc.lineno, column=exc.offset
        ) from exc
    if not found:
        raise UserCodeError(
            f"{name_key} is {class_name!r}, but this file defines no such class",
            file=source,
            key=name_key,
        )
    return UserClassRef(role.role, class_name, source, inside, file_key, role.base_name)


def _other_files(
    args: Mapping[str, Any], root_dir: Path, blame: SourceOf
) -> list[tuple[Path, PurePosixPath]]:
    raw = args.get(OTHER_FILES_KEY, [])
    if not isinstance(raw, list) or not all(isinstance(p, str) and p for p in raw):
        raise ConfigError(
            f"{OTHER_FILES_KEY} must be a list of paths",
            file=blame(OTHER_FILES_KEY),
            key=OTHER_FILES_KEY,
        )
    files = []
    for entry in raw:
        source, inside = package_relative(entry, root_dir)
        if not source.exists():
            raise ConfigError(
                f"{OTHER_FILES_KEY} names {source}, which does not exist",
                file=blame(OTHER_FILES_KEY),
                key=OTHER_FILES_KEY,
            )
        files.append((source, inside))
    return files


def _plugin_files(
    args: Mapping[str, Any], root_dir: Path, blame: SourceOf
) -> list[tuple[str, Path, PurePosixPath]]:
    """The plugin files `plugins` names. A name that is neither a shipped plugin nor an
    existing `.py` file is refused here, before a run is queued: otherwise every trial of a
    sweep would be made and started only to fail at its first line."""
    files = []
    for entry in listed_plugins(args):
        if entry in SHIPPED:
            continue
        if not is_plugin_file(entry):
            raise ConfigError(
                unknown_plugin_message(entry), file=blame(PLUGINS_KEY), key=PLUGINS_KEY
            )
        source, inside = package_relative(os.path.expanduser(entry), root_dir)
        if not source.is_file():
            raise ConfigError(
                f"{PLUGINS_KEY} names {source}, which does not exist",
                file=blame(PLUGINS_KEY),
                key=PLUGINS_KEY,
            )
        files.append((entry, source, inside))
    return files


def _check_no_collisions(layout: ProjectLayout, blame: SourceOf) -> None:
    # DLNest silently let a later absolute path overwrite an earlier file of the same name.
    seen: dict[PurePosixPath, Path] = {}
    for source, inside in layout.copies():
        if seen.setdefault(inside, source) != source:
            raise ConfigError(
                f"{seen[inside]} and {source} would both be copied to {inside} in the save package",
                file=blame(OTHER_FILES_KEY),
                key=OTHER_FILES_KEY,
            )


def _first_present(args: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str, Any]:
    for key in keys:
        if key in args:
            return key, args[key]
    return keys[0], _MISSING
