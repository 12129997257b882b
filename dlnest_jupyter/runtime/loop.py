"""The training loop, in DLNest 0.3's exact order (reference/dlnest.md section 3.8).

    BAll -> [BDatasetInit -> dataset -> ADatasetInit] -> [BModelInit -> runner -> AModelInit]
    -> BTrain -> per epoch: BOneEpoch -> steps (BModelOneStep, runOneStep, AModelOneStep,
       needVisualize? BVisualize, visualize, AVisualize) -> commandLineOutput -> needValidation?
       [BValidation -> validate -> AValidation] -> BSaveModel -> needSaveModel? save -> ASaveModel
       -> AOneEpoch -> needContinueTrain? -> ATrain -> AAll

Differences from DLNest, on purpose:
- the save decision (needSaveModel, holdThisCheckpoint) is taken where DLNest took it, but the
  state is captured at the end of the epoch, after AOneEpoch: DLNest's own template steps the LR
  scheduler in AOneEpoch, after its save, so every continued run lost one scheduler step. A
  continue starts at the next BOneEpoch, which is exactly what follows in an uninterrupted run;
- errors during initialisation reach `trainAborting` too, and an aborted run exits non-zero;
- a skipped epoch counts as passed (DLNest looped on it forever).
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import torch.distributed as dist

from ..core.errors import DiskFullError, DLNestError, disk_full
from ..core.package import EPOCH_MEAN_MARK, MAX_STEP_VALUES, STEPS_FILE
from .checkpoint_io import CheckpointWriter
from .devices import move_to_device
from .lifecycle import SKIP
from .progress import ProgressFile
from .rng import capture_rng_state
from .session import Session, build_dataset, build_runner
from .status import CPU, DDP

CHECKPOINT_FORMAT = 1


class TrainingLoop:
    def __init__(
        self, session: Session, writer: CheckpointWriter | None, launch_index: int = 0
    ) -> None:
        """`writer` is None on DDP ranks other than 0, which never save."""
        self.session = session
        self.writer = writer
        self.launch_index = launch_index
        self.progress: ProgressFile | None = None  # called once per training step
        self._ddp = session.status.env == DDP
        self._lists_at_epoch_start: dict[str, ListMark] = {}  # of the log's lists
        self._main = session.status.is_main_process

    def run(self) -> BaseException | None:
        """Run everything; return what aborted the run, or None when it finished."""
        life_cycle = self.session.life_cycle
        error: BaseException | None = None
        try:
            if life_cycle.BAll() != SKIP:
                self._init()
                self._train()
            if self.writer is not None:
                self.writer.wait()
        except BaseException as exc:
            error = exc
            pending = self._wait_for_writer_quietly()
            if isinstance(pending, DiskFullError) and disk_full(exc):
                error = pending  # the same full disk, but this one names the checkpoint
            life_cycle.trainAborting(exc)
        life_cycle.AAll()
        return error

    def _init(self) -> None:
        life_cycle, session = self.session.life_cycle, self.session
        if life_cycle.BDatasetInit() != SKIP:
            build_dataset(session)
        life_cycle.ADatasetInit()
        _require(session.dataset, "DatasetInit")
        if life_cycle.BModelInit() != SKIP:
            build_runner(session, restore_rng=True)
        life_cycle.AModelInit()
        _require(session.runner, "ModelInit")

    def _train(self) -> None:
        life_cycle, session = self.session.life_cycle, self.session
        if life_cycle.BTrain() == SKIP:
            life_cycle.ATrain()
            return
        epoch = session.finished_epoch + 1
        while True:
            hold = self._epoch(epoch) if life_cycle.BOneEpoch() != SKIP else None
            # DLNest left finished_epoch behind on a skipped epoch, so needContinueTrain saw the
            # same epoch again and the loop never ended; a skipped epoch counts as passed.
            session.finished_epoch = epoch
            life_cycle.AOneEpoch()
            if hold is not None:
                self._save(epoch, hold)
            if not life_cycle.needContinueTrain(session.finished_epoch, session.log, session.args):
                break
            epoch = session.finished_epoch + 1
        life_cycle.ATrain()

    def _epoch(self, epoch: int) -> bool | None:
        """Train, report, validate and decide the save; returns the hold flag if saving."""
        life_cycle, session = self.session.life_cycle, self.session
        args, log = session.args, session.log
        self._lists_at_epoch_start = list_marks(log)
        self._train_one_epoch(epoch)
        session.finished_epoch = epoch
        life_cycle.commandLineOutput(epoch, log, args)
        if life_cycle.needValidation(epoch, log, args):
            if life_cycle.BValidation() != SKIP:
                self._validate()
            life_cycle.AValidation()
        if self._main:
            session.package.append_metrics(self._metrics_record(epoch))
            steps = epoch_steps(log, self._lists_at_epoch_start)
            if steps:
                session.package.append_metrics({**self._row_marks(epoch), **steps}, STEPS_FILE)
        if self._ddp:
            dist.barrier()
        hold = None
        if (
            self._main
            and life_cycle.BSaveModel() != SKIP
            and life_cycle.needSaveModel(epoch, log, args)
        ):
            hold = bool(life_cycle.holdThisCheckpoint(epoch, log, args))
        life_cycle.ASaveModel()
        return hold

    def _train_one_epoch(self, epoch: int) -> None:
        session = self.session
        status, life_cycle, runner = session.status, session.life_cycle, session.runner
        assert runner is not None
        status.status, status.epoch = "Training", epoch
        if self._ddp:
            set_epoch = getattr(getattr(session.train_loader, "sampler", None), "set_epoch", None)
            if callable(set_epoch):
                set_epoch(epoch)
        # Hot path: look every bound method up once per epoch, not once per step.
        before, after = life_cycle.BModelOneStep, life_cycle.AModelOneStep
        need_visualize, step, progress = life_cycle.needVisualize, runner.runOneStep, self.progress
        device = None if status.env == CPU else status.device
        args, log = session.args, session.log
        if progress is not None:
            progress.steps_per_epoch = _length(session.train_loader)
        for index, data in enumerate(session.train_loader):
            status.iter = index
            if before() != SKIP:
                step(
                    data=data if device is None else move_to_device(data, device),
                    log=log,
                    iter=index,
                    epoch=epoch,
                )
            after()
            if progress is not None:
                progress(epoch, index)
            if need_visualize(epoch, index, log, args):
                if self._main and life_cycle.BVisualize() != SKIP:
                    runner.visualize(log=log, iter=index, epoch=epoch)
                life_cycle.AVisualize()
        if progress is not None:
            progress.flush()
        status.status = "Waiting"

    def _validate(self) -> None:
        session = self.session
        life_cycle, runner, log = session.life_cycle, session.runner, session.log
        assert runner is not None
        session.status.status = "Validating"
        validate = getattr(runner, "validate", None)
        if callable(validate):
            validate(session.val_loader, log)
        else:
            device = None if session.status.env == CPU else session.status.device
            runner.validationInit()
            for index, data in enumerate(session.val_loader):
                if life_cycle.BValidateABatch() != SKIP:
                    runner.validateABatch(
                        data=data if device is None else move_to_device(data, device), iter=index
                    )
                life_cycle.AValidateABatch()
            if life_cycle.BValidationAnalyze() != SKIP:
                runner.validationAnalyze(log=log)
            life_cycle.AValidationAnalyze()
        session.status.status = "Waiting"

    def _save(self, epoch: int, hold: bool) -> None:
        session = self.session
        assert session.runner is not None and session.dataset is not None
        payload = {
            "format": CHECKPOINT_FORMAT,
            "runner": session.runner.getSaveDict(),
            "dataset": session.dataset.getSaveDict(),
            "life_cycle": session.life_cycle.getSaveDict(),
            "log_dict": session.log,
            "finished_epoch": epoch,
            "rng": capture_rng_state(),
        }
        assert self.writer is not None, "only the main process saves"
        self.writer.save(payload, epoch=epoch, hold=hold)

    def _metrics_record(self, epoch: int) -> dict[str, Any]:
        values = epoch_means(self.session.log, self._lists_at_epoch_start)
        return {**values, **self._row_marks(epoch)}

    def _row_marks(self, epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "_launch": self.launch_index,
            # Which line of the package's history this epoch is on (core/package_state.py).
            "_branch": self.writer.state.branch if self.writer is not None else 0,
            "_time": round(time.time(), 3),
        }

    def _wait_for_writer_quietly(self) -> DLNestError | None:
        """Let a checkpoint write in flight end; returns (and shows) how it failed, if it did."""
        if self.writer is None:
            return None
        try:
            self.writer.wait()
        except DLNestError as exc:
            with contextlib.suppress(OSError):  # its disk may be the full one
                print(f"dlnest: {exc}")
            return exc
        return None


def _require(built: object, stage: str) -> None:
    if built is None:
        raise DLNestError(f"B{stage} returned 'Skip', so there is nothing to train")


# A log list and its length at an epoch's start. The list itself, not its id: a list replaced
# and freed could lend its id to the new one.
ListMark = tuple[list[Any], int]


def list_marks(log: dict[str, Any]) -> dict[str, ListMark]:
    return {key: (value, len(value)) for key, value in log.items() if isinstance(value, list)}


def added_this_epoch(key: str, value: list[Any], marks: dict[str, ListMark]) -> list[Any]:
    """What list `key` gained since the epoch began. A list replaced meanwhile (`log["val"] =
    [acc]`, `log["loss"] = log["loss"][-100:]`) or shortened counts whole: its length alone
    would say it gained nothing."""
    then, start = marks.get(key, (value, 0))
    if then is not value or len(value) < start:
        return value
    return value[start:]


def epoch_means(log: dict[str, Any], marks: dict[str, ListMark]) -> dict[str, Any]:
    """Each numeric list entry's mean over the values added during the epoch, each numeric
    scalar entry as it is, and the mark saying so.

    The last value alone was one minibatch's: "best loss 0.003" on a run whose epochs averaged
    0.12. A list that gained nothing this epoch (validation every few epochs) is left out: its
    last value is an older epoch's. A list replaced or shortened counts whole."""
    values: dict[str, Any] = {}
    for key, value in log.items():
        if isinstance(value, list):
            added = added_this_epoch(key, value, marks)
            numbers = [n for n in map(_number, added) if n is not None]
            if numbers and len(numbers) == len(added):
                values[key] = math.fsum(numbers) / len(numbers)
        elif (number := _number(value)) is not None:
            values[key] = number
    return {**values, EPOCH_MEAN_MARK: True}


def epoch_steps(log: dict[str, Any], marks: dict[str, ListMark]) -> dict[str, Any]:
    """Each numeric list entry's values added during the epoch, one per step (evenly thinned
    to MAX_STEP_VALUES), and how many there were: `{"values": {key: [...]}, "counts": {...}}`;
    empty when no list gained numbers."""
    values: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for key, value in log.items():
        if not isinstance(value, list):
            continue
        added = added_this_epoch(key, value, marks)
        numbers = [n for n in map(_number, added) if n is not None]
        if not numbers or len(numbers) != len(added):
            continue
        stride = -(-len(numbers) // MAX_STEP_VALUES)  # ceiling division
        values[key], counts[key] = numbers[::stride], len(numbers)
    return {"values": values, "counts": counts} if values else {}


def _number(value: Any) -> float | None:
    if hasattr(value, "item") and getattr(value, "numel", lambda: 1)() == 1:
        value = value.item()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _length(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:  # an iterable dataset has no length
        return None
