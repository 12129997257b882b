"""Load DLNest JSON configs: the root, its `child_jsons` tree, then the frequently-changed file.

Order and override rules (DESIGN.md section 3):
- each file applies its own keys first, then each entry of its `child_jsons` in list order,
  depth first; later files override earlier ones; the freq file comes last, by the same rules;
- a dict over a dict merges key by key; anything else replaces wholesale (lists included, and a
  dict over a scalar, where DLNest crashed);
- a relative child path resolves against the folder of the file that names it.

The loader also records, for every leaf key, the file that set it last (provenance), and warns
of freq keys the root tree lacks ("lrr" beside "lr"): a typo there would silently train with
the old value.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

CHILDREN_KEY = "child_jsons"


@dataclass(frozen=True)
class LoadedConfig:
    """The merged args and where each of them came from."""

    args: dict[str, Any]
    provenance: dict[str, Path]  # dotted leaf key -> the file that set it last
    files: tuple[Path, ...]  # every file read, in load order
    root_path: Path
    warnings: tuple[str, ...] = ()  # freq keys the root tree lacks, each with its nearest key

    def source_of(self, dotted_key: str) -> Path | None:
        return self.provenance.get(dotted_key)

    def blame(self, dotted_key: str) -> Path:
        """The file an error about the key names: the one that set it, else the root config
        (where a missing key belongs)."""
        return self.provenance.get(dotted_key) or self.root_path


def load_config(root_path: Path | str, freq_path: Path | str | None = None) -> LoadedConfig:
    """Read and merge the root config tree, then the freq config tree over it."""
    root = _existing_file(Path(root_path), named_by=None)
    loader = _Loader()
    loader.load(root, chain=())
    warnings: list[str] = []
    if freq_path is not None:
        freq = _load_tree(freq_path)
        warnings = unknown_key_warnings(freq.args, loader.args, freq.file_of)
        for path, document in freq.documents:  # replayed: provenance names each freq file
            loader.apply(path, document)
    return LoadedConfig(
        args=loader.args,
        provenance=loader.provenance,
        files=tuple(loader.files),
        root_path=root,
        warnings=tuple(warnings),
    )


def load_overrides(path: Path | str) -> tuple[dict[str, Any], Callable[[str], Path]]:
    """What a freq config file (and its children) sets, merged, to lay over other args; and
    which of its files set a given dotted key (for warnings)."""
    tree = _load_tree(path)
    return tree.args, tree.file_of


def _load_tree(path: Path | str) -> _Loader:
    loader = _Loader()
    loader.load(_existing_file(Path(path), named_by=None), chain=())
    return loader


def unknown_key_warnings(
    overrides: Mapping[str, Any], base: Mapping[str, Any], file: Path | Callable[[str], Path]
) -> list[str]:
    """A line for each key of `overrides` that `base` lacks, looking into dicts both hold.

    Such a key sets nothing the project reads ("lrr" beside "lr"), so the run would quietly
    use the old value; the nearest key of `base` at that level is named when one is close.
    `file`: where the overrides come from, or which file set a given dotted key.
    """
    lines = []
    for key, near in _unknown_keys(overrides, base, "", base):
        hint = f"; the nearest key is {near!r}" if near else ""
        where = file(key) if callable(file) else file
        lines.append(f"{key!r} in {where} is not a key of the config{hint}")
    return lines


def _unknown_keys(
    overrides: Mapping[str, Any], base: Mapping[str, Any], prefix: str, root: Mapping[str, Any]
) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    for key, value in overrides.items():
        if key in base:
            inner = base[key]
            if isinstance(value, Mapping) and isinstance(inner, Mapping):
                found += _unknown_keys(value, inner, f"{prefix}{key}.", root)
            continue
        found.append((f"{prefix}{key}", _nearest(str(key), base, prefix, root)))
    return found


def _nearest(key: str, base: Mapping[str, Any], prefix: str, root: Mapping[str, Any]) -> str | None:
    """The key the user most likely meant: a close name at the same level ("lrr" -> "lr"), else
    the same or a close name anywhere in the config ("lr" -> "model_config.lr": DLNest projects
    keep hyper-parameters in a child config's object)."""
    near = difflib.get_close_matches(key, [str(k) for k in base], n=1, cutoff=0.6)
    if near:
        return f"{prefix}{near[0]}"
    paths = _dotted_keys(root)
    by_name: dict[str, str] = {}
    for dotted in paths:  # the shallowest path of each last name
        by_name.setdefault(dotted.rsplit(".", 1)[-1], dotted)
    if key in by_name:
        return by_name[key]
    near = difflib.get_close_matches(key, list(by_name), n=1, cutoff=0.6)
    return by_name[near[0]] if near else None


def _dotted_keys(args: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every key of a config, nested ones as dotted paths, shallowest first."""
    keys = [f"{prefix}{k}" for k in args]
    for key, value in args.items():
        if isinstance(value, Mapping):
            keys += _dotted_keys(value, f"{prefix}{key}.")
    return keys


def read_json_object(path: Path) -> dict[str, Any]:
    """Parse one JSON file that must hold an object; errors give file, line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config ({exc.strerror})", file=path) from exc
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"invalid JSON: {exc.msg}", file=path, line=exc.lineno, column=exc.colno
        ) from exc
    if not isinstance(value, dict):
        raise ConfigError(f"a config must be a JSON object, not {type(value).__name__}", file=path)
    return value


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return `base` overridden by `override` (dicts merge recursively, the rest replaces)."""
    merged = dict(base)
    for key, value in override.items():
        old = merged.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            merged[key] = merge(old, value)
        else:
            merged[key] = _copy(value)
    return merged


class _Loader:
    def __init__(self) -> None:
        self.args: dict[str, Any] = {}
        self.provenance: dict[str, Path] = {}
        self.files: list[Path] = []
        self.documents: list[tuple[Path, dict[str, Any]]] = []  # each file's own keys, in order

    def load(self, path: Path, chain: tuple[Path, ...]) -> None:
        if path in chain:
            cycle = " -> ".join(str(p) for p in (*chain, path))
            raise ConfigError(
                f"child_jsons form a cycle: {cycle}", file=chain[-1], key=CHILDREN_KEY
            )
        document = read_json_object(path)
        children = document.pop(CHILDREN_KEY, [])
        self.apply(path, document)
        for child in _child_paths(children, path):
            self.load(_existing_file(child, named_by=path), (*chain, path))

    def file_of(self, dotted: str) -> Path:
        """The file that set `dotted` (for a dict, one of its keys) last."""
        inside = f"{dotted}."
        return self.provenance.get(dotted) or next(
            (f for k, f in self.provenance.items() if k.startswith(inside)), self.files[0]
        )

    def apply(self, path: Path, document: Mapping[str, Any]) -> None:
        """Lay one file's own keys over the args so far."""
        self.files.append(path)
        self.documents.append((path, dict(document)))
        self._apply(self.args, document, path, prefix="")

    def _apply(
        self, target: dict[str, Any], source: Mapping[str, Any], file: Path, prefix: str
    ) -> None:
        for key, value in source.items():
            dotted = f"{prefix}{key}"
            old = target.get(key)
            if isinstance(value, Mapping) and isinstance(old, dict):
                self._apply(old, value, file, prefix=f"{dotted}.")
                continue
            self._forget(dotted)
            target[key] = _copy(value)
            self._record(dotted, value, file)

    def _forget(self, dotted: str) -> None:
        for known in [k for k in self.provenance if k == dotted or k.startswith(f"{dotted}.")]:
            del self.provenance[known]

    def _record(self, dotted: str, value: Any, file: Path) -> None:
        if isinstance(value, Mapping) and value:
            for key, inner in value.items():
                self._record(f"{dotted}.{key}", inner, file)
        else:
            self.provenance[dotted] = file


def _child_paths(children: Any, parent: Path) -> list[Path]:
    if not isinstance(children, list) or not all(isinstance(c, str) for c in children):
        raise ConfigError("child_jsons must be a list of file paths", file=parent, key=CHILDREN_KEY)
    return [(parent.parent / child).resolve() for child in children]


def _existing_file(path: Path, named_by: Path | None) -> Path:
    resolved = path.expanduser().resolve()
    if resolved.is_file():
        return resolved
    what = "does not exist" if not resolved.exists() else _not_a_file(resolved)
    if named_by is not None:
        raise ConfigError(f"child config {resolved} {what}", file=named_by, key=CHILDREN_KEY)
    raise ConfigError(f"config file {what}", file=resolved)


def _not_a_file(path: Path) -> str:
    return "is a folder, not a JSON file" if path.is_dir() else "is not a regular file"


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
