"""DatasetBase: the user's data, as in DLNest 0.3."""

from __future__ import annotations

from typing import Any

from .part import RunPart
from .status import DDP


class DatasetBase(RunPart):
    """Subclass and override `init(args)` to return (info for the runner, train loader, val loader).

    Loaders only need to support iteration; a plain list works. Under DDP, build loaders with
    `self.getSampler(ds)` so each rank sees its own shard.
    """

    def init(self, args: dict[str, Any]) -> tuple[dict[str, Any], Any, Any]:
        """Build the data; return (info passed to the runner's init, train loader, val loader)."""
        raise NotImplementedError(
            f"{type(self).__name__}.init(args) must return (info, train_loader, val_loader)"
        )

    def getSampler(self, dataset: Any) -> Any:
        """A DistributedSampler under DDP, else None."""
        if self._status.env != DDP:
            return None
        from torch.utils.data.distributed import DistributedSampler

        return DistributedSampler(dataset)

    def getSaveDict(self) -> dict[str, Any]:
        """State to keep in each checkpoint (under `dataset`)."""
        return {}

    def loadSaveDict(self, saveDict: dict[str, Any]) -> None:
        """Restore what `getSaveDict` returned."""
