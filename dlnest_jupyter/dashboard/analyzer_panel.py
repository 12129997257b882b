"""The Analyzers tab: pick a running analyzer and a script, run it, follow its output.

A panel only ever shows what belongs to the analyzer it names: choosing another analyzer (or
the one shown ending, and a new one taking its place in the picker) clears the experiment shown,
and a late reply about another analyzer's experiment is dropped.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets

from ..core.fields import MAX_INT
from ..core.tasks import ExperimentState, TaskState, runs_in_kernel
from . import view_model as vm
from .panels import MAX_OUTPUT_CHARS, Submit
from .widgets_util import set_options, set_value

# After a click Interrupt stays disabled this long: a double click's second click lands on
# nothing, not on the experiment the kernel takes up once the first one ends.
INTERRUPT_HOLD_S = 1.0


class AnalyzerPanel:
    def __init__(self, submit: Submit, client: Any) -> None:
        self.analyzer = widgets.Dropdown(
            description="analyzer", layout=widgets.Layout(width="300px")
        )
        self.script = widgets.Dropdown(description="script", layout=widgets.Layout(width="260px"))
        self.run = widgets.Button(description="Run", button_style="primary", icon="play")
        self.interrupt = widgets.Button(description="Interrupt", icon="stop")
        self.attach = widgets.HTML()
        self.output = widgets.Output(layout=widgets.Layout(max_height="300px", overflow="auto"))
        self.kernel = widgets.HTML()  # the analyzer's own state, as its task reports it
        self.state = widgets.HTML()  # the experiment shown
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.analyzer, self.script, self.run, self.interrupt]),
                self.kernel,
                self.state,
                self.output,
                self.attach,
            ]
        )
        self._client = client
        self.shown_for: int | None = None  # the analyzer whose experiment the output shows
        self.experiment: tuple[int, int] | None = None  # (task id, experiment id) being followed
        self.offsets = (0, 0)
        self.text = ""
        self.displays: list[dict[str, Any]] = []
        self._kernel_busy = False  # as the chosen analyzer's task last said
        self.sent: list[int] = []  # the experiments sent from here to the analyzer, oldest first
        self.shown_state: str | None = None  # the state the panel's line shows
        self._held_until = 0.0  # Interrupt's hold after a click (monotonic seconds)
        self._submit = submit
        self.run.on_click(lambda _: submit(self._run))
        self.interrupt.on_click(self._on_interrupt)

    @property
    def task_id(self) -> int | None:
        value = self.analyzer.value
        return value if isinstance(value, int) else None

    def update(self, tasks: Sequence[Mapping[str, Any]]) -> bool:
        """New analyzer options; True when the chosen analyzer changed (scripts to fetch)."""
        running = [
            t for t in tasks if runs_in_kernel(t["kind"]) and t["state"] == TaskState.RUNNING
        ]
        set_options(self.analyzer, [(analyzer_label(t), t["id"]) for t in running])
        self.run.disabled = self.task_id is None
        self.interrupt.disabled = self.task_id is None or time.monotonic() < self._held_until
        chosen = next((t for t in running if t["id"] == self.task_id), None)
        self._kernel_busy = ((chosen or {}).get("progress") or {}).get("kernel") == "busy"
        set_value(self.kernel, analyzer_state_html(chosen))
        if self.task_id == self.shown_for:
            return False
        self._clear(self.task_id)
        return True

    def _clear(self, task_id: int | None) -> None:
        """Show nothing of the analyzer shown before: a new one is not its continuation."""
        self.shown_for, self.experiment, self.offsets = task_id, None, (0, 0)
        self.text, self.displays, self.sent, self.shown_state = "", [], [], None
        if self.output.outputs:
            self.output.outputs = ()
        set_value(self.state, "")
        set_options(self.script, [])
        set_value(self.attach, "")

    def set_scripts(self, names: Sequence[str], how: Mapping[str, Any] | None = None) -> None:
        set_options(self.script, list(names))
        if how is None:
            return
        set_value(
            self.attach,
            vm.output_html(
                f"attach: Kernel > Change Kernel..., then {how['session_name']!r}\n"
                f"console: jupyter console --existing {how['connection_file']}"
            ),
        )

    def follow(self, task_id: int, experiment: Mapping[str, Any]) -> bool:
        """Show an experiment's new text and displays (offsets tell what is new); a reply about
        another analyzer than the one named, or another experiment, is dropped (False)."""
        if self.experiment != (task_id, experiment["id"]) or task_id != self.task_id:
            return False
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
        self._show_state(task_id, experiment)
        return True

    def _show_state(self, task_id: int, experiment: Mapping[str, Any]) -> None:
        self.shown_state = str(experiment["state"])
        set_value(
            self.state,
            f"analyzer {task_id}, experiment {experiment['id']}"
            f" ({html.escape(str(experiment['name']))}): {vm.state_badge(experiment['state'])}",
        )

    def _run(self) -> str | None:
        task_id = self.task_id
        if task_id is None or not self.script.value:
            return "choose an analyzer and a script"
        experiment = self._client.run_experiment(task_id, {"name": self.script.value})
        self._clear_output()
        self.experiment = (task_id, experiment["id"])
        self.sent = [*self.sent, experiment["id"]][-50:]
        self._show_state(task_id, experiment)  # queued behind another, or running: said now
        # The panel's own line follows its state; this line says what was done, once.
        return f"experiment {experiment['id']} ({self.script.value}) sent to analyzer {task_id}"

    def _clear_output(self) -> None:
        self.offsets, self.text, self.displays = (0, 0), "", []
        if self.output.outputs:
            self.output.outputs = ()

    def _on_interrupt(self, _: Any) -> None:
        self.interrupt.disabled = True
        self._held_until = time.monotonic() + INTERRUPT_HOLD_S
        self._submit(self._interrupt)

    def _interrupt(self) -> str | None:
        """Interrupt what runs of the experiments sent from here: the oldest not ended (the
        kernel runs them in order), by its id, so an interrupt never lands on the next one."""
        task_id = self.task_id
        if task_id is None:
            return "choose an analyzer"
        target = self._oldest_unfinished(task_id)
        if target is None:
            # An interrupt sent on a guess could land on whatever runs next: say why, send none.
            if self._kernel_busy:
                return (
                    f"analyzer {task_id}'s kernel is busy with code run from a notebook or "
                    "console, not from here: nothing was interrupted. Interrupt it there (■)."
                )
            return (
                f"no experiment started here runs on analyzer {task_id}: nothing was interrupted."
            )
        if not self._client.interrupt(task_id, target):
            return (
                f"experiment {target} has not started (the kernel runs code from a notebook or "
                "console first), or its interrupt was sent already: nothing more was sent."
            )
        return f"interrupt sent to analyzer {task_id} (experiment {target})"

    def _oldest_unfinished(self, task_id: int) -> int | None:
        for experiment_id in self.sent:  # its state only: offsets past any output
            reply = self._client.experiment(task_id, experiment_id, MAX_INT, MAX_INT, 0)
            if not ExperimentState(reply["state"]).terminal:
                return experiment_id
        return None


def analyzer_label(task: Mapping[str, Any]) -> str:
    progress = task.get("progress") or {}
    count = progress.get("experiments", 0)
    return f"{task['id']} ({progress.get('analyzer', '?')}, {vm.plural(count, 'experiment')})"


def analyzer_state_html(task: Mapping[str, Any] | None) -> str:
    """What the analyzer's task says of its kernel: loading, ready, failed; experiments run."""
    if task is None:
        return "<i>no analyzer is running: select a task in the Queue tab and press Analyze</i>"
    progress = task.get("progress") or {}
    state = str(progress.get("analyzer") or "starting")
    loads = progress.get("loads")
    again = f", loaded {loads} times (restarted)" if isinstance(loads, int) and loads > 1 else ""
    kernel = progress.get("kernel")  # busy also while a notebook attached to it runs a cell
    busy = " · <b>kernel busy</b>" if kernel == "busy" else (" · kernel idle" if kernel else "")
    return (
        f"<div style='font-size:12px'>analyzer {task['id']}: {vm.state_badge(state)}{busy}"
        f" · {vm.plural(progress.get('experiments', 0), 'experiment')}{html.escape(again)}"
        f" · <span title='{html.escape(task.get('package_path') or '')}'>"
        f"{html.escape(vm.short(task.get('description') or '', 60))}</span></div>"
    )
