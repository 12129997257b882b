"""AutoTensorboardScalar: each list-valued log key's values as TensorBoard scalars, in an event
file in the save package (DLNest wrote only the newest value of each at every visualize; here
every value logged since the last one, so none is skipped, and after everything (AAll, also
after an abort) the values logged since the last visualize, the last validation's included).
Rank 0 writes.

Needs the `tensorboard` package (the `tensorboard` extra); without it the run says so once and
goes on.
"""

from __future__ import annotations

import math
from typing import Any

from .base import ShippedPlugin

NAME = "AutoTensorboardScalar"
MISSING = (
    "dlnest: AutoTensorboardScalar needs the tensorboard package: "
    "pip install 'dlnest-jupyter[tensorboard]'; the run goes on without it"
)
_WRITER = "_dlnest_tensorboard_writer"


class DLNestPlugin(ShippedPlugin):
    _NAME = NAME

    def runnerInit(
        self: Any, args: dict[str, Any], datasetInfo: dict[str, Any] | None = None
    ) -> None:
        object.__setattr__(self, "_tensorboardWritten", {})
        writer = None
        if self._status.rank in (-1, 0):
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                print(MISSING, flush=True)
            else:
                writer = SummaryWriter(".")  # the run's working folder: its save package
        object.__setattr__(self, _WRITER, writer)

    def visualize(self: Any, log: dict[str, Any], epoch: int, iter: int) -> None:
        object.__setattr__(self, "_tensorboardLog", log)  # the run's log, which AAll reads
        _write_new(self, log)

    def AAll(self: Any) -> None:
        """On the life cycle, after everything: the values logged since the last visualize
        (the last epoch's validation) are written, and the runner's writer closed."""
        runner = getattr(self, "runner", None)
        writer = getattr(runner, _WRITER, None)
        if writer is not None:
            _write_new(runner, getattr(runner, "_tensorboardLog", {}))
            writer.close()


def _write_new(runner: Any, log: dict[str, Any]) -> None:
    """Each list-valued key's values logged since the last write, at their index as step."""
    writer = getattr(runner, _WRITER, None)
    if writer is None:
        return
    written: dict[str, int] = runner._tensorboardWritten
    for key, values in log.items():
        if not isinstance(values, list):
            continue
        for step in range(written.get(key, 0), len(values)):
            value = _number(values[step])
            if value is not None:
                writer.add_scalar(key, value, step)
        written[key] = len(values)


def _number(value: Any) -> float | None:
    """A finite number, from a Python number or a one-element tensor; else None (skipped)."""
    if hasattr(value, "numel") and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
