"""Save packages: a run's own copy of its code and merged config, plus its checkpoints.

Layout (DLNest 0.3's, plus our files):

    <save_root>/<YYYY-MM-DD_HH-MM-SS>_<n>/
        Checkpoints/<prefix><id>.ckpt
        <copied code at its relative paths>
        args.json  _package.json  _output.txt  _metrics.jsonl  _task.json

`_package.json` is written last when a package is created, so its presence marks a complete
package. An existing package is never deleted or overwritten, except `NOSAVE` (`-ns`), which
is scratch space by design.
"""

from __future__ import annotations

import codecs
import itertools
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from . import atomic_io
from .checkpoints import Tracks
from .config import LoadedConfig
from .errors import CheckpointNotFoundError, ConfigError, PackageError
from .project import OTHER_FILES_KEY, ROLES, ProjectLayout, project_layout

OUTPUT_CHUNK_BYTES = 1024 * 1024  # per read: a client catching up on a long run gets it in parts
ARGS_FILE = "args.json"
PACKAGE_FILE = "_package.json"
OUTPUT_FILE = "_output.txt"
METRICS_FILE = "_metrics.jsonl"
TASK_FILE = "_task.json"
PROGRESS_FILE = "_progress.json"
CHECKPOINTS_DIR = "Checkpoints"
NOSAVE_NAME = "NOSAVE"
DEFAULT_PREFIX = "state_"
_COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
_COPY_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class CheckpointInfo:
    epoch: int
    parent: int | None  # the branch head when this checkpoint was saved


@dataclass(frozen=True)
class PackageState:
    """The content of `_package.json`."""

    prefix: str = DEFAULT_PREFIX
    tracks: Tracks = field(default_factory=Tracks)
    next_id: int = 0
    head: int | None = None  # the newest checkpoint of the current branch: what "latest" means
    checkpoints: Mapping[int, CheckpointInfo] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": 1,
            "prefix": self.prefix,
            "ckpt_fast": list(self.tracks.fast),
            "ckpt_slow": list(self.tracks.slow),
            "ckpt_consistent": list(self.tracks.consistent),
            "next_id": self.next_id,
            "head": self.head,
            "checkpoints": {
                str(i): {"epoch": info.epoch, "parent": info.parent}
                for i, info in sorted(self.checkpoints.items())
            },
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], ids_on_disk: list[int]) -> PackageState:
        tracks = Tracks(
            fast=tuple(raw.get("ckpt_fast", ())),
            slow=tuple(raw.get("ckpt_slow", ())),
            consistent=tuple(raw.get("ckpt_consistent", ())),
        )
        held = sorted(tracks.held())
        # A DLNest 0.3 package has neither next_id nor head: continue after the highest id.
        next_id = raw.get("next_id", max([*held, *ids_on_disk], default=-1) + 1)
        head = raw["head"] if "head" in raw else (held[-1] if held else None)
        checkpoints = {
            int(i): CheckpointInfo(epoch=info["epoch"], parent=info.get("parent"))
            for i, info in raw.get("checkpoints", {}).items()
        }
        return cls(
            prefix=raw.get("prefix", DEFAULT_PREFIX),
            tracks=tracks,
            next_id=next_id,
            head=head,
            checkpoints=checkpoints,
        )

    def held_ids(self) -> list[int]:
        return sorted(self.tracks.held())


