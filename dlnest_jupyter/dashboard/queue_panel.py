"""The Queue tab: filters, the actions on the selected task, and the tasks, one row each.

A row is a select button (its task id) beside the row's cells: a click on an HTML widget never
reaches Python, so a row is picked by its button, in JupyterLab and Notebook 7 alike; the
"task" dropdown stays as a second way. The actions sit above the rows, which scroll inside a
fixed height, so a long queue never pushes them out of view.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import traitlets

from ..core.tasks import TaskState
from . import queue_view as qv
from . import view_model as vm
from .panels import Submit
from .widgets_util import NewestUntilPicked, set_options, set_stoppable, set_value

LATEST = -1  # DLNest's "the latest checkpoint" (None would read as no choice in a Dropdown)
ROW_BUTTON_WIDTH = "48px"


def _growing() -> widgets.Layout:
    """Cells take the row's width beside the button, so that their tables' % columns line up
    with the header's (a Layout each: widgets must not share one)."""
    return widgets.Layout(flex="1 1 auto", width="100%", min_width="0")


class QueuePanel:
    def __init__(self, submit: Submit, client: Any) -> None:
        self.state = widgets.Dropdown(
            options=[vm.ALL_STATES, vm.NOT_ENDED, *TaskState], value=vm.ALL_STATES,
            description="state",
            layout=widgets.Layout(width="180px"),
        )  # fmt: skip
        self.text = widgets.Text(placeholder="filter: id, kind, description, path")
        self.selected = widgets.Dropdown(description="task", layout=widgets.Layout(width="280px"))
        self.checkpoint = widgets.Dropdown(
            description="checkpoint", layout=widgets.Layout(width="300px")
        )
        self.epochs = widgets.BoundedIntText(
            value=0, min=0, max=1_000_000, description="to epoch",
            tooltip="Continue trains until this epoch in all (0: as the config says; a run "
            "that finished its epochs then trains one more, and the reply warns of it)",
            layout=widgets.Layout(width="160px"),
        )  # fmt: skip
        self.stop = widgets.Button(description="Stop", button_style="danger", icon="stop")
        self.continue_ = widgets.Button(description="Continue", icon="play")
        self.analyze = widgets.Button(description="Analyze", icon="search")
        self.show_output = widgets.Button(description="Output", icon="file-text")
        self.count = widgets.HTML()
        self.header = widgets.HTML(qv.queue_header_html(), layout=_growing())
        self.rows = widgets.VBox(layout=widgets.Layout(max_height="420px", overflow="auto"))
        # Row widgets are made once and refilled: (select button, cells, the two in a row).
        self._pool: list[tuple[widgets.Button, widgets.HTML, widgets.HBox]] = []
        self.shown_rows: list[qv.QueueRow] = []  # what the rows show, in values, in order
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.state, self.text]),
                widgets.HBox([self.selected, self.checkpoint, self.epochs]),
                widgets.HBox([self.stop, self.continue_, self.analyze, self.show_output]),
                self.count,
                widgets.HBox(
                    [widgets.HTML(layout=widgets.Layout(width=ROW_BUTTON_WIDTH)), self.header]
                ),
                self.rows,
            ]
        )
        self._client, self._submit = client, submit
        self._confirming: int | None = None  # the running task a first Stop press asked about
        self._head: int | None = None  # the package's head when the checkpoints were read
        self._checkpoints_of: str | None = None  # the package they were read from
        # Until the user picks a task (a row's button, the picker), the newest is chosen, so
        # a run just submitted is the one the Output and Metrics tabs show.
        self._picker = NewestUntilPicked(self.selected)
        self.stop.on_click(lambda _: submit(self._stop))
        self.continue_.on_click(lambda _: submit(self._continue))
        self.analyze.on_click(lambda _: submit(self._analyze))

    @property
    def task_id(self) -> int | None:
        value = self.selected.value
        return value if isinstance(value, int) else None

    def update(self, tasks: Sequence[Mapping[str, Any]], now: float | None = None) -> None:
        now = time.time() if now is None else now
        shown, total = vm.visible(tasks, str(self.state.value), self.text.value)
        self._picker.set_options([(f"{t['id']} {t['kind']} {t['state']}", t["id"]) for t in shown])
        set_value(self.count, qv.queue_count_html(len(shown), total))
        self._fill_rows(qv.queue_rows(shown, now, self.task_id))
        task = next((t for t in tasks if t["id"] == self.task_id), None)
        if self._confirming is not None and self._confirming != self.task_id:
            self._confirm(None)  # another task chosen: a Stop press starts over
        set_stoppable(self.stop, task is not None and not TaskState(task["state"]).terminal)
        self.continue_.disabled = self.analyze.disabled = (
            task is None or task.get("package_path") is None
        )

    @property
    def row_ids(self) -> list[int]:
        """The task each shown row stands for, top to bottom."""
        return [row.id for row in self.shown_rows]

    def _fill_rows(self, rows: list[qv.QueueRow]) -> None:
        while len(self._pool) < len(rows):
            self._pool.append(self._new_row())
        self.shown_rows = rows
        for (button, cells, _), row in zip(self._pool, rows, strict=False):
            if button.description != str(row.id):
                button.description = str(row.id)
                button.tooltip = f"select task {row.id}"
            style = "info" if row.selected else ""
            if button.button_style != style:
                button.button_style = style
            set_value(cells, qv.queue_row_html(row))
        children = tuple(row for _, _, row in self._pool[: len(rows)])
        if self.rows.children != children:
            self.rows.children = children

    def _new_row(self) -> tuple[widgets.Button, widgets.HTML, widgets.HBox]:
        button = widgets.Button(layout=widgets.Layout(width=ROW_BUTTON_WIDTH, height="auto"))
        # The task the row showed when clicked: rows shift as tasks arrive before the pick runs.
        button.on_click(lambda b: self._submit(functools.partial(self._pick, b.description)))
        cells = widgets.HTML(layout=_growing())
        # Never shrunk to fit the list's height (it scrolls instead): 14 rows of a sweep's
        # trials squashed the ended ones to slivers, their text drawn over each other.
        return button, cells, widgets.HBox([button, cells], layout=widgets.Layout(flex="0 0 auto"))

    def _pick(self, task_id: str) -> str | None:
        with contextlib.suppress(traitlets.TraitError):  # filtered away since the click
            self.selected.value = int(task_id)
        return None

    def set_checkpoints(self, reply: Mapping[str, Any] | None, package: str | None = None) -> None:
        """The package's checkpoints to continue or analyse from. Another package's list
        starts at "latest": ids are small numbers in every package, so a choice kept from the
        last one would name some other checkpoint of this one."""
        self._head = (reply or {}).get("head")
        if package != self._checkpoints_of:
            self._checkpoints_of = package
            set_options(self.checkpoint, [])
        set_options(self.checkpoint, qv.checkpoint_options(reply, LATEST))

    def _confirm(self, task_id: int | None) -> None:
        self._confirming = task_id
        self.stop.description = "Stop" if task_id is None else f"Confirm: stop {task_id}"

    def _stop(self) -> str | None:
        task_id = self.task_id
        if task_id is None:
            return "select a task first"
        state = self._client.task(task_id)["state"]
        if state in (TaskState.STARTING, TaskState.RUNNING) and self._confirming != task_id:
            self._confirm(task_id)  # a running task loses its epoch in progress: ask once
            return (
                f'task {task_id} is {state}: press "Confirm: stop {task_id}" to end it'
                " (its checkpoints stay)"
            )
        self._confirm(None)
        task = self._client.delete(task_id)
        return f"task {task['id']} {task['state']}"

    def _continue(self) -> str | None:
        task, package, warned = self._from_package("continue")
        return f"task {task['id']} {task['state']}: continue {package}" + warned

    def _analyze(self) -> str | None:
        task, package, warned = self._from_package("analyze")
        return f"analyzer {task['id']} {task['state']}: it loads {package}" + warned

    def _from_package(self, kind: str) -> tuple[dict[str, Any], str, str]:
        """Submit a `kind` task on the selected task's package, at the chosen checkpoint,
        described by where it comes from (the queue would otherwise show a blank line);
        returns the task, the package and what the submission warned of, as "; warning: ..."."""
        package = self._package()
        body: dict[str, Any] = {"kind": kind, "record_path": package}
        chosen = self.checkpoint.value
        if chosen not in (None, LATEST):
            body["checkpoint_id"] = chosen
            where = f"checkpoint {chosen}"
        else:
            where = "its latest checkpoint" + (f" ({self._head})" if self._head is not None else "")
        body["description"] = f"{kind} of task {self.task_id} from {where}"
        if kind == "continue" and self.epochs.value > 0:  # --epochs N
            body["epochs"] = self.epochs.value
            body["description"] += f", to epoch {self.epochs.value}"
        task, warnings = self._client.submit_warned(body)
        return task, package, "".join(f"; warning: {warning}" for warning in warnings)

    def _package(self) -> str:
        task = self._client.task(self.task_id) if self.task_id is not None else None
        if task is None or not task.get("package_path"):
            raise ValueError("select a task with a save package first")
        return str(task["package_path"])
