"""A submission's config and code check, remembered while none of the files it read change.

A sweep submits one config hundreds of times. Reading and merging its JSON tree and resolving
and parsing its code files took a third of a submission; checking that none of those files
changed takes one `stat` each. A file counts as unchanged while its device, inode, size and
modification time (in nanoseconds) are: an edit in place, a replacement by rename and a symlink
pointed elsewhere all change one of them.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .config import LoadedConfig, load_config, merge
from .package_creation import project_root
from .project import OTHER_FILES_KEY, ProjectLayout, project_layout

_Fingerprint = tuple[tuple[str, int, int, int, int], ...]
# Files modified this recently are not remembered. File times come from a coarse kernel clock,
# so a write during the check can carry a time a little before the check began.
SETTLE_NS = 1_000_000_000


@dataclass(frozen=True)
class CheckedProject:
    loaded: LoadedConfig
    layout: ProjectLayout


class ProjectChecks:
    """`check(config, freq)`: `load_config` and `project_layout`, or what they gave last time."""

    def __init__(self, max_projects: int = 32) -> None:
        self.max_projects = max_projects
        self._lock = threading.Lock()
        self._known: OrderedDict[tuple[str, str | None], tuple[_Fingerprint, CheckedProject]] = (
            OrderedDict()
        )

    def check(self, config_path: str | Path, freq_path: str | Path | None = None) -> CheckedProject:
        key = (_canonical(config_path), None if freq_path is None else _canonical(freq_path))
        with self._lock:
            known = self._known.get(key)
        if known is not None and _fingerprint(path for path, *_ in known[0]) == known[0]:
            checked = known[1]
            # Callers get their own args: nothing they do can leak into the next submission.
            return dataclasses.replace(checked, loaded=_with_own_args(checked.loaded))
        settled_ns = time.time_ns() - SETTLE_NS
        loaded = load_config(config_path, freq_path)
        layout = project_layout(loaded.args, project_root(loaded), loaded.blame)
        fingerprint = _fingerprint([*map(str, loaded.files), *_code_paths_as_named(loaded, layout)])
        if any(mtime_ns > settled_ns for *_, mtime_ns in fingerprint):
            # Possibly written while we read it: the stamp may be newer than what we read, and
            # would then vouch for stale content. Checked afresh next time.
            return CheckedProject(loaded, layout)
        with self._lock:
            self._known[key] = (fingerprint, CheckedProject(_with_own_args(loaded), layout))
            self._known.move_to_end(key)
            while len(self._known) > self.max_projects:
                self._known.popitem(last=False)
        return CheckedProject(loaded, layout)


def _code_paths_as_named(loaded: LoadedConfig, layout: ProjectLayout) -> list[str]:
    # As named, not resolved: `stat` follows a symlink, so re-pointing one changes the inode
    # seen here even though the file it used to reach is untouched.
    named = [loaded.args[ref.file_key] for ref in layout.classes]
    named += loaded.args.get(OTHER_FILES_KEY, [])
    return [os.path.join(layout.root_dir, raw) for raw in named]


def _canonical(path: str | Path) -> str:
    return os.path.realpath(os.path.expanduser(path))


def _fingerprint(paths: Iterable[str]) -> _Fingerprint:
    stamps = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            stamps.append((path, -1, -1, -1, -1))  # gone: never equal to a fingerprint taken
            continue
        stamps.append((path, stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(stamps)


def _with_own_args(loaded: LoadedConfig) -> LoadedConfig:
    return dataclasses.replace(loaded, args=merge({}, loaded.args))
