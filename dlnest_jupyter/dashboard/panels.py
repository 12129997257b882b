"""The dashboard's panels: widgets built once, then updated in place from API replies.

Each panel's `update` only sets traits (the refresher thread calls it); buttons do not act
themselves, they hand an action to the dashboard, which runs it on the same thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import traitlets

from ..core.devices import CPU_ID
from ..core.settings import Settings
from ..core.tasks import runs_in_kernel
from . import view_model as vm
from .widgets_util import set_options, set_value

Action = Callable[[], str | None]  # returns what to tell the user, if anything
Submit = Callable[[Action], None]

MAX_OUTPUT_CHARS = 64 * 1024  # the output panel keeps the newest text


class DevicesPanel:
    def __init__(self, submit: Submit, client: Any) -> None:
        self.widget = widgets.VBox()
        self.note = widgets.HTML()
        # Device id -> (its bar, its enable toggle), in the order shown.
        self.cards: dict[int, tuple[widgets.HTML, widgets.ToggleButton]] = {}
        self._headings: dict[str, widgets.HTML] = {}  # cluster machine -> its heading
        self._client, self._submit = client, submit
        self._updating = False  # the refresher setting a toggle is not the user clicking it

    def update(self, devices: Sequence[Mapping[str, Any]]) -> None:
        self._updating = True
        try:
            self._update(devices)
        finally:
            self._updating = False

    def _update(self, devices: Sequence[Mapping[str, Any]]) -> None:
        if [d["id"] for d in devices] != list(self.cards):
            self.cards = {d["id"]: self._row(d["id"]) for d in devices}
            # On a cluster, each machine's cards under a heading of its own.
            self._headings = {
                node: widgets.HTML()
                for node in dict.fromkeys(d["node"] for d in devices if d.get("node"))
            }
            rows: list[widgets.Widget] = [self.note]
            for device in devices:
                heading = self._headings.get(device.get("node") or "")
                if heading is not None and heading not in rows:
                    rows.append(heading)
                bar, toggle = self.cards[device["id"]]
                rows.append(widgets.HBox([toggle, bar]))
            self.widget.children = rows
        set_value(self.note, vm.devices_note(devices))
        for node, heading in self._headings.items():
            set_value(heading, vm.node_heading_html(node, devices))
        for device in devices:
            bar, toggle = self.cards[device["id"]]
            set_value(bar, vm.device_bar_html(device))
            set_value(toggle, bool(device["enabled"]))
            toggle.description = "enabled" if device["enabled"] else "disabled"
            toggle.button_style = "success" if device["enabled"] else ""
            # A tooltip of its own: ipywidgets shows an unset one as the word "null".
            name = _device_name(device["id"])
            toggle.tooltip = f"click to {'disable' if device['enabled'] else 'enable'} {name}"

    def _row(self, device_id: int) -> tuple[widgets.HTML, widgets.ToggleButton]:
        toggle = widgets.ToggleButton(layout=widgets.Layout(width="90px"))
        toggle.observe(lambda change: self._toggled(device_id, change), names="value")
        return widgets.HTML(), toggle

    def _toggled(self, device_id: int, change: Mapping[str, Any]) -> None:
        if self._updating or change.get("new") == change.get("old"):
            return

        def apply() -> str:
            settings = self._client.settings()
            enabled = settings["devices"]
            if enabled is None:
                enabled = [d["id"] for d in self._client.devices()]
            chosen = set(enabled) | {device_id} if change["new"] else set(enabled) - {device_id}
            wanted = sorted(chosen)
            self._client.update_settings({"devices": wanted})
            used = ", ".join(map(_device_name, wanted)) or "none"
            state = "enabled" if change["new"] else "disabled"
            return f"{_device_name(device_id)} {state}; tasks may use: {used}"

        self._submit(apply)


def _device_name(device_id: int) -> str:
    return "the CPU" if device_id == CPU_ID else f"GPU {device_id}"


class OutputPanel:
    """The Output tab: a task's output by offset. Its picker follows the queue's selection
    (the dashboard sets it when that changes) and can be set here to read another task."""

    def __init__(self) -> None:
        self.picker = widgets.Dropdown(description="task", layout=widgets.Layout(width="320px"))
        self.text = widgets.HTML(vm.output_html(""))
        self.widget = widgets.VBox([self.picker, self.text])

    @property
    def task_id(self) -> int | None:
        value = self.picker.value
        return value if isinstance(value, int) else None

    def update(self, tasks: Sequence[Mapping[str, Any]]) -> None:
        """Tasks with output of their own: training runs (an analyzer's is per experiment)."""
        runs = [t for t in tasks if t.get("package_path") and not runs_in_kernel(t["kind"])]
        set_options(
            self.picker,
            [(f"{t['id']} {t['kind']} {t['state']} {vm.short(t.get('description') or '', 30)}",
              t["id"]) for t in runs[: vm.WINDOW_ROWS]],
        )  # fmt: skip

    def follow(self, task_id: int | None) -> None:
        with contextlib.suppress(traitlets.TraitError):  # not one with output: keep the pick
            self.picker.value = task_id


class SettingsPanel:
    def __init__(self, submit: Submit, client: Any) -> None:
        # A label column of its own and a box wide enough for the value: a long label that
        # shares 300 px with its box left the box 20 px wide, the typed value unseen.
        def labelled() -> dict[str, Any]:
            return {
                "style": {"description_width": "190px"},
                "layout": widgets.Layout(width="340px"),
            }

        self.max_tasks = widgets.BoundedIntText(
            min=1, max=1_000_000, description="most tasks per card", **labelled()
        )
        self.delay = widgets.BoundedFloatText(
            min=0, max=86_400, description="launch delay on a card (s)", **labelled()
        )
        wide = widgets.Layout(width="520px")  # the whole label: it says what the switch does
        self.guard = widgets.Checkbox(
            description="guard: cap each run at its reservation + margin", indent=False, layout=wide
        )
        self.shrink_given = widgets.Checkbox(
            description="shrink -m reservations to what runs use", indent=False, layout=wide
        )
        self.retries = widgets.BoundedIntText(
            min=0, max=100, description="retries when out of memory", **labelled()
        )
        for box in (self.max_tasks, self.delay, self.guard, self.shrink_given, self.retries):
            box.tooltip = box.description  # ipywidgets shows an unset tooltip as "null"
        self.explained = widgets.HTML(settings_help_html())
        self.apply = widgets.Button(description="Apply", icon="check")
        self.scheduler = widgets.HTML()
        self.widget = widgets.VBox(
            [
                self.max_tasks,
                self.delay,
                self.guard,
                self.shrink_given,
                self.retries,
                self.explained,
                self.apply,
                self.scheduler,
            ]
        )
        self._client, self.loaded = client, False
        self._applied: dict[str, Any] = {}  # what the server holds, to say what Apply changed
        self.apply.on_click(lambda _: submit(self._apply))

    def update(self, settings: Mapping[str, Any]) -> None:
        if not self.loaded:  # later refreshes must not overwrite what the user is typing
            self.max_tasks.value = settings["max_tasks_per_device"]
            self.delay.value = settings["launch_delay_s"]
            # A server older than learned memory has none of these: they keep their defaults.
            self.guard.value = bool(settings.get("guard_memory", False))
            self.shrink_given.value = bool(settings.get("shrink_given", False))
            self.retries.value = settings.get("oom_retries", Settings().oom_retries)
            self._applied = dict(settings)
            self.loaded = True

    def show_scheduler(self, scheduler: Mapping[str, Any]) -> None:
        set_value(self.scheduler, vm.scheduler_html(scheduler))

    def _apply(self) -> str:
        before = self._applied or self._client.settings()
        wanted = {"max_tasks_per_device": self.max_tasks.value, "launch_delay_s": self.delay.value}
        if "guard_memory" in before:
            wanted |= {
                "guard_memory": self.guard.value,
                "shrink_given": self.shrink_given.value,
                "oom_retries": self.retries.value,
            }
        changed = self._client.update_settings(wanted)
        self._applied = dict(changed)
        return "settings: " + settings_change_text(before, changed)


SETTING_NAMES = {
    "max_tasks_per_device": "tasks per card",
    "launch_delay_s": "launch delay (s)",
    "guard_memory": "guard",
    "shrink_given": "shrink -m",
    "oom_retries": "retries",
}


def settings_change_text(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """`tasks per card 10000 → 2; guard False → True`: what Apply changed."""
    changed = [
        f"{name} {before.get(key)} → {after.get(key)}"
        for key, name in SETTING_NAMES.items()
        if before.get(key) != after.get(key)
    ]
    return "; ".join(changed) if changed else "nothing changed"


def settings_help_html() -> str:
    default = Settings().max_tasks_per_device
    return (
        "<div style='font-size:12px;line-height:1.4;color:#555;max-width:640px'>"
        "Memory decides first: a task starts on a card only when its estimate fits there. "
        f"<b>Most tasks per card</b> caps how many of this queue's tasks share one card besides; "
        f"the default, {default:,}, means no limit (memory alone decides). "
        "<b>Launch delay</b>: the least time between two launches on one card, so that a "
        "starting task's memory shows before the next is placed (0: none needed, tasks "
        "reserve their estimate when claimed). "
        "<b>Guard</b>: each training run's CUDA allocator is capped at its reservation plus the "
        "margin, so a run that outgrows its share fails itself (out of GPU memory) instead of "
        "its neighbours; it is then queued again, reserving what it reached, as many times as "
        "<b>retries</b> says. A run's reservation shrinks to what it measurably uses once it has "
        "warmed up (its first epoch, or 200 steps), except while the guard is on; <b>shrink -m</b> "
        "lets that happen to reservations given with -m too.</div>"
    )
