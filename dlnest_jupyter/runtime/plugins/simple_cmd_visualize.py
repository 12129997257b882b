"""SimpleCMDVisualize: every `stride` steps, a line `Iter : N` and the newest value of each chosen
log key, in its format (DLNest's), into the run's output.

Unlike DLNest, the line is printed, not logged at INFO: without LogInit the root logger drops
INFO, and the line was lost. A key whose format does not fit its value is shown plainly.
"""

from __future__ import annotations

from typing import Any

from .base import ShippedPlugin

NAME = "SimpleCMDVisualize"
_PLAIN = "\t| {}: {}"


class DLNestPlugin(ShippedPlugin):
    _NAME = NAME

    def runnerInit(
        self: Any, args: dict[str, Any], datasetInfo: dict[str, Any] | None = None
    ) -> None:
        self._visualStride = max(1, int(DLNestPlugin.setting(self, "stride")))
        self._visualKeys = list(DLNestPlugin.setting(self, "keys"))
        self._visualFormat = {key: _PLAIN for key in self._visualKeys}
        self._visualFormat.update(DLNestPlugin.setting(self, "format"))

    def visualize(self: Any, epoch: int, iter: int, log: dict[str, Any]) -> None:
        if iter % self._visualStride != 0:
            return
        parts = [f"Iter : {iter}"]
        for key in self._visualKeys:
            values = log.get(key)
            newest = values[-1] if isinstance(values, list) and values else None
            try:
                parts.append(self._visualFormat[key].format(key, newest))
            except (ValueError, TypeError, IndexError, KeyError, AttributeError):
                parts.append(_PLAIN.format(key, newest))
        print("".join(parts), flush=True)
