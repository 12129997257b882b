"""What the scheduler learns from the runs it follows: their GPU memory, their ends, their jobs.

Each pass, before placing anything, a running training task's reservation follows what it
measurably uses (core/memory_policy.py: raised at once past it, shrunk after warm-up), its
figures cross-checked with NVML's per-process ones (an analyzer's is raised, never shrunk: its
kernel reports no warm-up, and its next experiment may need what the last one freed); and its
expected end is worked out from its pace, else its job's earlier runs (core/durations.py), for
backfill. Once a run has warmed up,
and again when it ends, it leaves its peak (and at the end its duration) to the runs of its job
(core/memory_history.py), those already queued included; one that ran out of GPU memory is
queued again with more. Apart from `scheduler.py`, which places and launches:
this changes with what is learned about runs, that with how tasks are started.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from ..core import processes
from ..core.devices import DeviceSource, InventorySnapshot
from ..core.durations import expected_end
from ..core.errors import EXIT_OUT_OF_MEMORY
from ..core.memory_policy import (
    by_card,
    cross_checked,
    retry_after_out_of_memory,
    revise_reservation,
    warmed_up,
    with_margin,
)
from ..core.placement import admission_error
from ..core.placement_values import Demand, Reservation
from ..core.store import TaskStore
from ..core.tasks import FINGERPRINT, RUNNERS, Runner, TaskRecord, demand_of
from .event_log import EventLog
from .runners import RunnerRouter

Paces = Mapping[int, Mapping[str, Any]]  # each running training task's progress, by task id


class MemoryFollower:
    def __init__(
        self, store: TaskStore, devices: DeviceSource, runners: RunnerRouter, events: EventLog
    ) -> None:
        self.store, self.devices, self.runners, self.events = store, devices, runners, events
        # How long earlier runs of each job took, read once per job and forgotten when one of
        # its runs ends: backfill asks it of every task every pass.
        self._durations: dict[str, float | None] = {}
        self._warm: set[int] = set()  # running tasks whose peak their job has learned
        # Whether queued tasks learned a reservation or a duration since the scheduler last
        # asked: their demands, which it keeps from pass to pass, changed.
        self.taught = False

    def follow(self, snapshot: Callable[[], InventorySnapshot]) -> Paces:
        """Revise each training run's reservation by what it uses; returns their progress.

        Not on a Ray cluster: a node reports its cards by its own numbers, and Ray's bookings,
        made at launch, would not follow the ledger (its runs still teach their jobs)."""
        settings = self.store.settings()
        revising: bool | None = None  # asked of the snapshot only when a run is running
        revisions, paces = {}, {}
        running = self.store.running()
        self._warm &= {task.id for task in running}  # deleted ones never say they ended
        for task in running:
            training = RUNNERS[task.kind] is Runner.PROCESS
            progress = self.runners.with_progress(task).progress
            if training:  # an analyzer has no pace: its kernel runs until it is deleted
                paces[task.id] = progress
            if task.pid is not None and _lists_processes(snapshot()):
                pids = {task.pid, *processes.group_members(task.pid)}  # its DDP ranks too
                progress = cross_checked(progress, pids, snapshot())
            if training and task.id not in self._warm and warmed_up(progress, settings):
                self._warm.add(task.id)
                self._remember_peak(task, progress, None)  # its peak, its duration to come
            if revising is None:
                revising = snapshot().local_node is None
            revision = (
                revise_reservation(
                    task.reserved_mb, progress, task.memory_mb is not None, settings, training
                )
                if revising
                else None
            )
            if revision is not None:
                revisions[task.id] = revision
                self.events.write(f"task {task.id}: {revision.note}")
        self.store.revise_reservations(revisions)
        return paces

    def reservation(self, task: TaskRecord, paces: Paces, now: float) -> Reservation:
        """What a holding task holds, and when it should end."""
        pace = paces.get(task.id)
        if pace is None:  # starting, or an analyzer: a kernel runs until it is deleted
            return task.reservation()
        ends = expected_end(pace, task.started_at, self._duration_s(task), now)
        return replace(task.reservation(), expected_end=ends)

    def demand(self, task: TaskRecord) -> Demand:
        """What a queued task needs, and how long its job's runs took."""
        return replace(task.demand(), expected_s=self._duration_s(task))

    def ended(self, task: TaskRecord, progress: Mapping[str, Any], code: int, now: float) -> None:
        """A run ended by itself: its job remembers it; out of GPU memory, it runs again."""
        self._warm.discard(task.id)
        if RUNNERS[task.kind] is not Runner.PROCESS:  # an analysis teaches no training job
            return
        self._remember_peak(task, progress, now)
        if code == EXIT_OUT_OF_MEMORY:
            self._retry_with_more(task, progress)

    def _duration_s(self, task: TaskRecord) -> float | None:
        fingerprint = task.spec.get(FINGERPRINT)
        if not isinstance(fingerprint, str):
            return None
        if fingerprint not in self._durations:
            learned = self.store.memory.learned(fingerprint)
            self._durations[fingerprint] = learned.mean_duration_s if learned else None
        return self._durations[fingerprint]

    def _retry_with_more(self, task: TaskRecord, progress: Mapping[str, Any]) -> None:
        """A run that ran out of GPU memory is queued again, at the front, reserving what it
        reached plus the margin (core/memory_policy.py), while its retries last."""
        settings = self.store.settings()
        retry = retry_after_out_of_memory(task.spec, progress, settings)
        if retry is None:
            return
        reason = admission_error(demand_of(0, None, retry.spec), self.devices.snapshot(), settings)
        if reason is not None:  # it would wait at the front of the queue for ever
            self.events.write(f"task {task.id} ran out of GPU memory; not queued again: {reason}")
            return
        again = self.store.submit(
            task.kind,
            retry.spec,
            description=f"{task.description} (retry of task {task.id}: out of GPU memory)".lstrip(),
            package_path=task.package_path,
            jump=True,
        )
        self.events.write(
            f"task {task.id} ran out of GPU memory: queued again as task {again.id}, {retry.note}"
        )

    def _remember_peak(
        self, task: TaskRecord, progress: Mapping[str, Any], ended_at: float | None
    ) -> None:
        """The run's peak for the runs of its job (memory_history.py), those queued already
        included; `ended_at`: None while it runs (its duration is not known yet)."""
        fingerprint = task.spec.get(FINGERPRINT)
        peaks = {card: mb for card, mb in by_card(progress, "peak_memory_mb").items() if card >= 0}
        if not isinstance(fingerprint, str) or not peaks:
            return
        epoch = progress.get("epoch")
        if ended_at is not None:  # its job's mean duration changes now, for queued tasks too
            self._durations.pop(fingerprint, None)
            self.taught = True
        self.store.memory.record(
            fingerprint,
            task.id,
            peaks,
            ended_at - task.started_at if ended_at is not None and task.started_at else None,
            epoch if isinstance(epoch, int) and ended_at is not None else None,
            ended_at if ended_at is not None else time.time(),
        )
        learned = self.store.memory.learned(fingerprint)
        if learned is None:
            return
        settings = self.store.settings()
        reserve = with_margin(learned.card_peak_mb, settings)
        # Learned on bigger cards than these: the queued keep the default (as submissions do).
        if admission_error(Demand(0, reserve), self.devices.snapshot(), settings) is None:
            self.taught |= self.store.memory.teach_queued(fingerprint, reserve, learned.runs) > 0


def _lists_processes(snapshot: InventorySnapshot) -> bool:
    """Whether NVML gave per-process figures at all (pretend cards and some drivers do not)."""
    return any(p.used_memory_mb > 0 for gpu in snapshot.gpus for p in gpu.processes or ())
