"""RunnerBase (alias ModelBase): the user's model and its steps, framework-agnostic."""

from __future__ import annotations

from typing import Any

from .part import RunPart


class RunnerBase(RunPart):
    """Override `init`, `initOptimizer`, `initLog`, `runOneStep` and the validation methods.

    The loop calls the step methods with keyword arguments (`data=`, `log=`, `iter=`,
    `epoch=`) as DLNest did, so parameter names matter and order does not. A runner may define
    `validate(loader, log)` instead of the validationInit / validateABatch / validationAnalyze
    trio.
    """

    @property
    def _envType(self) -> str:
        return self._status.env

    @property
    def _rank(self) -> int:
        return self._status.rank

    @property
    def _worldSize(self) -> int:
        return self._status.worldSize

    def init(self, args: dict[str, Any], datasetInfo: dict[str, Any] | None = None) -> None:
        """Build the model from args and what the dataset's init returned."""

    def initOptimizer(self) -> None:
        """Create optimizers and LR schedulers (after modules are on their device)."""

    def DDPOperation(self, rank: int) -> None:
        """Called under DDP between `init` and `initOptimizer`."""

    def afterDDP(self, rank: int) -> None:
        """Called under DDP after `initOptimizer` (SyncBN and the like)."""

    def initLog(self) -> dict[str, Any]:
        """The log dict of a fresh run; checkpoints save and restore it."""
        return {}

    def getSaveDict(self) -> dict[str, Any]:
        """State to keep in each checkpoint (under `runner`)."""
        return {}

    def loadSaveDict(self, saveDict: dict[str, Any]) -> None:
        """Restore what `getSaveDict` returned."""

    def runOneStep(self, data: Any, log: dict[str, Any], iter: int, epoch: int) -> None:
        """Train on one batch."""

    def visualize(self, log: dict[str, Any], iter: int, epoch: int) -> None:
        """Called when the life cycle's needVisualize says so."""

    def validationInit(self) -> None:
        """Reset accumulators before a validation pass."""

    def validateABatch(self, data: Any, iter: int) -> None:
        """Validate one batch."""

    def validationAnalyze(self, log: dict[str, Any]) -> None:
        """Turn the accumulators into log entries."""


ModelBase = RunnerBase
