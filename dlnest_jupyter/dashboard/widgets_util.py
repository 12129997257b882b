"""Small helpers for ipywidgets that the panels share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets


def set_options(
    dropdown: widgets.Dropdown | widgets.SelectMultiple, options: Sequence[Any]
) -> None:
    """New options, keeping the user's choice: ipywidgets 8 resets the value on every assignment
    (and leaves a Dropdown at None), so assign only on change and restore what is still offered."""
    options = list(options)
    if list(dropdown.options) == options:
        return
    kept = dropdown.value
    values = [o[1] if isinstance(o, tuple) else o for o in options]
    dropdown.options = options
    if isinstance(dropdown, widgets.SelectMultiple):
        dropdown.value = tuple(v for v in kept if v in values)
    elif kept in values:
        dropdown.value = kept
    elif values:
        dropdown.value = values[0]


class NewestUntilPicked:
    """A Dropdown whose options come newest first: it shows the newest until the user picks
    one (so what was just submitted is in view), and again once that pick is no longer offered.
    The queue's task picker and the Sweeps tab's sweep picker."""

    def __init__(self, dropdown: widgets.Dropdown) -> None:
        self.dropdown = dropdown
        self._picked, self._choosing = False, False
        dropdown.observe(self._on_value, names="value")

    def _on_value(self, _: Any) -> None:
        if not self._choosing:
            self._picked = True

    def set_options(self, options: Sequence[tuple[str, Any]]) -> None:
        values = [value for _, value in options]
        if self.dropdown.value not in values:
            self._picked = False  # the pick is gone (filtered out, forgotten): follow again
        self._choosing = True
        try:
            set_options(self.dropdown, options)
            if not self._picked and values and self.dropdown.value != values[0]:
                self.dropdown.value = values[0]  # the newest
        finally:
            self._choosing = False


def set_value(widget: Any, value: Any) -> None:
    """Assign only on change: an unchanged trait would still go over the wire."""
    if widget.value != value:
        widget.value = value


def set_stoppable(button: widgets.Button, stoppable: bool) -> None:
    """A Stop button: enabled and red only when there is something to stop (a disabled button
    still drawn red, only faded, read as active)."""
    style = "danger" if stoppable else ""
    if button.disabled == stoppable:
        button.disabled = not stoppable
    if button.button_style != style:
        button.button_style = style
