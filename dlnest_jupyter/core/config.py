"""Load DLNest JSON configs: the root, its `child_jsons` tree, then the frequently-changed file.

Order and override rules (DESIGN.md section 3):
- each file applies its own keys first, then each entry of its `child_jsons` in list order,
  depth first; later files override earlier ones; the freq file comes last, by the same rules;
- a dict over a dict merges key by key; anything else replaces wholesale (lists included, and a
  dict over a scalar, where DLNest crashed);
- a relative child path resolves against the folder of the file that names it.

The loader also records, for every leaf key, the file that set it last (provenance).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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

    def source_of(self, dotted_key: str) -> Path | None:
        return self.provenance.get(dotted_key)


def load_config(root_path: Path | str, freq_path: Path | str | None = None) -> LoadedConfig:
    """Read and merge the root config tree, then the freq config tree over it."""
    root = _existing_file(Path(root_path), named_by=None)
    loader = _Loader()
    loader.load(root, chain=())
    if freq_path is not None:
        loader.load(_existing_file(Path(freq_path), named_by=None), chain=())
    return LoadedConfig(
        args=loader.args, provenance=loader.provenance, files=tuple(loader.files), root_path=root
    )


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

    def load(self, path: Path, chain: tuple[Path, ...]) -> None:
        if path in chain:
            cycle = " -> ".join(str(p) for p in (*chain, path))
            raise ConfigError(
                f"child_jsons form a cycle: {cycle}", file=chain[-1], key=CHILDREN_KEY
            )
        document = read_json_object(path)
        self.files.append(path)
        children = document.pop(CHILDREN_KEY, [])
        self._apply(self.args, document, path, prefix="")
        for child in _child_paths(children, path):
            self.load(_existing_file(child, named_by=path), (*chain, path))

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
    if named_by is not None:
        raise ConfigError(
            f"child config {resolved} does not exist", file=named_by, key=CHILDREN_KEY
        )
    raise ConfigError("config file does not exist", file=resolved)


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
