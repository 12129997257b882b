"""The Analyzers tab: pick a running analyzer and a script, run it, follow its output.

A panel only ever shows what belongs to the analyzer it names: choosing another analyzer (or
the one shown ending, and a new one taking its place in the picker) clears the experiment shown,
and a late reply about another analyzer's experiment is dropped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets

from ..core.tasks import TaskState, runs_in_kernel
from . import view_model as vm
from .panels import MAX_OUTPUT_CHARS, Submit
from .widgets_util import set_options, set_value


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
        self.run.on_click(lambda _: submit(self._run))
        self.interrupt.on_click(lambda _: submit(self._interrupt))

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
        self.run.disabled = self.interrupt.disabled = self.task_id is None
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
        self.text, self.displays = "", []
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
        set_value(
            self.state,
            f"analyzer {task_id}, experiment {experiment['id']}"
            f" ({html.escape(str(experiment['name']))}): {vm.state_badge(experiment['state'])}",
        )
        return True

    def _run(self) -> str | None:
        task_id = self.task_id
        if task_id is None or not self.script.value:
            return "choose an analyzer and a script"
        experiment = self._client.run_experiment(task_id, {"name": self.script.value})
        self._clear_output()
        self.experiment = (task_id, experiment["id"])
        # The panel's own line follows its state; this line says what was done, once.
        return f"experiment {experiment['id']} ({self.script.value}) sent to analyzer {task_id}"

    def _clear_output(self) -> None:
        self.offsets, self.text, self.displays = (0, 0), "", []
        if self.output.outputs:
            self.output.outputs = ()

    def _interrupt(self) -> str | None:
        task_id = self.task_id
        if task_id is None:
            return "choose an analyzer"
        if self.experiment is None or self.experiment[0] != task_id:
            # An interrupt sent on a guess could land on whatever runs next: say why, send none.
            if self._kernel_busy:
                return (
                    f"analyzer {task_id}'s kernel is busy with code run from a notebook or "
                    "console, not from here: nothing was interrupted. Interrupt it there (■)."
                )
            return (
                f"no experiment started here runs on analyzer {task_id}: nothing was interrupted."
            )
        # Named, so that a second click after it ended interrupts nothing, not the next one.
        if not self._client.interrupt(task_id, self.experiment[1]):
            return (
                f"experiment {self.experiment[1]} is not running, or its interrupt was sent "
                "already: nothing more was sent."
            )
        return f"interrupt sent to analyzer {task_id} (experiment {self.experiment[1]})"


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
