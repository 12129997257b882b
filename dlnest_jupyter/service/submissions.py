"""Submissions: the verbs that check a request, make or open its package, and queue a task.

One function per task kind, named by the kind table (`task_kinds.py`), each over an `Intake`
(what a submission reads and writes). A submission refuses what can never run (a config that
does not load, a card that does not exist, a package already being trained) before anything
is stored; what it stores, the task's spec, is described in `task_kinds.py`. Placing and
starting the queued task is the scheduler's (`service.py` asks for a pass at once). Nothing
here imports torch or user code: configs are read and code is parsed, never run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.checkpoints import TrackLimits
from ..core.config import merge
from ..core.continuation import EPOCHS_KEY, check_epochs, plan_continuation
from ..core.devices import DeviceSource
from ..core.errors import PackageBusyError, TaskError
from ..core.memory_fingerprint import copied_files, fingerprint_of, memory_fingerprint
from ..core.memory_policy import with_margin
from ..core.package import SavePackage
from ..core.package_creation import PackageOptions, create_package, discard_new_package
from ..core.placement import admission_error
from ..core.placement_values import Demand
from ..core.project_check import ProjectChecks
from ..core.store import TaskStore
from ..core.sweep_book import TrialRef
from ..core.sweep_space import with_params
from ..core.tasks import (
    FINGERPRINT,
    LEARNED_MB,
    LEARNED_RUNS,
    RUNNERS,
    SWEEP,
    Runner,
    TaskKind,
    TaskRecord,
    TaskState,
)
from .event_log import EventLog
from .runners import RunnerRouter

DEFAULT_SCRIPTS_DIR = "AnalyzeScripts"


@dataclass
class Intake:
    """What the submissions read and write.

    `scripts_dir`: where runExp finds scripts when an analyze request names no folder:
    relative to the package's project folder (DLNest's `AnalyzeScripts`), or absolute.
    """

    store: TaskStore
    devices: DeviceSource
    runners: RunnerRouter  # an analyze is refused where there is no kernel host
    log: EventLog
    scripts_dir: str = DEFAULT_SCRIPTS_DIR
    projects: ProjectChecks = field(default_factory=ProjectChecks)


def submit_train(
    intake: Intake,
    config_path: str | Path,
    *,
    freq_path: str | Path | None = None,
    description: str = "",
    memory_mb: int | None = None,
    cpu: bool = False,
    multi_gpu: bool = False,
    ddp: bool = False,
    no_save: bool = False,
    use_description: bool = False,
    jump: bool = False,
    trial: TrialRef | None = None,
) -> TaskRecord:
    """Check the config and code, refuse what can never fit, copy the package, queue it.

    `trial`: a sweep's trial (service/sweeps), whose values are set in the package's config
    and which is recorded beside it in the same write."""
    checked = intake.projects.check(config_path, freq_path)
    loaded = checked.loaded
    if trial is not None:
        loaded = dataclasses.replace(loaded, args=with_params(loaded.args, trial.params))
    TrackLimits.from_args(loaded.args, loaded.blame("checkpoint_args"))
    check_epochs(loaded.args, loaded.blame(EPOCHS_KEY))
    placement = {"cpu": cpu, "multi_gpu": multi_gpu, "ddp": ddp}
    admit(intake, memory_mb, placement)
    in_use = (  # a queued or running no-save run's folder is not cleared under it
        frozenset(
            t.package_path
            for t in intake.store.list_tasks(
                [TaskState.QUEUED, TaskState.STARTING, TaskState.RUNNING]
            )
            if t.package_path is not None
        )
        if no_save
        else frozenset()
    )
    package = create_package(
        loaded,
        PackageOptions(description, no_save, use_description, in_use=in_use),
        checked.layout,
    )
    spec: dict[str, Any] = {
        "config_path": str(config_path),
        "freq_path": freq_path and str(freq_path),
        **placement,
    }
    try:
        if trial is not None:
            spec[SWEEP] = trial.to_json()
            package.record_in_task_file(SWEEP, trial.to_json())
        # From the project's files as copied (their digests are kept while they are unchanged).
        files = copied_files(checked.layout.copies())
        spec |= _learned(intake, fingerprint_of(files, loaded.args), memory_mb, placement)
        return _queue(
            intake,
            TaskKind.TRAIN,
            spec,
            loaded.warnings,
            package.path,
            f"train {config_path}",
            description=description,
            memory_mb=memory_mb,
            jump=jump,
            trial=trial,
        )
    except BaseException:
        discard_new_package(package)
        raise


def submit_continue(
    intake: Intake,
    record_path: str | Path,
    *,
    checkpoint_id: int | None = None,
    freq_path: str | Path | None = None,
    epochs: int | None = None,
    description: str = "",
    memory_mb: int | None = None,
    cpu: bool = False,
    multi_gpu: bool = False,
    ddp: bool = False,
    jump: bool = False,
) -> TaskRecord:
    """Queue more training of a package; `freq_path` and `epochs` change its config when
    the run starts (core/continuation.py)."""
    package = SavePackage.open(record_path)
    resolved = package.resolve_checkpoint(checkpoint_id)
    continuation = plan_continuation(package, resolved, freq_path, epochs)
    busy = [  # analyzers only read the package: training it alongside is fine
        t
        for t in intake.store.list_tasks([TaskState.QUEUED, TaskState.STARTING, TaskState.RUNNING])
        if t.package_path == str(package.path) and RUNNERS[t.kind] is Runner.PROCESS
    ]
    if busy:
        raise PackageBusyError(
            f"{package.path}: task {busy[0].id} already uses this package ({busy[0].state.value})"
        )
    placement = {"cpu": cpu, "multi_gpu": multi_gpu, "ddp": ddp}
    admit(intake, memory_mb, placement)
    spec: dict[str, Any] = {
        "record_path": str(package.path),
        "checkpoint_id": resolved,
        **placement,
    }
    if continuation.overrides:
        spec.update(overrides=continuation.overrides, freq_path=freq_path and str(freq_path))
    args = package.args_for(resolved)
    run_args = merge(args, continuation.overrides) if continuation.overrides else args
    spec |= _learned(intake, memory_fingerprint(package, run_args), memory_mb, placement)
    return _queue(
        intake,
        TaskKind.CONTINUE,
        spec,
        continuation.warnings,
        package.path,
        f"continue {package.path} from checkpoint {resolved}",
        description=description,
        memory_mb=memory_mb,
        jump=jump,
    )


def submit_analyze(
    intake: Intake,
    record_path: str | Path,
    *,
    checkpoint_id: int | None = None,
    scripts_dir: str | Path | None = None,
    description: str = "",
    memory_mb: int | None = None,
    cpu: bool = False,
    jump: bool = False,
) -> TaskRecord:
    """Queue an analyzer: once placed, a kernel loads the package and keeps its model."""
    if intake.runners.analyzers is None:
        raise TaskError("analyzers need a kernel manager; this service was built without one")
    package = SavePackage.open(record_path)
    resolved = package.resolve_checkpoint(checkpoint_id)
    project = package.path.parent.parent  # <project>/Saves/<package>
    scripts = Path(scripts_dir) if scripts_dir else project / intake.scripts_dir
    placement = {"cpu": cpu, "multi_gpu": False, "ddp": False}
    admit(intake, memory_mb, placement, on_this_machine=True)
    spec = {
        "record_path": str(package.path),
        "checkpoint_id": resolved,
        "scripts_dir": str(scripts.expanduser().resolve()),
        **placement,
    }
    # Without -m it starts from what training the package used (an analysis holds the model
    # without optimizer state or gradients, mostly less); its kernel's memory is followed, and
    # the ledger raised at once if its experiments need more.
    spec |= _learned(
        intake, memory_fingerprint(package, package.args_for(resolved)), memory_mb, placement
    )
    return _queue(
        intake,
        TaskKind.ANALYZE,
        spec,
        (),
        package.path,
        f"analyze {package.path} at checkpoint {resolved}",
        description=description,
        memory_mb=memory_mb,
        jump=jump,
    )


def _queue(
    intake: Intake,
    kind: TaskKind,
    spec: dict[str, Any],
    warnings: tuple[str, ...] | list[str],
    package_path: Path,
    what: str,
    *,
    description: str,
    memory_mb: int | None,
    jump: bool,
    trial: TrialRef | None = None,
) -> TaskRecord:
    """Store the task (and its sweep trial's row, in the same write); say so in the log."""
    if warnings:  # the submission's reply carries them (api/routes.py submit_task)
        spec["warnings"] = [*spec.get("warnings", []), *warnings]
    task = intake.store.submit(
        kind,
        spec,
        description=description,
        package_path=str(package_path),
        memory_mb=memory_mb,
        jump=jump,
        trial=trial,
    )
    intake.log.write(f"task {task.id} queued: {what}")
    return task


def forget_memory(intake: Intake, task_id: int) -> dict[str, Any]:
    """Forget what earlier runs of `task_id`'s job used (its memory fingerprint): the next runs
    reserve the default and learn anew. `{"fingerprint", "forgotten_runs"}`."""
    fingerprint = intake.store.get(task_id).spec.get(FINGERPRINT)
    if not isinstance(fingerprint, str):
        raise TaskError(f"task {task_id} was queued before memory was learned: it has no history")
    forgotten = intake.store.memory.forget(fingerprint)
    intake.log.write(f"memory of task {task_id}'s job forgotten ({forgotten} runs)")
    return {"fingerprint": fingerprint, "forgotten_runs": forgotten}


def _learned(
    intake: Intake,
    fingerprint: str,
    memory_mb: int | None,
    placement: dict[str, Any],
) -> dict[str, Any]:
    """The spec's memory keys: the run's fingerprint, and without -m what earlier runs of it
    used (their peak, over all cards for -mc, on its busiest card for one card and for each
    -DDP rank, plus the margin), if any ran."""
    keys: dict[str, Any] = {FINGERPRINT: fingerprint}
    learned = intake.store.memory.learned(fingerprint)
    if memory_mb is not None or placement["cpu"] or learned is None:
        return keys
    peak = learned.total_peak_mb if placement["multi_gpu"] else learned.card_peak_mb
    reserve = with_margin(peak, intake.store.settings())
    try:
        admit(intake, reserve, {**placement, "rank_mb": reserve if placement["ddp"] else None})
    except TaskError:  # learned on bigger cards than these: their figure does not apply here
        return {
            **keys,
            "warnings": [
                f"earlier runs of this config used {peak:,} MiB, more than a card here can "
                "hold; it reserves the default and learns anew"
            ],
        }
    return {**keys, LEARNED_MB: reserve, LEARNED_RUNS: learned.runs}


def admit(
    intake: Intake,
    memory_mb: int | None,
    placement: dict[str, Any],
    on_this_machine: bool = False,
) -> None:
    """Refuse what can never run; `on_this_machine`: an analyzer, on one card (so the refusal
    suggests no -mc or -DDP), and on a cluster only this server's machine's cards count."""
    snapshot = intake.devices.snapshot()
    node = snapshot.local_node if on_this_machine else None
    demand = Demand(
        task_id=0, memory_mb=memory_mb, node=node, one_card=on_this_machine, **placement
    )
    reason = admission_error(demand, snapshot, intake.store.settings())
    if reason is not None:
        raise TaskError(f"refused: {reason}")
