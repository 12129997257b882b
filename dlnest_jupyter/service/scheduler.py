"""One scheduler pass: notice tasks that ended, take over what a dead scheduler left, place and
launch what fits. Run by `loop.py`'s thread and after each writing verb of `service.py`.

Only the service holding the queue's lease (`leadership.py`) places, launches and reaps; every
service still follows the analyzer kernels it owns. A task is claimed (queued -> starting, with
its devices) in one store write before anything is launched: a claim that fails launches nothing,
so even two schedulers racing by mistake start a task once. With a box ledger, the placement
decision and the claims are made under the box's lock, counting other users' reservations.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..core import box_ledger
from ..core.box_ledger import Ledger, OtherReservation
from ..core.devices import CPU_ID, DeviceSource, InventorySnapshot
from ..core.errors import LaunchDeferred, LaunchUnknown, TaskStateError
from ..core.memory_policy import (
    launch_marks,
)
from ..core.package import SavePackage
from ..core.placement import placement_pass
from ..core.placement_values import Demand, Reservation
from ..core.secrets import scrubbed
from ..core.store import TaskStore
from ..core.tasks import RUNNERS, SWEEP, Runner, TaskRecord, TaskState
from ..core.waiting import WaitExplainer
from .event_log import EventLog
from .launch.executor import Launch
from .leadership import Leadership
from .memory_follower import MemoryFollower, Paces
from .queries import task_secrets
from .runners import RunnerRouter
from .sweeps.driver import SweepDriver

log = logging.getLogger(__name__)
# A process forked for a task is found by its session and folder, or by the launch record it
# writes; between the fork and its setsid (microseconds, or an exec on the plain path) it is
# neither. A task its dead claimant may have been forking is queued again only after this long.
LAUNCH_GRACE_S = 10.0
# At most this many rounds of queueing a sweep's trials and placing them in one pass.
MAX_SWEEP_ROUNDS = 64
WAIT_FIGURES_S = 10.0  # how stale a waiting task's figures may get (Scheduler._record_waits)


class Scheduler:
    def __init__(
        self,
        store: TaskStore,
        devices: DeviceSource,
        runners: RunnerRouter,
        leadership: Leadership,
        log: EventLog,
        box: Ledger | None = None,
        sweeps: SweepDriver | None = None,
    ) -> None:
        """`log`: the service's event log, which users read (`%dlnest log`); `box`: the
        machine-wide ledger, if the box has one; `sweeps`: what queues sweeps' trials."""
        self.store, self.devices, self.runners = store, devices, runners
        self.leadership, self.events, self.box = leadership, log, box
        self.sweeps = sweeps
        # A queued task's demand never changes; parsing every spec on every pass made each
        # submission cost O(queue) JSON parses.
        self._demands: dict[int, Demand] = {}
        self._kernels: dict[int, bool] = {}  # queued task -> whether it runs in a kernel
        # Our launches that never answered (LaunchUnknown), and when we gave up waiting.
        self._unsettled: dict[int, float] = {}
        self._recorded: dict[int, dict[str, Any]] = {}  # analyzer progress last stored, by task
        self.memory = MemoryFollower(store, devices, runners, log)
        # Why each queued task waits, as this scheduler last stored it, and when.
        self._waits: dict[int, tuple[str, float]] = {}

    def tick(self, now: float) -> list[TaskRecord]:
        """One pass (under the loop's lock, `loop.py`); returns the tasks launched."""
        self._stop_ended_kernels()
        self._record_kernel_progress()
        leading = self.leadership.lead()
        self._reap(leading, now)
        if not leading:
            self._waits = {}  # another scheduler writes them now; ours would go stale
            if self.sweeps is not None:
                self.sweeps.forget()
            return []
        # One NVML query for following runs and placing (a run's end may ask once more).
        snapshot = functools.cache(self.devices.snapshot)
        paces = self.memory.follow(snapshot)
        started: list[TaskRecord] = []
        # Between ends and placing: a trial queued now is placed in this pass. Without a
        # `parallel` cap one trial of a sweep waits at a time, so each time placing starts the
        # one that waited, the driver queues the next, until the cards are full.
        for _ in range(MAX_SWEEP_ROUNDS):
            queued = self.sweeps.drive() if self.sweeps is not None else 0
            placed = self._place(now, snapshot, paces)
            started += placed
            # A placed trial leaves its sweep none waiting: the driver may queue the next now
            # rather than a pass (tick_interval_s) later, while a card stands idle.
            if not placed or not (queued or any(t.spec.get(SWEEP) for t in placed)):
                break
        self._publish()
        return started

    # -- noticing ends ----------------------------------------------------------------------
    def _stop_ended_kernels(self) -> None:
        """Shut our kernels whose tasks another service ended (a `del` sent to another server)."""
        host = self.runners.analyzers
        if host is None:
            return
        for task in self.store.get_many(host.live_task_ids()):
            if task.state.terminal:
                host.stop(task)

    def _record_kernel_progress(self) -> None:
        """Our analyzers' state (loading, ready...) into the store, for the other servers on the
        queue: their REST replies and dashboards show what ours do, a pass later."""
        host = self.runners.analyzers
        if host is None:
            return
        for task_id in host.live_task_ids():
            progress = host.progress(task_id)
            if progress and progress != self._recorded.get(task_id):
                self.store.set_progress(task_id, progress)
                self._recorded[task_id] = progress

    def _reap(self, leading: bool, now: float) -> None:
        holding = self.store.holding()
        held = frozenset(t.id for t in holding)
        if leading:
            self.runners.executor.sweep(held)
        for gone in [i for i in self._unsettled if i not in held]:  # deleted meanwhile
            del self._unsettled[gone]
        for task in holding:
            kernel = RUNNERS[task.kind] is Runner.KERNEL
            mine = task.owner == self.leadership.id
            if kernel and not self.leadership.answers_for(task.owner):
                continue
            if not (leading or (kernel and mine)):
                continue
            try:
                if task.state is TaskState.STARTING:
                    # Its claimant died, or our own launch never answered.
                    if (not mine and self.leadership.answers_for(task.owner)) or (
                        mine and task.id in self._unsettled
                    ):
                        self._take_over(task, now)
                    continue
                self._reap_one(task, now)
            except Exception:  # one task's trouble must not stop the pass for the others
                log.exception("task %s: could not follow it", task.id)

    def _reap_one(self, task: TaskRecord, now: float) -> None:
        runners = self.runners
        executor = runners.executor_for(task)
        code = executor.exit_code(task)
        if code is None:
            return
        # Its last line may be an exception that printed its args: no plugin secret in `error`.
        secrets, tail = task_secrets(task), runners.tail(task)
        error = None if code == 0 else scrubbed(executor.end_reason(task, code), secrets)
        with contextlib.suppress(TaskStateError):  # deleted meanwhile: the delete said so
            # The last progress the task reported stays on record.
            progress = runners.with_progress(task).progress
            self.store.set_progress(task.id, progress)
            self.store.finish(
                task.id,
                TaskState.SUCCEEDED if code == 0 else TaskState.FAILED,
                exit_code=code,
                error=error,
                output_tail=None if tail is None else scrubbed(tail, secrets),
            )
            self.events.write(
                f"task {task.id} " + ("succeeded" if code == 0 else f"failed: {error}")
            )
            self.memory.ended(task, progress, code, now)

    def _take_over(self, task: TaskRecord, now: float) -> None:
        """A task whose scheduler died while launching it: adopt what it launched, or queue it
        again once it is clear that nothing was launched."""
        claimed_at = max(
            (at for at, state, _ in self.store.events(task.id) if state is TaskState.STARTING),
            default=0.0,
        )
        try:
            adopted = self._launched_by_the_dead(task, claimed_at)
        except OSError:  # where it would run cannot be asked now: ask again next pass
            return
        with contextlib.suppress(TaskStateError):
            if adopted is not None:
                self.store.mark_running(task.id, *adopted)
                self._unsettled.pop(task.id, None)
                self.events.write(f"task {task.id} adopted (pid {adopted[0]})")
            elif now - self._unsettled.get(task.id, claimed_at) >= LAUNCH_GRACE_S:
                self.store.unclaim(task.id, "its launch was never made")
                self._unsettled.pop(task.id, None)
                self.events.write(f"task {task.id} queued again: it was never launched")

    def _launched_by_the_dead(
        self, task: TaskRecord, claimed_at: float
    ) -> tuple[int, float | None] | None:
        """(pid, start time) of the process launched for `task` by a dead scheduler, if any."""
        if RUNNERS[task.kind] is not Runner.PROCESS:
            return None  # an analyzer's kernel died with the server that started it
        return self.runners.executor.adopt(task, claimed_at)

    def _place(
        self,
        now: float,
        snapshot_now: Callable[[], InventorySnapshot],
        paces: Paces,
    ) -> list[TaskRecord]:
        queue = self.store.queued_ids()
        if not queue:
            self._waits = {}
            return []
        # Only tasks queued since the last pass are read in full: a submission's pass stays
        # cheap however long the queue is (unless queued tasks learned what to reserve).
        if self.memory.taught:
            self._demands, self._kernels, self.memory.taught = {}, {}, False
        known = self._demands
        for task in self.store.get_many(i for i in queue if i not in known):
            known[task.id] = self.memory.demand(task)
            self._kernels[task.id] = RUNNERS[task.kind] is Runner.KERNEL
        if len(known) != len(queue):  # some left the queue
            self._demands = known = {i: known[i] for i in queue}
            self._kernels = {i: self._kernels[i] for i in queue}
        demands = [known[i] for i in queue]
        snapshot = snapshot_now()
        if snapshot.local_node is not None:  # on a cluster, analyzers stay on this machine
            demands = [
                replace(d, node=snapshot.local_node) if self._kernels.get(d.task_id) else d
                for d in demands
            ]
        with self._box_locked() as others:
            holding = self.store.holding()
            running = [self.memory.reservation(t, paces, now) for t in holding]
            theirs = [o.reservation() for o in others]
            settings = self.store.settings()
            explainer = WaitExplainer(
                snapshot, running, settings, now, _names(holding), _by_card(theirs)
            )
            placements, waiting = [], {}
            for demand, placement, ledger in placement_pass(
                demands, snapshot, running, settings, now, theirs
            ):
                if placement is not None:
                    placements.append(placement)
                else:
                    waiting[demand.task_id] = explainer.why(demand, ledger)
            self._record_waits(waiting, now)
            claimed = []
            for placement in placements:
                task = self.store.get(placement.task_id)
                output_start = (
                    SavePackage(Path(task.package_path)).output_size() if task.package_path else 0
                )
                mine = self.store.claim(
                    task.id, placement.memory_mb_by_device, self.leadership.id, output_start, now
                )
                if mine is not None:  # else: deleted, or claimed by another scheduler
                    if mine.package_path and RUNNERS[mine.kind] is Runner.PROCESS:
                        # The last run's figures are not this one's: read in the seconds before
                        # it writes its own, they would shrink it and teach its job wrongly.
                        SavePackage(Path(mine.package_path)).clear_progress()
                    pretend = snapshot.source == "fake" and mine.devices != (CPU_ID,)
                    cluster = snapshot.local_node is not None
                    marks = launch_marks(mine.reserved_mb, pretend, settings, cluster)
                    claimed.append(mine.launched_with(marks))
            if claimed:
                self._publish()  # before the lock is let go: others must see these at once
        return [started for task in claimed if (started := self._launch(task, now)) is not None]

    def _launch(self, task: TaskRecord, now: float) -> TaskRecord | None:
        executor = self.runners.executor_for(task)
        try:
            launch = executor.start(task, task.devices)
        except LaunchDeferred as exc:
            with contextlib.suppress(TaskStateError):
                self.store.unclaim(task.id, str(exc))
            return None
        except LaunchUnknown as exc:  # it stays starting until adoption settles it
            self._unsettled[task.id] = now
            self.events.write(f"task {task.id}: {exc}")
            return None
        except OSError as exc:
            with contextlib.suppress(TaskStateError):
                self.store.finish(
                    task.id, TaskState.FAILED, error=f"could not start the task: {exc}"
                )
            return None
        try:
            running = self.store.mark_running(
                task.id, launch.pid, launch.started, now=now, kernel_id=launch.kernel_id
            )
        except TaskStateError:  # deleted while it launched: the delete could not reach it
            executor.stop(_launched(task, launch))
            return None
        devices = ", ".join("CPU" if d == CPU_ID else f"GPU {d}" for d in task.devices)
        self.events.write(f"task {task.id} started on {devices} (pid {launch.pid})")
        return running

    def _record_waits(self, waiting: dict[int, str], now: float) -> None:
        """Store the reasons that changed since this scheduler last stored them.

        A reason whose words stay and only its figures moved (a card's free MiB, as other
        processes' memory comes and goes) is stored again at most every WAIT_FIGURES_S: each
        write bumps the task's version, so every dashboard would fetch every queued task anew.
        """
        changed = {}
        for task_id, why in waiting.items():
            stored = self._waits.get(task_id)
            if stored is not None and (
                stored[0] == why
                or (_words(stored[0]) == _words(why) and now - stored[1] < WAIT_FIGURES_S)
            ):
                continue
            changed[task_id] = why
        self.store.set_waiting(changed)
        self._waits = {
            i: (why, now) if i in changed else self._waits[i] for i, why in waiting.items()
        }

    # -- the box ledger ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _box_locked(self) -> Iterator[list[OtherReservation]]:
        if self.box is None:
            yield []
            return
        with self.box.locked() as others:
            yield others

    def _publish(self) -> None:
        if self.box is None:
            return
        self.box.publish(
            [
                box_ledger.row(t.id, dict(t.reserved_mb), t.pid, t.pid_start_time)
                for t in self.store.holding()
                if t.owner == self.leadership.id or t.state is TaskState.RUNNING
            ]
        )

    def close(self) -> None:
        """Step down. Our rows stay in the box ledger: the tasks they name keep running (and
        keep their memory) until the next scheduler of this queue re-adopts them."""
        self.leadership.close()


def _words(reason: str) -> str:
    return re.sub(r"[\d,]+", "#", reason)


def _names(holding: list[TaskRecord]) -> dict[int, str]:
    """How a wait names the tasks holding a card: analyzers are often what holds one idle."""
    return {
        t.id: f"{'analyzer' if RUNNERS[t.kind] is Runner.KERNEL else 'task'} {t.id}"
        for t in holding
    }


def _by_card(reservations: list[Reservation]) -> dict[int, int]:
    total: dict[int, int] = {}
    for reservation in reservations:
        for card, mb in reservation.memory_mb_by_device.items():
            total[card] = total.get(card, 0) + mb
    return total


def _launched(task: TaskRecord, launch: Launch) -> TaskRecord:
    return task._replace(pid=launch.pid, pid_start_time=launch.started, kernel_id=launch.kernel_id)
