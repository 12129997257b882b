"""LogInit: the root logger's level and format, set before everything (DLNest's, unchanged)."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from ...core.plugin_configs import SHIPPED
from .base import DLNestPluginBase as DPB

NAME = "LogInit"


class DLNestPlugin(DPB):
    _NAME = NAME
    _config: ClassVar[dict[str, Any]] = dict(SHIPPED[NAME].full)
    _defaultKeys: ClassVar[list[str]] = list(SHIPPED[NAME].default_keys)

    def BAll(self: Any) -> None:
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        logging.basicConfig(
            level=DPB.getArgs(self, NAME, "level", DLNestPlugin._config["level"]),
            format=DPB.getArgs(self, NAME, "format", DLNestPlugin._config["format"]),
            datefmt=DPB.getArgs(self, NAME, "datefmt", DLNestPlugin._config["datefmt"]),
        )
