"""The dashboard's panels: widgets built once, then updated in place from API replies.

Each panel's `update` only sets traits (the refresher thread calls it); buttons do not act
themselves, they hand an action to the dashboard, which runs it on the same thread.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as widgets

from ..client.client import runs_in_kernel
from ..core.tasks import TaskState
from . import view_model as vm
from .widgets_util import set_options, set_value

Action = Callable[[], str | None]  # returns what to tell the user, if anything
Submit = Callable[[Action], None]

MAX_OUTPUT_CHARS = 64 * 1024  # the output panel keeps the newest text
LATEST = -1


class QueuePanel:
    def __init__(self, submit: Submit, client: Any) -> None:
        self.state = widgets.Dropdown(
            options=[vm.ALL_STATES, *TaskState], value=vm.ALL_STATES, description="state",
            layout=widgets.Layout(width="180px"),
        )  # fmt: skip
        self.text = widgets.Text(placeholder="filter: id, kind, description, path")
        self.table = widgets.HTML()
        self.selected = widgets.Dropdown(description="task", layout=widgets.Layout(width="280px"))
        self.checkpoint = widgets.Dropdown(
            description="checkpoint", layout=widgets.Layout(width="200px")
        )
        self.stop = widgets.Button(description="Stop", button_style="danger", icon="stop")
        self.continue_ = widgets.Button(description="Continue", icon="play")
        self.analyze = widgets.Button(description="Analyze", icon="search")
        self.show_output = widgets.Button(description="Output", icon="file-text")
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.state, self.text]),
                self.table,
                widgets.HBox(
                    [self.selected, self.stop, self.checkpoint, self.continue_, self.analyze]
                ),
            ]
        )
        self._client, self._submit = client, submit
        self.stop.on_click(lambda _: submit(self._stop))
        self.continue_.on_click(lambda _: submit(self._continue))
        self.analyze.on_click(lambda _: submit(self._analyze))

    @property
    def task_id(self) -> int | None:
        value = self.selected.value
        return value if isinstance(value, int) else None

    def update(self, tasks: Sequence[Mapping[str, Any]], now: float | None = None) -> None:
        shown, total = vm.visible(tasks, str(self.state.value), self.text.value)
        set_options(
            self.selected, [(f"{t['id']} {t['kind']} {t['state']}", t["id"]) for t in shown]
        )
        set_value(self.table, vm.queue_html(shown, self.task_id, total, now))
        task = next((t for t in tasks if t["id"] == self.task_id), None)
        ended = task is None or TaskState(task["state"]).terminal
        self.stop.disabled = ended
        self.continue_.disabled = self.analyze.disabled = (
            task is None or task.get("package_path") is None
        )

    def set_checkpoints(self, reply: Mapping[str, Any] | None) -> None:
        held = (reply or {}).get("checkpoints") or []
        # -1 is DLNest's "the latest" (None would read as no choice at all in a Dropdown).
        options = [("latest", LATEST)] + [
            (f"{c['id']} (epoch {c['epoch']})", c["id"]) for c in held
        ]
        set_options(self.checkpoint, options)

    def _stop(self) -> str | None:
        if self.task_id is None:
            return "select a task first"
        task = self._client.delete(self.task_id)
        return f"task {task['id']} {task['state']}"

    def _continue(self) -> str | None:
        task, package = self._from_package("continue")
        return f"task {task['id']} {task['state']}: continue {package}"

    def _analyze(self) -> str | None:
        task, package = self._from_package("analyze")
        return f"analyzer {task['id']} {task['state']}: it loads {package}"

    def _from_package(self, kind: str) -> tuple[dict[str, Any], str]:
        """Submit a `kind` task on the selected task's package, at the chosen checkpoint."""
        package = self._package()
        body: dict[str, Any] = {"kind": kind, "record_path": package}
        if self.checkpoint.value not in (None, LATEST):
            body["checkpoint_id"] = self.checkpoint.value
        return self._client.submit(body), package

    def _package(self) -> str:
        task = self._client.task(self.task_id) if self.task_id is not None else None
        if task is None or not task.get("package_path"):
            raise ValueError("select a task with a save package first")
        return str(task["package_path"])


class DevicesPanel:
    def __init__(self, submit: Submit, client: Any) -> None:
        self.widget = widgets.VBox()
        self.note = widgets.HTML()
        self._rows: dict[int, tuple[widgets.HTML, widgets.ToggleButton]] = {}
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
        if [d["id"] for d in devices] != list(self._rows):
            self._rows = {d["id"]: self._row(d["id"]) for d in devices}
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
                bar, toggle = self._rows[device["id"]]
                rows.append(widgets.HBox([toggle, bar]))
            self.widget.children = rows
        set_value(self.note, vm.devices_note(devices))
        for node, heading in self._headings.items():
            set_value(heading, vm.node_heading_html(node, devices))
        for device in devices:
            bar, toggle = self._rows[device["id"]]
            set_value(bar, vm.device_bar_html(device))
            set_value(toggle, bool(device["enabled"]))
            toggle.description = "enabled" if device["enabled"] else "disabled"
            toggle.button_style = "success" if device["enabled"] else ""

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
            changed = self._client.update_settings({"devices": wanted})
            return f"devices now {changed['devices']}"

        self._submit(apply)


