"""`Dashboard()`: the queue, GPUs, output, analyzers, metric curves and settings of a scheduler.

Built and displayed once on the main thread; then one daemon thread refreshes it about once a
second, only by setting traits (never printing, never `with output:`: ipywidgets #2358, #4020),
reading through the same client as the magics. Buttons queue their action for that thread, so it
is the only writer; it wakes at once for them. A refresh asks only for what changed: tasks since
the last version seen, output and metric rows after the offsets already read.

When the server goes away the dashboard says "disconnected" and retries, less often each time,
and recovers by itself; it stops when closed, and dies with its kernel.
"""

from __future__ import annotations

import html
import queue
import threading
import time
from typing import Any

import ipywidgets as widgets

from ..client.client import Client, ClientError
from ..core.errors import DLNestError
from ..core.tasks import ExperimentState
from . import view_model as vm
from .metrics_panel import MetricsPanel
from .panels import MAX_OUTPUT_CHARS, Action, AnalyzerPanel, DevicesPanel, QueuePanel, SettingsPanel
from .widgets_util import set_value

REFRESH_S = 1.0
MAX_BACKOFF_S = 30.0
TAB_TITLES = ("Queue", "GPUs", "Output", "Analyzers", "Metrics", "Settings")


class Dashboard(widgets.VBox):  # type: ignore[misc]  # ipywidgets has no type hints
    def __init__(
        self, client: Client | None = None, refresh_s: float = REFRESH_S, start: bool = True
    ) -> None:
        """`client`: where to read from (default: as the magics find it); `start`: refresh on a
        thread of its own (tests pass False and call `refresh()`)."""
        self._stop = threading.Event()  # first: close() may run even if building fails
        self._wake = threading.Event()
        if client is None:
            from ..client.discovery import find_client

            client = find_client()
        self.client, self.refresh_s = client, refresh_s
        self._actions: queue.Queue[Action] = queue.Queue()
        self.book = vm.TaskBook()
        self.status = widgets.HTML()
        self.queue_panel = QueuePanel(self._submit, client)
        self.devices_panel = DevicesPanel(self._submit, client)
        self.output = widgets.HTML(vm.output_html(""))
        self.analyzer_panel = AnalyzerPanel(self._submit, client)
        self.metrics_panel = MetricsPanel()
        self.settings_panel = SettingsPanel(self._submit, client)
        self.tabs = widgets.Tab(
            children=[
                self.queue_panel.widget,
                self.devices_panel.widget,
                self.output,
                self.analyzer_panel.widget,
                self.metrics_panel.widget,
                self.settings_panel.widget,
            ]
        )
        self.tabs.titles = TAB_TITLES
        self.message = widgets.HTML()
        super().__init__([self.status, self.tabs, self.message])
        self._output_of: int | None = None
        self._output_offset = 0
        self._output_text = ""
        self._checkpoints_of: int | None = None
        self._refreshed = False
        self._thread: threading.Thread | None = None
        self.failures = 0
        self.refresh()  # the first picture comes with the cell, not a second later
        if start:
            self._thread = threading.Thread(target=self._run, name="dlnest-dashboard", daemon=True)
            self._thread.start()
        self.queue_panel.show_output.on_click(lambda _: self._show_tab("Output"))
        # A tab coming into view is filled at once, not at the next tick.
        self.tabs.observe(lambda _: self._wake.set(), names="selected_index")

    # -- one refresh ------------------------------------------------------------------------
    def refresh(self) -> None:
        """Run queued actions, then read what changed and show it. Never raises."""
        try:
            self._run_actions()
            with self.hold_sync():
                self._refresh()
            self.failures = 0
            set_value(
                self.status,
                f"<span style='color:#198754'>●</span> {html.escape(self.client.description)}"
                f" · {time.strftime('%H:%M:%S')}",
            )
        except (ClientError, OSError) as error:
            self.failures += 1
            set_value(
                self.status,
                f"<span style='color:#dc3545'>●</span> disconnected: {html.escape(str(error))}"
                f"; retrying in {self.backoff_s():.0f} s",
            )
        except Exception as error:  # a bug of ours must not kill the refresher thread
            set_value(
                self.message,
                f"<span style='color:#dc3545'>dashboard: {html.escape(repr(error))}</span>",
            )

    def showing(self, tab: str) -> bool:
        """True when `tab` is in view (or on the first refresh, which fills every tab)."""
        return not self._refreshed or self.tabs.selected_index == TAB_TITLES.index(tab)

    def _refresh(self) -> None:
        # The queue's changes come every time (one small request: the running tasks and what
        # changed); a tab's own data only while it is in view, and at once when it comes into view.
        self.book.merge(self.client.tasks_since(self.book.version))
        tasks = self.book.newest_first()
        self.queue_panel.update(tasks)
        self._refresh_checkpoints()
        if self.showing("GPUs"):
            self.devices_panel.update(self.client.devices())
        if self.showing("Output"):
            self._refresh_output()
        if self.analyzer_panel.update(tasks) and self.analyzer_panel.task_id is not None:
            task_id = self.analyzer_panel.task_id
            self.analyzer_panel.set_scripts(self.client.scripts(task_id), self._attach(task_id))
        self._refresh_experiment()
        self.metrics_panel.update_runs(tasks)
        if self.showing("Metrics"):
            for task_id in self.metrics_panel.selected[:8]:
                offset = self.metrics_panel.offsets.get(task_id, 0)
                self.metrics_panel.add_rows(task_id, self.client.metrics(task_id, offset))
            self.metrics_panel.draw()
        if self.showing("Settings"):
            self.settings_panel.show_scheduler(self.client.scheduler())
        self._refreshed = True
        if not self.settings_panel.loaded:  # the user's own form after that
            self.settings_panel.update(self.client.settings())

    def _refresh_checkpoints(self) -> None:
        task_id = self.queue_panel.task_id
        if task_id == self._checkpoints_of:
            return
        self._checkpoints_of = task_id
        task = self.book.tasks.get(task_id) if task_id is not None else None
        reply = None
        if task_id is not None and task and task.get("package_path"):
            reply = self.client.checkpoints(task_id)
        self.queue_panel.set_checkpoints(reply)

    def _refresh_output(self) -> None:
        task_id = self.queue_panel.task_id
        if task_id != self._output_of:
            self._output_of, self._output_offset, self._output_text = task_id, 0, ""
        if task_id is None:
            set_value(self.output, vm.output_html("(select a task in the queue)"))
            return
        while True:  # catch up in parts; each part is only the bytes after the last offset
            chunk = self.client.output(task_id, self._output_offset)
            self._output_offset = chunk["offset"]
            self._output_text = (self._output_text + chunk["text"])[-MAX_OUTPUT_CHARS:]
            if not chunk["text"]:
                break
        set_value(self.output, vm.output_html(f"task {task_id}\n{self._output_text}"))

    def _refresh_experiment(self) -> None:
        shown = self.analyzer_panel.experiment
        if shown is None:
            return
        task_id, experiment_id = shown
        offset, display_offset = self.analyzer_panel.offsets
        experiment = self.client.experiment(task_id, experiment_id, offset, display_offset, 0)
        ended = ExperimentState(experiment["state"]).terminal
        if experiment["output"] or experiment["displays"] or ended:
            self.analyzer_panel.follow(experiment)
        if ended:
            self.analyzer_panel.experiment = None

    def _submit(self, action: Action) -> None:
        """Hand `action` to the refresher thread, the only writer, and wake it for it now."""
        self._actions.put(action)
        self._wake.set()

    def _show_tab(self, title: str) -> None:
        def show() -> None:
            self.tabs.selected_index = TAB_TITLES.index(title)

        self._submit(show)

    def _attach(self, task_id: int) -> dict[str, Any] | None:
        try:
            return self.client.attach(task_id)
        except ClientError:
            return None  # still loading, or gone: nothing to attach to yet

    def _run_actions(self) -> None:
        while True:
            try:
                action = self._actions.get_nowait()
            except queue.Empty:
                return
            try:
                said = action()
            except (DLNestError, ValueError) as error:  # a refused request: say why, go on
                said = f"<span style='color:#dc3545'>{html.escape(str(error))}</span>"
            else:
                said = html.escape(said or "")
            set_value(self.message, said)

    # -- the refresher ----------------------------------------------------------------------
    def backoff_s(self) -> float:
        return (
            min(MAX_BACKOFF_S, self.refresh_s * 2 ** min(self.failures, 5))
            if self.failures
            else self.refresh_s
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.backoff_s())
            self._wake.clear()
            if not self._stop.is_set():
                self.refresh()

    def close(self) -> None:
        """Stop refreshing, then close the widgets."""
        self._stop.set()
        self._wake.set()
        super().close()
