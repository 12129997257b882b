"""LifeCycleBase: hooks around every stage of training, and the decisions that steer it.

Every Before-hook (B...) may return the string "Skip" to skip its stage; the matching
After-hook (A...) still runs. Hooks take no arguments: the life cycle reaches the run through
`self.runner` (alias `self.model`), `self.dataset`, `self.args` and `self._status`.
"""

from __future__ import annotations

import traceback
from typing import Any

from .status import RunningStatus

SKIP = "Skip"


class StopRequested(SystemExit):
    """SIGTERM: the task was deleted, or a sweep's pruner stopped it. The run exits 128 + the
    signal, and says so in a line: it did not crash, so no traceback."""

    def __str__(self) -> str:
        return (
            f"stopped (SIGTERM: the task was deleted or its process stopped; exit code {self.code})"
        )


class LifeCycleBase:
    def __init__(
        self,
        runner: Any = None,
        dataset: Any = None,
        taskProcess: Any = None,
        plugins: list[Any] | None = None,
        status: RunningStatus | None = None,
        args: dict[str, Any] | None = None,
    ) -> None:
        self.runner = runner
        self.dataset = dataset
        self.taskProcess = taskProcess
        self.args = args if args is not None else {}
        self._plugins = plugins or []
        self._status = status or RunningStatus()

    @property
    def model(self) -> Any:
        return self.runner

    @model.setter
    def model(self, value: Any) -> None:
        self.runner = value

    @property
    def rank(self) -> int:
        return self._status.rank

    def getArgs(self) -> dict[str, Any]:
        return self.args

    # Decisions. Arguments are positional: (epoch, [iter,] logdict, args).
    def needVisualize(
        self, epoch: int, iter: int, logdict: dict[str, Any], args: dict[str, Any]
    ) -> bool:
        return False

    def needValidation(self, epoch: int, logdict: dict[str, Any], args: dict[str, Any]) -> bool:
        return False

    def commandLineOutput(self, epoch: int, logdict: dict[str, Any], args: dict[str, Any]) -> None:
        print(f"Epoch #{epoch} finished!")

    def needSaveModel(self, epoch: int, logdict: dict[str, Any], args: dict[str, Any]) -> bool:
        return True

    def holdThisCheckpoint(self, epoch: int, logdict: dict[str, Any], args: dict[str, Any]) -> bool:
        return False

    def needContinueTrain(self, epoch: int, logdict: dict[str, Any], args: dict[str, Any]) -> bool:
        return False

    def trainAborting(self, exception: BaseException) -> None:
        """Called with whatever stopped the run (init errors included); the run then exits non-zero."""
        if isinstance(exception, StopRequested):
            print(f"dlnest: {exception}", flush=True)
        else:
            traceback.print_exception(exception)

    def getSaveDict(self) -> dict[str, Any]:
        """State to keep in each checkpoint (under `life_cycle`)."""
        return {}

    def loadSaveDict(self, saveDict: dict[str, Any]) -> None:
        """Restore what `getSaveDict` returned."""

    # Before/After pairs, outermost first.
    def BAll(self) -> Any:
        """Before everything; "Skip" skips initialisation and training."""

    def AAll(self) -> Any:
        """After everything, always last, also after an abort."""

    def BDatasetInit(self) -> Any:
        """Before the dataset is built."""

    def ADatasetInit(self) -> Any:
        """After the dataset is built (and restored when continuing)."""

    def BModelInit(self) -> Any:
        """Before the runner is built."""

    def AModelInit(self) -> Any:
        """After the runner, optimizers and log exist (restored when continuing)."""

    def BTrain(self) -> Any:
        """Before the first epoch."""

    def ATrain(self) -> Any:
        """After the last epoch; not called when the run aborts."""

    def BOneEpoch(self) -> Any:
        """Before an epoch."""

    def AOneEpoch(self) -> Any:
        """After an epoch, before needContinueTrain."""

    def BModelOneStep(self) -> Any:
        """Before a training step."""

    def AModelOneStep(self) -> Any:
        """After a training step."""

    def BVisualize(self) -> Any:
        """Before runner.visualize."""

    def AVisualize(self) -> Any:
        """After runner.visualize."""

    def BValidation(self) -> Any:
        """Before a validation pass."""

    def AValidation(self) -> Any:
        """After a validation pass."""

    def BValidateABatch(self) -> Any:
        """Before a validation batch."""

    def AValidateABatch(self) -> Any:
        """After a validation batch."""

    def BValidationAnalyze(self) -> Any:
        """Before runner.validationAnalyze."""

    def AValidationAnalyze(self) -> Any:
        """After runner.validationAnalyze."""

    def BSaveModel(self) -> Any:
        """Before the save decision and checkpoint."""

    def ASaveModel(self) -> Any:
        """After the save decision. The checkpoint captures the state at the end of the epoch,
        after AOneEpoch, so what AOneEpoch changes (an LR scheduler step) is in it."""
