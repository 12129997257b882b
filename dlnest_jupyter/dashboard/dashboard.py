"""`Dashboard()`: the queue, GPUs, output, analyzers, metric curves, settings and sweeps of a
scheduler.

Built and displayed once on the main thread; then one daemon thread refreshes it about once a
second, only by setting traits (never printing, never `with output:`: ipywidgets #2358, #4020),
reading through the same client as the magics. Buttons queue their action for that thread, so it
is the only writer; it wakes at once for them. A refresh asks only for what changed: tasks since
the last version seen, output and metric rows after the offsets already read.

When the server goes away the dashboard says "disconnected" and retries, less often each time,
and recovers by itself; it stops when closed, and dies with its kernel.
"""

from __future__ import annotations

import functools
import html
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import ipywidgets as widgets

from ..client.client import Client, ClientError
from ..core.errors import DLNestError
from ..core.tasks import ExperimentState
from . import view_model as vm
from .analyzer_panel import AnalyzerPanel
from .metrics_panel import MetricsPanel
from .panels import MAX_OUTPUT_CHARS, Action, DevicesPanel, OutputPanel, SettingsPanel
from .queue_panel import QueuePanel
from .sweeps_panel import SweepsPanel
from .widgets_util import set_value

T = TypeVar("T")
REFRESH_S = 1.0
MAX_BACKOFF_S = 30.0
SCRIPTS_EVERY_S = 5.0  # the script picker re-reads the scripts folder while in view
# How long the message line keeps what an action said: left there, "analyzer 27 running: it
# loads ..." still read so 17 minutes later, under every tab.
MESSAGE_KEEP_S = 60.0
# Sweeps came last: notebooks pick a tab by its index (Metrics is 4), so a new tab goes at the end.
TAB_TITLES = ("Queue", "GPUs", "Output", "Analyzers", "Metrics", "Settings", "Sweeps")


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
        self.output_panel = OutputPanel()
        self.analyzer_panel = AnalyzerPanel(self._submit, client)
        self.metrics_panel = MetricsPanel(self._submit)
        self.settings_panel = SettingsPanel(self._submit, client)
        self.sweeps_panel = SweepsPanel(self._submit, client, self._show_curves)
        self.tabs = widgets.Tab(
            children=[
                self.queue_panel.widget,
                self.devices_panel.widget,
                self.output_panel.widget,
                self.analyzer_panel.widget,
                self.metrics_panel.widget,
                self.settings_panel.widget,
                self.sweeps_panel.widget,
            ]
        )
        self.tabs.titles = TAB_TITLES
        self.message = widgets.HTML()
        super().__init__([self.status, self.tabs, self.message])
        self._output_of: int | None = None
        self._output_offset = 0
        self._output_text = ""
        self._checkpoints_key: tuple[Any, ...] | None = None
        self._followed: int | None = None  # the queue selection the other tabs last followed
        self.scripts_every_s = SCRIPTS_EVERY_S
        self._scripts_read_at = float("-inf")
        self._refreshed = False
        self._said_at = 0.0  # when the message line was last written (time.monotonic)
        self._thread: threading.Thread | None = None
        self.failures = 0
        self.refresh()  # the first picture comes with the cell, not a second later
        if start:
            self._thread = threading.Thread(target=self._run, name="dlnest-dashboard", daemon=True)
            self._thread.start()
        self.queue_panel.show_output.on_click(lambda _: self._submit(self._show_output))
        # A tab coming into view is filled at once, not at the next tick.
        self.tabs.observe(lambda _: self._wake.set(), names="selected_index")

    # -- one refresh ------------------------------------------------------------------------
    def refresh(self) -> None:
        """Run queued actions, then read what changed and show it. Never raises."""
        try:
            if self.message.value and time.monotonic() - self._said_at > MESSAGE_KEEP_S:
                self.message.value = ""
            self._run_actions()
            with self.hold_sync():
                self._refresh()
            self.failures = 0
            said = f"{html.escape(self.client.description)} · {time.strftime('%H:%M:%S')}"
            set_value(self.status, self._status("#198754", said))
        except (ClientError, OSError) as error:
            self.failures += 1
            said = (
                f"disconnected: {html.escape(str(error))}; retrying in {self.backoff_s():.0f} s"
                f" (at {time.strftime('%H:%M:%S')})"
            )
            set_value(self.status, self._status("#dc3545", said))
        except Exception as error:  # a bug of ours must not kill the refresher thread
            self._say(f"<span style='color:#dc3545'>dashboard: {html.escape(repr(error))}</span>")

    def _status(self, colour: str, said: str) -> str:
        # Written again at every refresh, so its "stopped" twin shows only when the refreshes
        # stopped: the kernel restarted or died, and nothing of it can say so any more.
        stale_after_s = 2 * self.backoff_s() + 10
        return vm.status_html(colour, said, stale_after_s, time.strftime("%H:%M:%S"))

    def showing(self, tab: str) -> bool:
        """True when `tab` is in view (or on the first refresh, which fills every tab)."""
        return not self._refreshed or self.tabs.selected_index == TAB_TITLES.index(tab)

    def _refresh(self) -> None:
        # The queue's changes come every time (one small request: the running tasks and what
        # changed); a tab's own data only while it is in view, and at once when it comes into view.
        self.book.merge(self.client.tasks_since(self.book.version))
        tasks = self.book.newest_first()
        self.queue_panel.update(tasks)
        self.output_panel.update(tasks)
        self.metrics_panel.update_runs(tasks)
        self._follow_selection()
        self._refresh_checkpoints()
        if self.showing("GPUs"):
            self.devices_panel.update(self.client.devices())
        if self.showing("Output"):
            self._refresh_output()
        self._refresh_scripts(self.analyzer_panel.update(tasks))
        self._refresh_experiment()
        if self.showing("Metrics"):
            self._refresh_metrics()
        if self.showing("Settings"):
            self.settings_panel.show_scheduler(self.client.scheduler())
        if self.showing("Sweeps"):
            self.sweeps_panel.update(self.client.sweeps())
        self._refreshed = True
        if not self.settings_panel.loaded:  # the user's own form after that
            self.settings_panel.update(self.client.settings())

    def _follow_selection(self) -> None:
        """A task chosen in the queue becomes the Output tab's task and the Metrics tab's run;
        each tab's own picker can then choose another until the queue's choice changes."""
        selected = self.queue_panel.task_id
        if selected == self._followed:
            return
        self._followed = selected
        self.output_panel.follow(selected)
        self.metrics_panel.follow(selected)

    def _refresh_checkpoints(self) -> None:
        """Follow the selected task's package while the queue is in view: a run deletes old
        checkpoints and adds new ones, and so does a continue of it (another task)."""
        task_id = self.queue_panel.task_id
        task = self.book.tasks.get(task_id) if task_id is not None else None
        package = task.get("package_path") if task else None
        key = (
            task_id,
            tuple(
                (t["id"], t["state"], (t.get("progress") or {}).get("epoch"))
                for t in self.book.tasks.values()
                if package and t.get("package_path") == package
            ),
        )
        if key == self._checkpoints_key:
            return
        chosen_another = self._checkpoints_key is None or self._checkpoints_key[0] != task_id
        if not chosen_another and not self.showing("Queue"):
            return  # read when the queue is in view again
        self._checkpoints_key = key
        reply = None
        if task_id is not None and package:
            reply = self._ask(
                functools.partial(self.client.checkpoints, task_id), f"task {task_id}"
            )
        self.queue_panel.set_checkpoints(reply, package)

    def _refresh_scripts(self, analyzer_changed: bool) -> None:
        """The script picker follows the scripts folder while in view (a script saved after
        the analyzer loaded appears), and the attach hint once the kernel can be reached."""
        task_id = self.analyzer_panel.task_id
        due = time.monotonic() - self._scripts_read_at >= self.scripts_every_s
        if task_id is None or not (analyzer_changed or (due and self.showing("Analyzers"))):
            return
        self._scripts_read_at = time.monotonic()
        how = self._attach(task_id) if not self.analyzer_panel.attach.value else None
        scripts = self._ask(functools.partial(self.client.scripts, task_id), f"analyzer {task_id}")
        self.analyzer_panel.set_scripts(scripts or [], how)

    def _refresh_output(self) -> None:
        task_id = self.output_panel.task_id
        if task_id != self._output_of:
            self._output_of, self._output_offset, self._output_text = task_id, 0, ""
        if task_id is None:
            set_value(self.output_panel.text, vm.output_html("(select a task in the queue)"))
            return
        while True:  # catch up in parts; each part is only the bytes after the last offset
            chunk = self._ask(
                functools.partial(self.client.output, task_id, self._output_offset),
                f"task {task_id}",
            )
            if chunk is None:
                return
            self._output_offset = chunk["offset"]
            self._output_text = (self._output_text + chunk["text"])[-MAX_OUTPUT_CHARS:]
            if not chunk["text"]:
                break
        set_value(self.output_panel.text, vm.output_html(f"task {task_id}\n{self._output_text}"))

    def _refresh_experiment(self) -> None:
        shown = self.analyzer_panel.experiment
        if shown is None:
            return
        task_id, experiment_id = shown
        offset, display_offset = self.analyzer_panel.offsets
        experiment = self._ask(
            functools.partial(
                self.client.experiment, task_id, experiment_id, offset, display_offset, 0
            ),
            f"analyzer {task_id}",
        )
        if experiment is None:  # its analyzer is gone: nothing more will come
            self.analyzer_panel.experiment = None
            return
        ended = ExperimentState(experiment["state"]).terminal
        moved = experiment["state"] != self.analyzer_panel.shown_state  # queued -> running
        news = experiment["output"] or experiment["displays"] or ended or moved
        # `follow` drops the reply when the user chose another analyzer meanwhile.
        if news and self.analyzer_panel.follow(task_id, experiment) and ended:
            self.analyzer_panel.experiment = None

    def _refresh_metrics(self) -> None:
        panel = self.metrics_panel
        for task_id in panel.shown_runs():
            offset = panel.offsets.get(task_id, 0)
            rows = self._ask(
                functools.partial(self.client.metrics, task_id, offset), f"task {task_id}"
            )
            if rows is None:
                continue
            panel.add_rows(task_id, rows)
            if panel.needs_branches(task_id):  # rows of a second branch: where does it fork?
                book = self._ask(
                    functools.partial(self.client.checkpoints, task_id), f"task {task_id}"
                )
                panel.set_branches(task_id, (book or {}).get("branches"))
        step_run = panel.step_run()
        if step_run is not None:  # asked for only while shown by step
            offset = panel.step_offsets.get(step_run, 0)
            steps = self._ask(
                functools.partial(self.client.steps, step_run, offset), f"task {step_run}"
            )
            if steps is not None:
                panel.add_step_rows(step_run, steps)
        panel.draw()

    def _ask(self, read: Callable[[], T], what: str) -> T | None:
        """One task's own data. A refusal (its package deleted, the task gone: a 4xx) is said
        in the message line and the refresh goes on: the server answered, so it is not lost,
        and one task's trouble must not stop every tab from updating."""
        try:
            return read()
        except ClientError as error:
            if error.status is None or error.status >= 500:
                raise
            self._say(
                f"<span style='color:#dc3545'>{html.escape(what)}: {html.escape(str(error))}</span>"
            )
            return None

    def _submit(self, action: Action) -> None:
        """Hand `action` to the refresher thread, the only writer, and wake it for it now."""
        self._actions.put(action)
        self._wake.set()

    def _show_output(self) -> None:
        """The Output tab, on the queue's task even if its own picker had chosen another."""
        self.output_panel.follow(self.queue_panel.task_id)
        self.tabs.selected_index = TAB_TITLES.index("Output")

    def _show_curves(self, task_ids: Sequence[int], metric: str | None) -> str:
        """The Metrics tab, overlaying these tasks' curves of `metric` (a sweep's trials)."""
        missed = self.metrics_panel.show(task_ids, metric)
        self.tabs.selected_index = TAB_TITLES.index("Metrics")
        shown = [t for t in task_ids if t not in missed]
        said = f"Metrics: the curves of tasks {', '.join(map(str, shown))}" if shown else ""
        if metric and shown:
            said += f" ({metric})"
        if missed:
            listed = ", ".join(map(str, missed))
            said += f"{'; ' if said else ''}not offered in the Metrics tab: tasks {listed}"
        return said

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
                if said is None:  # nothing to tell (a row picked): the last message stays
                    continue
                said = html.escape(said)
            self._say(said)

    def _say(self, said_html: str) -> None:
        """The message line: what the last action did or why it was refused, for a while."""
        set_value(self.message, said_html)
        self._said_at = time.monotonic()

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

    @property
    def refreshing(self) -> bool:
        """True while the refresher thread runs (a dashboard made with start=False has none)."""
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """Stop refreshing, then close the widgets."""
        self.status.value = vm.status_html("#6c757d", "stopped (closed)", None, "")
        self._stop.set()
        self._wake.set()
        super().close()
