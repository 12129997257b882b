"""The read verbs: tasks with their live progress, a package's output, metrics and checkpoints,
the devices, the settings and who schedules the queue.

Nothing here writes: every answer is read from the store, the packages, the device source and
the runners (a running task's progress is its runner's, `runners.py`).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from ..core.box_ledger import Ledger
from ..core.devices import DeviceSource
from ..core.errors import PackageError
from ..core.package import ARGS_FILE, METRICS_FILE, OUTPUT_CHUNK_BYTES, PACKAGE_FILE, SavePackage
from ..core.package_state import checkpoints_json
from ..core.secrets import scrubbed, secret_values
from ..core.settings import Settings
from ..core.store import TaskStore
from ..core.tasks import TaskRecord, TaskState
from .device_rows import device_rows
from .leadership import Leadership
from .runners import RunnerRouter, writes_output


class Queries:
    def __init__(
        self,
        store: TaskStore,
        devices: DeviceSource,
        runners: RunnerRouter,
        leadership: Leadership,
        box: Ledger | None = None,
    ) -> None:
        """`box`: the machine-wide ledger, whose other users' reservations `devices()` shows."""
        self.store, self.device_source, self.runners = store, devices, runners
        self.leadership, self.box = leadership, box

    def task(self, task_id: int) -> TaskRecord:
        return self.runners.with_progress(self.store.get(task_id))

    def tasks(self) -> list[TaskRecord]:
        return [self.runners.with_progress(t) for t in self.store.list_tasks()]

    def tasks_json(self, since: int | None = None) -> tuple[int, list[str]]:
        """(the queue's version, its tasks as REST TASK JSON texts, by id).

        Running tasks carry their live progress. `since`: only the tasks changed after that
        version (a refresh that re-sends nothing unchanged), running ones always.
        """
        version, rows = self.store.tasks_json(since)
        running = {
            t.id: t
            for t in self.store.get_many(i for i, state, _ in rows if state is TaskState.RUNNING)
        }
        return version, [
            json.dumps(self.runners.with_progress(running[i]).to_json()) if i in running else text
            for i, _, text in rows
        ]

    def output(self, task_id: int, offset: int = 0) -> tuple[int, str]:
        """This task's output after byte `offset` of its package's `_output.txt`: (next offset, text).

        Offsets are the file's, so they stay valid for every task of a package; an offset before
        the task's own start (0 included) reads from that start, so a continued run's watcher does
        not replay the runs before it, and an ended run's output stops where the next run of its
        package (a continue) began. Long output comes in parts: follow the returned offset.
        """
        task = self.store.get(task_id)
        # An analyzer's package output is its training's; each experiment has an output of its own.
        if task.package_path is None or task.started_at is None or not writes_output(task):
            return max(offset, task.output_start), ""
        start = max(offset, task.output_start)
        stop = self.store.next_output_start(task) if task.state.terminal else None
        if stop is not None and start >= stop:
            return start, ""
        most = OUTPUT_CHUNK_BYTES if stop is None else min(stop - start, OUTPUT_CHUNK_BYTES)
        end, text = SavePackage(Path(task.package_path)).read_output(start, most)
        # User code may print its args (DLNest's projects often do): plugin secrets are hidden.
        return end, scrubbed(text, task_secrets(task))

    def metrics(self, task_id: int, offset: int = 0, name: str = METRICS_FILE) -> dict[str, Any]:
        """The task's package's metric rows (`_metrics.jsonl`, or `name`: `_steps.jsonl` holds
        the values step by step) after byte `offset`.

        `{"offset": next, "rows": [...], "skipped": [why...]}`: a broken line is passed over
        with a note. An analyzer's package holds its training's metrics: those are shown.
        """
        task = self.store.get(task_id)
        if task.package_path is None:
            return {"offset": offset, "rows": [], "skipped": []}
        read = SavePackage(Path(task.package_path)).read_metrics_from(offset, name=name)
        return {"offset": read.offset, "rows": read.rows, "skipped": read.skipped}

    def checkpoints(self, task_id: int) -> dict[str, Any]:
        """The checkpoints the task's package holds (what `continue -c` and `analyze -c` take),
        each with its branch, and the branches: where each forked (`core/package_state.py`)."""
        task = self.store.get(task_id)
        if task.package_path is None:
            return {"head": None, "checkpoints": [], "branches": []}
        return checkpoints_json(SavePackage.open(task.package_path).state())

    def devices(self) -> list[dict[str, Any]]:
        """Every device with its memory, our reservations and tasks (REST `GET devices`), and
        what other users' schedulers reserved on it (with a box ledger)."""
        return device_rows(
            self.device_source.snapshot(),
            [self.runners.with_progress(t) for t in self.store.holding()],
            self.store.settings(),
            self.box.others() if self.box is not None else [],
        )

    def settings(self) -> Settings:
        return self.store.settings()

    def scheduler(self) -> dict[str, Any]:
        """Which service schedules this queue (REST `GET scheduler`)."""
        return self.leadership.describe()


def task_secrets(task: TaskRecord) -> frozenset[str]:
    """The plugin secrets a task's run may print: its package's, and its continue's overrides'.
    Its output, its `error` (an exception's last line) and what the log says of it hide them."""
    if task.package_path is None:
        return frozenset()
    overrides = secret_values(task.spec.get("overrides") or {})
    return package_secrets(Path(task.package_path)) | overrides


def package_secrets(path: Path) -> frozenset[str]:
    """The plugin secrets a package's configs hold (`args.json` and every branch's overrides),
    read again only when either file changes: output is polled twice a second."""
    stamps = []
    for name in (ARGS_FILE, PACKAGE_FILE):
        try:
            stamps.append((path / name).stat().st_mtime_ns)
        except OSError:
            stamps.append(0)
    return _secrets_of(path, tuple(stamps))


@functools.lru_cache(maxsize=256)
def _secrets_of(path: Path, stamps: tuple[int, ...]) -> frozenset[str]:
    package = SavePackage(path)
    found: set[str] = set()
    try:
        found |= secret_values(package.args())
        for branch in package.state().branches.values():
            found |= secret_values(branch.overrides)
    except PackageError:  # a package still being made has no config to hide yet
        pass
    return frozenset(found)