class SavePackage:
    """A save package on disk. Cheap to construct; every read goes to the files."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def open(cls, path: Path | str) -> SavePackage:
        package = cls(Path(path).expanduser().resolve())
        if not package.path.is_dir():
            raise PackageError("no save package here (folder does not exist)", path=package.path)
        for name in (ARGS_FILE, PACKAGE_FILE):
            if not (package.path / name).is_file():
                raise PackageError(
                    f"not a complete save package ({name} is missing)", path=package.path
                )
        return package

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    def args(self) -> dict[str, Any]:
        return self._read_json(ARGS_FILE)

    def layout(self) -> ProjectLayout:
        # Code is always taken from this folder, whatever root_file_path says: a package that
        # was moved or copied elsewhere still runs its own code.
        return project_layout(self.args(), self.path)

    def state(self) -> PackageState:
        return PackageState.from_json(self._read_json(PACKAGE_FILE), self.ids_on_disk())

    def write_state(self, state: PackageState) -> None:
        atomic_io.write_json(self.path / PACKAGE_FILE, state.to_json())

    def checkpoint_path(self, checkpoint_id: int, state: PackageState | None = None) -> Path:
        prefix = (state or self.state()).prefix
        return self.checkpoints_dir / f"{prefix}{checkpoint_id}.ckpt"

    def resolve_checkpoint(self, checkpoint_id: int | None) -> int:
        """The id to load: `checkpoint_id`, or the current branch's newest when None or -1."""
        state = self.state()
        held = state.held_ids()
        wanted = state.head if checkpoint_id in (None, -1) else checkpoint_id
        if wanted is None:
            raise PackageError("this package holds no checkpoint yet", path=self.path)
        if wanted not in held or not self.checkpoint_path(wanted, state).is_file():
            raise CheckpointNotFoundError(self.path, wanted, held)
        return wanted

    def output_path(self, rank: int | None = None) -> Path:
        return self.path / (OUTPUT_FILE if rank is None else f"_output_{rank}.txt")

    def append_metrics(self, record: Mapping[str, Any]) -> None:
        with (self.path / METRICS_FILE).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        path = self.path / METRICS_FILE
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def progress(self) -> dict[str, Any]:
        """The newest progress a training process reported: epoch, iter, steps_per_s."""
        try:
            value = json.loads((self.path / PROGRESS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def output_size(self) -> int:
        try:
            return self.output_path().stat().st_size
        except OSError:
            return 0

    def read_output(self, offset: int, max_bytes: int = OUTPUT_CHUNK_BYTES) -> tuple[int, str]:
        """Text of `_output.txt` from byte `offset`, at most `max_bytes`: (next offset, text).

        A character cut by the chunk's end (or by a writer mid-line) is left for the next read,
        so a reader that follows the offsets never sees a broken character.
        """
        try:
            with self.output_path().open("rb") as handle:
                handle.seek(offset)
                data = handle.read(max_bytes)
        except OSError:
            return offset, ""
        text, used = _decode_whole_characters(data)
        return offset + used, text

    def output_tail(self, lines: int = 20) -> str:
        """The last lines of `_output.txt` (read from its end, however long it is)."""
        path = self.output_path()
        try:
            with path.open("rb") as handle:
                handle.seek(0, 2)
                size = handle.tell()
                handle.seek(max(0, size - 64 * 1024))
                data = handle.read()
        except OSError:
            return ""
        return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])

    def launches(self) -> list[dict[str, Any]]:
        path = self.path / TASK_FILE
        return list(self._read_json(TASK_FILE).get("launches", [])) if path.exists() else []

    def record_launch(self, launch: Mapping[str, Any]) -> int:
        """Append a launch record to `_task.json`; returns its index."""
        launches = [*self.launches(), dict(launch)]
        atomic_io.write_json(self.path / TASK_FILE, {"launches": launches})
        return len(launches) - 1

    def update_launch(self, index: int, **fields: Any) -> None:
        launches = self.launches()
        launches[index] = {**launches[index], **fields}
        atomic_io.write_json(self.path / TASK_FILE, {"launches": launches})

    def _read_json(self, name: str) -> dict[str, Any]:
        path = self.path / name
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise PackageError(f"cannot read {name}: {exc}", path=self.path) from exc
        if not isinstance(value, dict):
            raise PackageError(f"{name} does not hold a JSON object", path=self.path)
        return value

    def ids_on_disk(self) -> list[int]:
        ids = []
        for path in self.checkpoints_dir.glob("*.ckpt"):
            match = re.search(r"(\d+)\.ckpt$", path.name)
            if match:
                ids.append(int(match.group(1)))
        return ids


@dataclass(frozen=True)
class PackageOptions:
    description: str = ""
    no_save: bool = False  # -ns: reuse the NOSAVE scratch folder
    use_description: bool = False  # -sd: name the folder after the description
    seed: int | None = None  # None: args' "seed", else a fresh random one (recorded either way)


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
    root_dir = project_root(loaded)
    layout = layout or project_layout(loaded.args, root_dir, loaded.source_of)
    folder = _claim_folder(save_root(loaded, root_dir), options)
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
        _write_new_file(
            folder / PACKAGE_FILE, atomic_io.json_text(PackageState().to_json()).encode()
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return SavePackage(folder)


def discard_new_package(package: SavePackage) -> None:
    """Remove a package this process created moments ago and that never ran."""
    shutil.rmtree(package.path, ignore_errors=True)


def _claim_folder(root: Path, options: PackageOptions) -> Path:
    if not root.is_dir():
        root.mkdir(parents=True, exist_ok=True)
    if options.no_save:
        folder = root / NOSAVE_NAME
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
        made.update(path for path in target.rglob("*") if path.is_dir())
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
    seed = options.seed if options.seed is not None else args.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        seed = secrets.randbelow(2**31)
    rewritten.update(root_file_path=str(folder), _description=options.description, _seed=seed)
    return rewritten


def _relative(path: PurePosixPath) -> str:
    return f"./{path}"


def _decode_whole_characters(data: bytes) -> tuple[str, int]:
    """Decode UTF-8, leaving an incomplete character at the end undecoded: (text, bytes used)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data, final=False)
    return text, len(data) - len(decoder.getstate()[0])
