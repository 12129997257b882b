"""What DLNest's runner and dataset share: the args, the plugin list and the running status."""

from __future__ import annotations

from typing import Any

from .status import RunningStatus


class RunPart:
    def __init__(
        self,
        args: dict[str, Any],
        plugins: list[Any] | None = None,
        status: RunningStatus | None = None,
    ) -> None:
        self.args = args
        self._args = args
        self._plugins = plugins or []  # kept for DLNest signatures; plugins are not supported
        self._status = status or RunningStatus()

    def getArgs(self) -> dict[str, Any]:
        return self._args
