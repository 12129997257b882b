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
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from . import atomic_io
from .config import merge
from .errors import CheckpointNotFoundError, PackageError
from .package_state import PackageState
from .project import ProjectLayout, project_layout

OUTPUT_CHUNK_BYTES = 1024 * 1024  # per read: a client catching up on a long run gets it in parts
METRICS_CHUNK_BYTES = 256 * 1024  # per read of _metrics.jsonl: thousands of epochs
ARGS_FILE = "args.json"
PACKAGE_FILE = "_package.json"
OUTPUT_FILE = "_output.txt"
METRICS_FILE = "_metrics.jsonl"
EPOCH_MEAN_MARK = "_epoch_mean"  # in a metrics row: its values are epoch means, not last values
# One line per epoch with each logged list's values of that epoch, step by step (a long epoch's
# are thinned to at most MAX_STEP_VALUES, evenly): what the Metrics tab draws "by step".
STEPS_FILE = "_steps.jsonl"
MAX_STEP_VALUES = 1000
TASK_FILE = "_task.json"
PROGRESS_FILE = "_progress.json"
# DDP rank r > 0 reports its card's memory here; rank 0's progress names how many ranks there are.
RANK_PROGRESS = "_progress.rank{rank}.json"
# An analyzer kernel's GPU memory, now and at its peak (MiB over its card), for its task's ledger.
ANALYZER_MEMORY = "_analyzer{task}.memory.json"
_MEMORY_KEYS = ("memory_mb", "peak_memory_mb")
CHECKPOINTS_DIR = "Checkpoints"
NOSAVE_NAME = "NOSAVE"


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

    def args_for(self, checkpoint_id: int | None) -> dict[str, Any]:
        """The config checkpoint `checkpoint_id` was trained with: `args.json`, the first run's,
        with its branch's overrides (core/package_state.py); None: `args.json` itself."""
        overrides = self.state().overrides_of(checkpoint_id) if checkpoint_id is not None else {}
        return merge(self.args(), overrides) if overrides else self.args()

    def layout(self) -> ProjectLayout:
        # Code is always taken from this folder, whatever root_file_path says: a package that
        # was moved or copied elsewhere still runs its own code.
        return project_layout(self.args(), self.path, check_names=False)

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

    def append_metrics(self, record: Mapping[str, Any], name: str = METRICS_FILE) -> None:
        """Add a row to `_metrics.jsonl` (or `name`, another rows file: `_steps.jsonl`)."""
        with (self.path / name).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")

    def read_metrics(self, name: str = METRICS_FILE) -> list[dict[str, Any]]:
        return self.read_metrics_from(0, max_bytes=None, name=name).rows

    def read_metrics_from(
        self, offset: int, max_bytes: int | None = METRICS_CHUNK_BYTES, name: str = METRICS_FILE
    ) -> MetricRows:
        """The whole lines of `_metrics.jsonl` (or `name`) after byte `offset`, at most about
        `max_bytes`.

        A line still being written (no newline yet) is left for the next read; a line that is
        not a JSON object is skipped with a note naming its byte offset, never an exception.
        """
        try:
            with (self.path / name).open("rb") as handle:
                handle.seek(offset)
                data = handle.read(-1 if max_bytes is None else max_bytes)
        except OSError:
            return MetricRows(offset, [], [])
        whole = data[: data.rfind(b"\n") + 1]
        if not whole and max_bytes is not None and len(data) == max_bytes:
            whole = data  # one line longer than a chunk: skipped below, so the reader moves on
        rows: list[dict[str, Any]] = []
        skipped: list[str] = []
        at = offset
        for line in whole.splitlines(keepends=True):
            if line.strip():
                try:
                    row = json.loads(line)
                except ValueError as error:
                    row, why = None, f"not JSON ({error})"
                else:
                    why = "not a JSON object"
                if isinstance(row, dict):
                    rows.append(row)
                else:
                    skipped.append(f"{name} byte {at}: {why}")
            at += len(line)
        return MetricRows(offset + len(whole), rows, skipped)

    def progress(self) -> dict[str, Any]:
        """The newest progress a training process reported: epoch, iter, steps_per_s, and its
        GPU memory by card (every DDP rank's card)."""
        value = _json_object(self.path / PROGRESS_FILE)
        ranks = value.get("ranks")
        if isinstance(ranks, int) and ranks > 1:
            for rank in range(1, ranks):
                other = _json_object(self.path / RANK_PROGRESS.format(rank=rank))
                for key in _MEMORY_KEYS:
                    if isinstance(other.get(key), dict):
                        value[key] = {**value.get(key, {}), **other[key]}
        return value

    def analyzer_memory_path(self, task_id: int | str) -> Path:
        return self.path / ANALYZER_MEMORY.format(task=task_id)

    def analyzer_memory(self, task_id: int) -> dict[str, Any]:
        """`{"memory_mb", "peak_memory_mb"}` as analyzer `task_id`'s kernel last reported them
        (`{}` before it has, or on the CPU)."""
        return _json_object(self.analyzer_memory_path(task_id))

    def clear_progress(self) -> None:
        """Remove the last run's progress files: a new run must not show their figures."""
        for stale in [self.path / PROGRESS_FILE, *self.path.glob(RANK_PROGRESS.format(rank="*"))]:
            stale.unlink(missing_ok=True)

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
        return list(self.task_record().get("launches", []))

    def task_record(self) -> dict[str, Any]:
        """`_task.json`: its launches, and for a sweep's trial its sweep (`{}` before any)."""
        return self._read_json(TASK_FILE) if (self.path / TASK_FILE).exists() else {}

    def record_launch(self, launch: Mapping[str, Any]) -> int:
        """Append a launch record to `_task.json`; returns its index.

        Not fsynced (still never torn): it sits between a launch and its first step, and what
        would lose it, a power cut, ends the run too; processes on this machine read it from
        the page cache all the same. How the run ended (`update_launch`) is fsynced."""
        record = self.task_record()
        launches = [*record.get("launches", []), dict(launch)]
        atomic_io.write_json(self.path / TASK_FILE, {**record, "launches": launches}, durable=False)
        return len(launches) - 1

    def update_launch(self, index: int, **fields: Any) -> None:
        record = self.task_record()
        launches = list(record.get("launches", []))
        launches[index] = {**launches[index], **fields}
        atomic_io.write_json(self.path / TASK_FILE, {**record, "launches": launches})

    def record_in_task_file(self, key: str, value: Any) -> None:
        """Keep `value` under `key` in `_task.json` (a sweep's trial: which sweep, which values)."""
        atomic_io.write_json(self.path / TASK_FILE, {**self.task_record(), key: value})

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


class MetricRows(NamedTuple):
    offset: int  # where the next read starts
    rows: list[dict[str, Any]]
    skipped: list[str]  # why each broken line was passed over


def _decode_whole_characters(data: bytes) -> tuple[str, int]:
    """Decode UTF-8, leaving an incomplete character at the end undecoded: (text, bytes used)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data, final=False)
    return text, len(data) - len(decoder.getstate()[0])


def _json_object(path: Path) -> dict[str, Any]:
    """A small JSON file a process rewrites by rename: {} while it is absent or unreadable."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
