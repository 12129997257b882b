"""Build a run's objects from a save package: the steps training and analysis share.

Each builder is one stage; the training loop wraps them in the life cycle's hooks, analysis
calls them bare. Restoring from a checkpoint happens inside the stage that owns the state.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from ..core.checkpoints import CHECKPOINT_ARGS_KEY, TrackLimits
from ..core.config import merge
from ..core.errors import DLNestError
from ..core.package import SavePackage
from .checkpoint_io import CheckpointWriter, load_checkpoint
from .dataset import DatasetBase
from .devices import DevicePlan, plan_devices
from .lifecycle import LifeCycleBase
from .plugin_hooks import (
    DATASET_HOOKS,
    LIFE_CYCLE_HOOKS,
    MERGED,
    RUNNER_HOOKS,
    Plugins,
    load_plugins,
)
from .rng import restore_rng_state, seed_everything
from .runner import RunnerBase
from .status import DDP, RunningStatus
from .user_code import load_user_classes


@dataclass
class Session:
    package: SavePackage
    args: dict[str, Any]
    classes: dict[str, type]
    devices: DevicePlan
    status: RunningStatus
    checkpoint_id: int | None = None
    checkpoint: dict[str, Any] | None = None
    life_cycle: LifeCycleBase = field(init=False)
    dataset: DatasetBase | None = None
    runner: RunnerBase | None = None
    dataset_info: dict[str, Any] = field(default_factory=dict)
    train_loader: Any = None
    val_loader: Any = None
    log: dict[str, Any] = field(default_factory=dict)
    finished_epoch: int = 0
    warnings: list[str] = field(default_factory=list)  # for the run's output, printed once
    plugins: Plugins = field(default_factory=Plugins)  # a training run's (analyses run none)

    def __post_init__(self) -> None:
        life_cycle = self.classes["life_cycle"](
            status=self.status, args=self.args, plugins=list(self.plugins.loaded)
        )
        if life_cycle.taskProcess is None:  # what DLNest's LogInit and getArgs read
            life_cycle.taskProcess = SimpleNamespace(task=SimpleNamespace(args=self.args))
        self.plugins.attach(life_cycle, LIFE_CYCLE_HOOKS)
        self.life_cycle = life_cycle


def open_session(
    package: SavePackage,
    device_ids: Sequence[int],
    checkpoint_id: int | None = None,
    ddp: bool = False,
    rank: int = 0,
    args: dict[str, Any] | None = None,
    pretend_gpus: bool = False,
    plugins: bool = True,
) -> Session:
    """Import the package's classes, pick the device, load the checkpoint, seed the RNGs.

    Bad input (a class that is missing or has the wrong base, an unknown checkpoint id, a plugin
    that is neither shipped nor a file) raises a DLNestError here, before any user object is
    built. `plugins`: run `args["plugins"]` (training does; an analysis does not, so an
    analyzer neither mails nor writes TensorBoard files).
    """
    if args is None:  # else given: a continue's new config (run_args)
        args = package.args_for(
            package.resolve_checkpoint(checkpoint_id) if checkpoint_id is not None else None
        )
    classes = load_user_classes(package.layout())
    devices = plan_devices(device_ids, ddp=ddp, rank=rank, pretend=pretend_gpus)
    status = RunningStatus(
        env=devices.env,
        device=devices.device,
        rank=rank if ddp else -1,
        worldSize=len(device_ids) if ddp else 1,
    )
    checkpoint = None
    if checkpoint_id is not None:
        checkpoint_id = package.resolve_checkpoint(checkpoint_id)
        weights_only = bool(args.get(CHECKPOINT_ARGS_KEY, {}).get("weights_only", True))
        checkpoint = load_checkpoint(package, checkpoint_id, devices.device, weights_only)
    seed_everything(int(args.get("_seed", 0)))
    loaded = load_plugins(args) if plugins else Plugins()
    session = Session(
        package, args, classes, devices, status, checkpoint_id, checkpoint, plugins=loaded
    )
    if devices.warning:
        session.warnings.append(devices.warning)
    return session


def print_warnings(session: Session) -> None:
    for warning in session.warnings:
        print(warning, file=sys.stderr)


def run_args(
    package: SavePackage, checkpoint_id: int | None, overrides: Mapping[str, Any] | None
) -> dict[str, Any]:
    """A run's config: that of the checkpoint it continues from (args.json for a fresh run),
    changed by a continue's `overrides`."""
    resolved = package.resolve_checkpoint(checkpoint_id) if checkpoint_id is not None else None
    args = package.args_for(resolved)
    return merge(args, overrides) if overrides else args


def open_writer(session: Session, overrides: Mapping[str, Any] | None = None) -> CheckpointWriter:
    """The checkpoint writer of a training run; a continue starts its branch at the loaded id
    (a new one when `overrides` change the config: core/package_state.continue_from)."""
    writer = CheckpointWriter(session.package, TrackLimits.from_args(session.args))
    if session.checkpoint_id is not None:
        writer.start_branch(session.checkpoint_id, overrides)
    return writer


def build_dataset(session: Session) -> None:
    dataset = session.classes["dataset"](
        session.args, plugins=list(session.plugins.loaded), status=session.status
    )
    session.plugins.attach(dataset, DATASET_HOOKS, MERGED)
    result = dataset.init(session.args)
    if not isinstance(result, tuple) or len(result) != 3:
        raise DLNestError(
            f"{type(dataset).__name__}.init(args) must return (info, train_loader, val_loader), "
            f"got {type(result).__name__}"
        )
    info, session.train_loader, session.val_loader = result
    session.dataset_info = info if isinstance(info, dict) else {}
    if session.checkpoint is not None:
        dataset.loadSaveDict(session.checkpoint.get("dataset", {}))
    session.dataset = dataset
    session.life_cycle.dataset = dataset


def build_runner(session: Session, restore_rng: bool) -> None:
    runner = session.classes["runner"](
        session.args, plugins=list(session.plugins.loaded), status=session.status
    )
    session.plugins.attach(runner, RUNNER_HOOKS, MERGED)
    runner.init(session.args, session.dataset_info)
    if session.status.env == DDP:
        runner.DDPOperation(session.status.rank)
    runner.initOptimizer()
    if session.status.env == DDP:
        runner.afterDDP(session.status.rank)
    session.runner = runner
    session.life_cycle.runner = runner
    checkpoint = session.checkpoint
    if checkpoint is None:
        session.log = runner.initLog()
        return
    runner.loadSaveDict(checkpoint.get("runner", checkpoint.get("model", {})))
    session.life_cycle.loadSaveDict(checkpoint.get("life_cycle", {}))
    session.log = checkpoint.get("log_dict", {})
    session.finished_epoch = int(checkpoint.get("finished_epoch", 0))
    if restore_rng and "rng" in checkpoint:
        restore_rng_state(checkpoint["rng"])
