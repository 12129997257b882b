"""LogInit: the root logger's level and format, set before everything (DLNest's, unchanged)."""

from __future__ import annotations

import logging
from typing import Any

from .base import ShippedPlugin

NAME = "LogInit"


class DLNestPlugin(ShippedPlugin):
    _NAME = NAME

    def BAll(self: Any) -> None:
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        logging.basicConfig(
            level=DLNestPlugin.setting(self, "level"),
            format=DLNestPlugin.setting(self, "format"),
            datefmt=DLNestPlugin.setting(self, "datefmt"),
        )