class AnalyzerPanel:
    def __init__(self, submit: Submit, client: Any) -> None:
        self.analyzer = widgets.Dropdown(
            description="analyzer", layout=widgets.Layout(width="260px")
        )
        self.script = widgets.Dropdown(description="script", layout=widgets.Layout(width="260px"))
        self.run = widgets.Button(description="Run", button_style="primary", icon="play")
        self.interrupt = widgets.Button(description="Interrupt", icon="stop")
        self.attach = widgets.HTML()
        self.output = widgets.Output(layout=widgets.Layout(max_height="300px", overflow="auto"))
        self.state = widgets.HTML()
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.analyzer, self.script, self.run, self.interrupt]),
                self.state,
                self.output,
                self.attach,
            ]
        )
        self._client = client
        self.experiment: tuple[int, int] | None = None  # (task id, experiment id) being shown
        self.offsets = (0, 0)
        self.text = ""
        self.displays: list[dict[str, Any]] = []
        self.run.on_click(lambda _: submit(self._run))
        self.interrupt.on_click(lambda _: submit(self._interrupt))

    @property
    def task_id(self) -> int | None:
        value = self.analyzer.value
        return value if isinstance(value, int) else None

    def update(self, tasks: Sequence[Mapping[str, Any]]) -> bool:
        """New analyzer options; True when the chosen analyzer changed (scripts to fetch)."""
        before = self.task_id
        running = [
            t for t in tasks if runs_in_kernel(t["kind"]) and t["state"] == TaskState.RUNNING
        ]
        options = [
            (f"{t['id']} ({(t.get('progress') or {}).get('analyzer', '?')})", t["id"])
            for t in running
        ]
        set_options(self.analyzer, options)
        self.run.disabled = self.interrupt.disabled = self.task_id is None
        return self.task_id != before

    def set_scripts(self, names: Sequence[str], how: Mapping[str, Any] | None) -> None:
        set_options(self.script, list(names))
        if how is None:
            set_value(self.attach, "")
            return
        set_value(
            self.attach,
            vm.output_html(
                f"attach: Kernel > Change Kernel..., then {how['session_name']!r}\n"
                f"console: jupyter console --existing {how['connection_file']}"
            ),
        )

    def follow(self, experiment: Mapping[str, Any]) -> None:
        """Show an experiment's new text and displays (offsets tell what is new)."""
        self.text = (self.text + experiment["output"])[-MAX_OUTPUT_CHARS:]
        self.displays = (self.displays + list(experiment["displays"]))[-20:]
        self.offsets = (experiment["offset"], experiment["display_offset"])
        outputs: list[dict[str, Any]] = []
        if self.text:
            outputs.append({"output_type": "stream", "name": "stdout", "text": self.text})
        if experiment.get("error"):
            outputs.append({"output_type": "stream", "name": "stderr", "text": experiment["error"]})
        outputs += [
            {"output_type": "display_data", "data": d["data"], "metadata": d.get("metadata") or {}}
            for d in self.displays
        ]
        self.output.outputs = tuple(outputs)  # assigned, never `with output:` from a thread
        set_value(
            self.state,
            f"experiment {experiment['id']} ({html.escape(str(experiment['name']))}):"
            f" {vm.state_badge(experiment['state'])}",
        )

    def _run(self) -> str | None:
        if self.task_id is None or not self.script.value:
            return "choose an analyzer and a script"
        experiment = self._client.run_experiment(self.task_id, {"name": self.script.value})
        self.experiment, self.offsets, self.text, self.displays = (
            (self.task_id, experiment["id"]), (0, 0), "", []
        )  # fmt: skip
        return f"experiment {experiment['id']} {experiment['state']}"

    def _interrupt(self) -> str | None:
        if self.task_id is None:
            return "choose an analyzer"
        self._client.interrupt(self.task_id)
        return f"analyzer {self.task_id} interrupted"


class SettingsPanel:
    def __init__(self, submit: Submit, client: Any) -> None:
        self.max_tasks = widgets.BoundedIntText(min=1, max=1_000_000, description="tasks per card")
        self.delay = widgets.BoundedFloatText(min=0, max=86_400, description="launch delay s")
        self.apply = widgets.Button(description="Apply", icon="check")
        self.scheduler = widgets.HTML()
        self.widget = widgets.VBox([self.max_tasks, self.delay, self.apply, self.scheduler])
        self._client, self.loaded = client, False
        self.apply.on_click(lambda _: submit(self._apply))

    def update(self, settings: Mapping[str, Any]) -> None:
        if not self.loaded:  # later refreshes must not overwrite what the user is typing
            self.max_tasks.value = settings["max_tasks_per_device"]
            self.delay.value = settings["launch_delay_s"]
            self.loaded = True

    def show_scheduler(self, scheduler: Mapping[str, Any]) -> None:
        set_value(self.scheduler, vm.scheduler_html(scheduler))

    def _apply(self) -> str:
        changed = self._client.update_settings(
            {"max_tasks_per_device": self.max_tasks.value, "launch_delay_s": self.delay.value}
        )
        return f"settings: {changed['max_tasks_per_device']} tasks per card, {changed['launch_delay_s']} s delay"
