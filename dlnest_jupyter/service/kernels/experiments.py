"""Experiments run in an analyzer kernel: their state and output, read from offsets or awaited.

The analyzer host fills these from the kernel's IOPub messages on its event loop; readers on
other threads (REST handlers, the embedded backend) read snapshots or wait on a future that the
next change completes.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ...core.errors import ExperimentNotFoundError
from ...core.tasks import ExperimentState

MAX_KEPT_PER_ANALYZER = 200  # older experiments' output is dropped
MAX_OUTPUT_CHARS = 4 * 1024 * 1024  # per experiment; the oldest text goes first
# Per experiment; the oldest displays go first, the newest always stays. A loop that plots
# every step would otherwise hold each image (base64 PNGs of 50-500 KB) in the server.
MAX_DISPLAY_BYTES = 32 * 1024 * 1024


@dataclass
class Experiment:
    id: int
    name: str
    state: ExperimentState = ExperimentState.RUNNING
    error: str | None = None
    output: str = ""  # text streams, stdout and stderr interleaved as they came
    output_start: int = 0  # absolute offset of output[0] once old text was dropped
    displays: list[dict[str, Any]] = field(default_factory=list)  # rich outputs: {data, metadata}
    displays_start: int = 0  # absolute index of displays[0] once old displays were dropped
    display_sizes: list[int] = field(default_factory=list)  # bytes of each kept display
    display_bytes: int = 0  # their sum
    result: str | None = None  # the text form of the value an experiment returned
    # The returned value's display until the next change shows it (ExperimentBook.set_result).
    held_result: dict[str, Any] | None = None
    interrupt_sent: bool = False  # once: a second would land on what the kernel runs next
    waiters: list[Future[None]] = field(default_factory=list)

    def to_json(self, offset: int = 0, display_offset: int = 0) -> dict[str, Any]:
        """The REST EXPERIMENT object, with only what is new after the two offsets."""
        end = self.output_start + len(self.output)
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "error": self.error,
            "output": self.output[max(0, offset - self.output_start) :] if offset < end else "",
            "offset": end,
            "displays": self.displays[max(0, display_offset - self.displays_start) :],
            "display_offset": self.display_end,
            "result": self.result,
        }

    @property
    def display_end(self) -> int:
        return self.displays_start + len(self.displays)


class ExperimentBook:
    """Every analyzer's experiments, numbered per analyzer task."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_task: dict[int, dict[int, Experiment]] = {}
        self._next_id: dict[int, int] = {}

    def open(
        self, task_id: int, name: str, state: ExperimentState = ExperimentState.RUNNING
    ) -> Experiment:
        with self._lock:
            experiment_id = self._next_id.get(task_id, 1)
            self._next_id[task_id] = experiment_id + 1
            kept = self._by_task.setdefault(task_id, {})
            experiment = kept[experiment_id] = Experiment(experiment_id, name, state)
            while len(kept) > MAX_KEPT_PER_ANALYZER:
                kept.pop(next(iter(kept)))
            return experiment

    def get(self, task_id: int, experiment_id: int) -> Experiment:
        with self._lock:
            experiment = self._by_task.get(task_id, {}).get(experiment_id)
        if experiment is None:
            raise ExperimentNotFoundError(task_id, experiment_id)
        return experiment

    def unfinished(self, task_id: int) -> list[Experiment]:
        """The analyzer's queued and running experiments, oldest first."""
        with self._lock:
            return [e for e in self._by_task.get(task_id, {}).values() if not e.state.terminal]

    def count(self, task_id: int) -> int:
        with self._lock:
            return self._next_id.get(task_id, 1) - 1

    def forget(self, task_id: int) -> None:
        with self._lock:
            self._by_task.pop(task_id, None)

    # -- changes (from the host's loop) -----------------------------------------------------
    def append_text(self, experiment: Experiment, text: str) -> None:
        with self._lock:
            _release_result(experiment)
            experiment.output += text
            overflow = len(experiment.output) - MAX_OUTPUT_CHARS
            if overflow > 0:
                experiment.output = experiment.output[overflow:]
                experiment.output_start += overflow
        self._notify(experiment)

    def add_display(self, experiment: Experiment, bundle: dict[str, Any]) -> None:
        with self._lock:
            _release_result(experiment)
            _add_display(experiment, bundle)
        self._notify(experiment)

    def set_result(self, experiment: Experiment, text: str | None, bundle: dict[str, Any]) -> None:
        """The value the experiment returned (its execute_result), shown as its last display.

        Only the kernel's reply and idle status follow a result, a fraction of a millisecond
        later, so the result is shown and announced with the end (or with any output that still
        comes): announced alone, it wakes a long-polling reader who then comes back at once for
        the end, one more request per experiment (over REST, an HTTP round trip: the profile's
        largest cost of a runExp beyond the kernel's own)."""
        with self._lock:
            experiment.result = text
            _release_result(experiment)  # a second result (the display hook called again)
            if not experiment.state.terminal:
                experiment.held_result = bundle
                return
            _add_display(experiment, bundle)  # after an error or interrupt: nothing more comes
        self._notify(experiment)

    def begin(self, experiment: Experiment) -> None:
        """The kernel took a queued experiment up (it had waited for the load, or behind
        another experiment)."""
        with self._lock:
            if experiment.state is not ExperimentState.QUEUED:
                return
            experiment.state = ExperimentState.RUNNING
        self._notify(experiment)

    def finish(
        self,
        experiment: Experiment,
        state: ExperimentState,
        error: str | None = None,
        result: str | None = None,
    ) -> None:
        with self._lock:
            if experiment.state.terminal:
                return
            experiment.state, experiment.error = state, error
            _release_result(experiment)
            if result is not None:
                experiment.result = result
        self._notify(experiment)

    def change(self, experiment: Experiment, offset: int, display_offset: int) -> Future[None]:
        """A future done at the next change after the offsets (at once if there is one already)."""
        future: Future[None] = Future()
        with self._lock:
            end = experiment.output_start + len(experiment.output)
            if experiment.state.terminal or end > offset or experiment.display_end > display_offset:
                future.set_result(None)
            else:
                # Long polls that timed out cancelled their futures: drop them, or a quiet
                # experiment would collect one per poll.
                experiment.waiters = [w for w in experiment.waiters if not w.done()]
                experiment.waiters.append(future)
        return future

    def _notify(self, experiment: Experiment) -> None:
        with self._lock:
            waiters, experiment.waiters = experiment.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


def _release_result(experiment: Experiment) -> None:
    """Show a held result (under the book's lock), before the change that releases it."""
    if experiment.held_result is not None:
        _add_display(experiment, experiment.held_result)
        experiment.held_result = None


def _add_display(experiment: Experiment, bundle: dict[str, Any]) -> None:
    size = _display_bytes(bundle)
    experiment.displays.append(bundle)
    experiment.display_sizes.append(size)
    experiment.display_bytes += size
    while len(experiment.displays) > 1 and experiment.display_bytes > MAX_DISPLAY_BYTES:
        experiment.displays.pop(0)
        experiment.display_bytes -= experiment.display_sizes.pop(0)
        experiment.displays_start += 1


def _display_bytes(bundle: dict[str, Any]) -> int:
    data = bundle.get("data", {})
    return sum(len(value) if isinstance(value, str | bytes) else 64 for value in data.values())
