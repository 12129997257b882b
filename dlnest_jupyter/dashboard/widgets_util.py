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
