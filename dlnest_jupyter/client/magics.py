"""`%dlnest`: DLNest's shell commands and flags inside any IPython kernel.

    %dlnest run -c ROOT [-f FREQ] [-d DESC] [-m MB] [-ns] [-sd] [-mc] [-DDP] [-CPU] [-j] [--dry-run]
    %dlnest continue -r PKG [-c ID] [-f FREQ] [--epochs N] [-d DESC] [-m MB] [-mc] [-DDP] [-CPU] [-j]
    %dlnest del ID | tasks | devices | changeDevices -d ID ... | settings [--max N] [--delay S] [--warmup-steps N] [--margin-pct P] [--margin-mb MB] [--shrink-given on|off] [--guard on|off] [--oom-retries N]
    %dlnest checkpoints [ID]    a task's package's checkpoints by branch (what continue -c takes)
    %dlnest forget ID           forget what earlier runs of a task's job used (learned memory)
    %dlnest new -d DIR [-t clean|digits] [-MNIST] [-p PLUGIN ...] | watch [ID] | log | clear | help
    %dlnest addP -d DIR -p PLUGIN ... [-F]    add plugins (LogInit, SimpleCMDVisualize,
                                AutoTensorboardScalar, MailsNote, or a .py) to a project's config
    %dlnest dashboard           the queue, GPUs, output, analyzers and metric curves, live

Sweeps (each trial an ordinary run, placed like any other):

    %dlnest sweep -c ROOT [-f FREQ] [-d DESC] [-m MB] [-CPU] [--grid KEY=V1,V2,...]...
        [--search KEY=uniform:LO:HI|loguniform:LO:HI|int:LO:HI|choice:A,B,C]... [--trials N]
        [--parallel N] [--metric KEY] [--direction maximize|minimize] [--objective best|last]
        [--prune none|median|hyperband] [--seed S]
    %dlnest sweeps [ID]         every sweep, or one sweep's trials best first
    %dlnest del sweep ID        stop a sweep's trials and queue no more

Analyzers (a kernel that keeps a trained model loaded):

    %dlnest analyze -r PKG [-c ID] [-s SCRIPTS_DIR] [-d DESC] [-m MB] [-CPU] [-j]
    %dlnest runExp [ID] NAME    run SCRIPTS_DIR/NAME.py's experience(self) in analyzer ID
    %%dlnest exp [ID]           run the cell's code in analyzer ID (`self`, `model`, `dataset`...)
    %dlnest attach [ID]         how to open analyzer ID's kernel from JupyterLab or a console
    %dlnest del ID              shut the analyzer down and free its device

`watch` with no id follows the task this kernel submitted last; the analyzer commands with no
id use the analyzer this kernel started last, else the only one running. Interrupting a
runExp or exp cell interrupts the experiment; the model stays loaded.

Every command's -h explains its flags. `t = %dlnest run ...` (continue, analyze) gives the
task (`t.id`); runExp and exp give the experiment (`.state`, `.result`). Errors are one line
(IPython's UsageError, which also stops a loop), never a traceback of ours.
"""

from __future__ import annotations

import argparse
import shlex
import time
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import DisplayHandle, Pretty, display

from ..core.dry_run import dry_run
from ..core.errors import DLNestError
from ..core.project_plugins import plugins_added_lines
from ..core.tasks import TaskState, runs_in_kernel
from .analyzer_commands import AnalyzerCommands
from .arguments import HelpShown, absolute_path, parse, plugin_entries
from .client import Client, scheduled_by
from .discovery import find_client
from .sweep_commands import SweepCommands
from .views import (
    Table,
    TaskRef,
    checkpoints_table,
    devices_setting_text,
    devices_table,
    devices_text,
    recent_tasks,
    reservation_sentence,
    show,
    tasks_table,
)

_WATCH_POLL_S = 0.5


@magics_class
class DLNestMagics(AnalyzerCommands, SweepCommands, Magics):
    def __init__(
        self,
        shell: Any,
        client_factory: Callable[[], Client] = find_client,
        dashboard_factory: Callable[[Client], Any] | None = None,
    ) -> None:
        """`dashboard_factory`: what `%dlnest dashboard` shows (the extension passes
        `Dashboard`; the dashboard layer sits above this one)."""
        super().__init__(shell)
        self._client_factory = client_factory
        self._dashboard_factory = dashboard_factory
        self._client: Client | None = None
        self._log_offset = 0
        self._last_task_id: int | None = None  # what `watch` with no id follows
        self._last_analyzer_id = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = self._client_factory()
            if self._client.in_process:
                print(
                    f"dlnest: no Jupyter server with dlnest found; using {self._client.description}"
                    f" ({scheduled_by(self._client.scheduler())})"
                )
        return self._client

    @line_cell_magic
    def dlnest(self, line: str, cell: str | None = None) -> Any:
        """DLNest commands; `%dlnest help` lists them, `%dlnest COMMAND -h` explains one."""
        try:
            argv = shlex.split(line)
            command = argv[0] if argv else "help"
            if cell is not None:
                if command != "exp":
                    raise DLNestError(
                        "the cell form is %%dlnest exp [ID]; other commands are %dlnest"
                    )
                # A cell's result is its output, shown above: an Out[] line of the
                # experiment record would only repeat it (`x = %%dlnest` cannot be written).
                self._exp(argv[1:], cell)
                return None
            handler = _COMMANDS.get(command)
            if handler is None:
                raise DLNestError(f"unknown command {command!r}; `%dlnest help` lists them")
            return handler(self, argv[1:])
        except HelpShown:
            return None
        except (DLNestError, ValueError) as error:  # ValueError: shlex's unclosed quote
            # One line, no traceback, and a loop of magics stops here.
            raise UsageError(f"dlnest: {error}") from None

    # -- commands ---------------------------------------------------------------------------
    def _run(self, argv: list[str]) -> TaskRef | None:
        options = parse("run", argv)
        freq = absolute_path(options.f) if options.f else None
        if options.dry_run:
            print("\n".join(dry_run(absolute_path(options.c), freq)))
            return None
        body: dict[str, Any] = {
            "kind": "train",
            "config_path": absolute_path(options.c),
            "no_save": options.ns,
            "use_description": options.sd,
            "multi_gpu": options.mc,
            "ddp": options.DDP,
        }
        if freq:
            body["freq_path"] = freq
        return self._submit(body, options)

    def _continue(self, argv: list[str]) -> TaskRef:
        options = parse("continue", argv)
        body: dict[str, Any] = {
            "kind": "continue",
            "record_path": absolute_path(options.r),
            "multi_gpu": options.mc,
            "ddp": options.DDP,
        }
        if options.c is not None:
            body["checkpoint_id"] = options.c
        if options.f:
            body["freq_path"] = absolute_path(options.f)
        if options.epochs is not None:
            body["epochs"] = options.epochs
        return self._submit(body, options)

    def _submit(self, body: dict[str, Any], options: argparse.Namespace) -> TaskRef:
        """Send `body` with the options every kind shares (-CPU, -j, -d, -m)."""
        body.update(cpu=options.CPU, jump=options.j)
        if options.d:
            body["description"] = options.d
        if options.m is not None:
            body["memory_mb"] = options.m
        submitted, warnings = self.client.submit_warned(body)
        task = TaskRef(submitted)
        for warning in warnings:
            print(f"dlnest: warning: {warning}")
        self._last_task_id = task.id
        parts = [f"dlnest: task {task.id} {task['state']}"]
        if task["devices"]:
            parts[0] += f" on {devices_text(task['devices'])}"
        if not options.CPU:
            parts.append(reservation_sentence(task, ddp=bool(body.get("ddp"))))
        print("; ".join([*parts, f"package {task['package_path']}"]))
        return task

    def _del(self, argv: list[str]) -> Any:
        words = parse("del", argv).words
        if words[0] == "sweep":
            return self._del_sweep(words[1:])
        if len(words) != 1 or not words[0].isdecimal():
            raise DLNestError("del takes a task's id (del 3), or a sweep's (del sweep 2)")
        task = TaskRef(self.client.delete(int(words[0])))
        print(f"dlnest: task {task.id} {task['state']}")
        return task

    def _checkpoints(self, argv: list[str]) -> None:
        task_id = parse("checkpoints", argv).id or self._last_task_id
        if task_id is None:
            raise DLNestError("checkpoints takes a task id, e.g. %dlnest checkpoints 3")
        show(checkpoints_table(self.client.checkpoints(task_id)))

    def _forget(self, argv: list[str]) -> None:
        task_id = parse("forget", argv).id
        runs = self.client.forget_memory(task_id)["forgotten_runs"]
        if not runs:
            print(f"dlnest: task {task_id}'s job has no memory to forget")
            return
        print(
            f"dlnest: forgot {runs} earlier run{'s' if runs != 1 else ''} of task {task_id}'s "
            "job: its next runs reserve the default and learn anew"
        )

    def _tasks(self, argv: list[str]) -> None:
        options = parse("tasks", argv)
        tasks = self.client.tasks()
        left_out = 0
        if not options.all:
            tasks, left_out = recent_tasks(tasks, options.n)
        show(tasks_table(tasks))
        if left_out:
            print(
                f"dlnest: {left_out:,} older ended task{'s' if left_out != 1 else ''} not "
                "shown (%dlnest tasks --all; the dashboard's Queue filters by state and text)"
            )

    def _devices(self, argv: list[str]) -> None:
        parse("devices", argv)
        show(devices_table(self.client.devices()))
        print(f"dlnest: {scheduled_by(self.client.scheduler())}")

    def _change_devices(self, argv: list[str]) -> None:
        devices = parse("changeDevices", argv).d
        settings = self.client.update_settings({"devices": devices})
        gpus = [d["id"] for d in self.client.devices() if d["kind"] == "gpu"]
        print(f"dlnest: {devices_setting_text(settings['devices'], gpus)}")

    def _settings(self, argv: list[str]) -> None:
        changes = {k: v for k, v in vars(parse("settings", argv)).items() if v is not None}
        for switch in ("shrink_given", "guard_memory"):
            if switch in changes:
                changes[switch] = changes[switch] == "on"
        settings = self.client.update_settings(changes) if changes else self.client.settings()
        show(Table(["setting", "value"], sorted(settings.items())))

    def _new(self, argv: list[str]) -> None:
        options = parse("new", argv)
        created = self.client.new_project(
            absolute_path(options.d),
            "digits" if options.MNIST else options.t,
            plugin_entries(options.p),
        )
        if created.get("plugins"):
            _say_plugins_added(created["plugins"])
        print(
            f"dlnest: new project in {created['path']}; train it with %dlnest run -c {created['path']}/root_config.json"
        )

    def _add_plugins(self, argv: list[str]) -> None:
        options = parse("addP", argv)
        reply = self.client.add_plugins(
            absolute_path(options.d), plugin_entries(options.p), options.F
        )
        _say_plugins_added(reply["plugins"])

    def _watch(self, argv: list[str]) -> None:
        task_id = parse("watch", argv).id
        if task_id is None:
            if self._last_task_id is None:
                raise DLNestError("watch takes a task id, e.g. %dlnest watch 3")
            task_id = self._last_task_id
            print(f"dlnest: watching task {task_id}")
        try:
            self._follow_task(task_id)
        except KeyboardInterrupt:
            print("dlnest: stopped watching (the task goes on)")

    def _follow_task(self, task_id: int) -> None:
        offset, waiting = 0, _WaitingLine(task_id)
        while True:
            # Read the state before the output, so output written just before an end is read.
            task = self.client.task(task_id)
            state = TaskState(task["state"])
            if state is TaskState.QUEUED:
                waiting.say(task)
                time.sleep(_WATCH_POLL_S)
                continue
            waiting.end(task)
            if runs_in_kernel(task["kind"]) and not state.terminal:
                print(
                    f"dlnest: task {task_id} is an analyzer: each experiment shows its output in "
                    f"the cell that runs it (%dlnest runExp {task_id} NAME, %%dlnest exp {task_id})"
                )
                return
            while True:
                chunk = self.client.output(task_id, offset)
                offset = chunk["offset"]
                print(chunk["text"], end="", flush=True)
                if not chunk["text"]:
                    break
            if state.terminal:
                print(
                    f"dlnest: task {task_id} {task['state']}"
                    + (f": {task['error']}" if task["error"] else "")
                )
                return
            time.sleep(_WATCH_POLL_S)

    def _log(self, argv: list[str]) -> None:
        parse("log", argv)
        chunk = self.client.log(self._log_offset)
        self._log_offset = chunk["offset"]
        print(chunk["text"] or "dlnest: nothing new", end="" if chunk["text"] else "\n")

    def _clear(self, argv: list[str]) -> None:
        parse("clear", argv)
        self._log_offset = self.client.clear_log()["offset"]
        print("dlnest: log cleared")

    def _dashboard(self, argv: list[str]) -> None:
        parse("dashboard", argv)
        if self._dashboard_factory is None:
            raise DLNestError("no dashboard here: load the magics with %load_ext dlnest_jupyter")
        show(self._dashboard_factory(self.client))

    def _help(self, argv: list[str]) -> None:
        print(__doc__)


def _say_plugins_added(reply: dict[str, Any]) -> None:
    for line in plugins_added_lines(reply):
        print(f"dlnest: {line}")


class _WaitingLine:
    """While a watched task is queued, one line saying why, replaced when the reason changes."""

    def __init__(self, task_id: int) -> None:
        self.task_id = task_id
        self.text: str | None = None
        self.handle: DisplayHandle | None = None

    def say(self, task: dict[str, Any]) -> None:
        reason = task.get("waiting_for")  # absent from an older server
        self._show(
            f"dlnest: task {self.task_id} queued" + (f", waiting for: {reason}" if reason else "")
        )

    def end(self, task: dict[str, Any]) -> None:
        if self.handle is not None:
            where = f" on {devices_text(task['devices'])}" if task["devices"] else ""
            self._show(f"dlnest: task {self.task_id} {task['state']}{where}")

    def _show(self, text: str) -> None:
        if text == self.text:
            return
        self.text = text
        if self.handle is None:
            self.handle = display(Pretty(text), display_id=True)  # type: ignore[no-untyped-call]
        else:
            self.handle.update(Pretty(text))  # type: ignore[no-untyped-call]


_COMMANDS: dict[str, Callable[[DLNestMagics, list[str]], Any]] = {
    "run": DLNestMagics._run,
    "continue": DLNestMagics._continue,
    "analyze": DLNestMagics._analyze,
    "load": DLNestMagics._analyze,
    "runExp": DLNestMagics._run_exp,
    "attach": DLNestMagics._attach,
    "del": DLNestMagics._del,
    "sweep": DLNestMagics._sweep,
    "sweeps": DLNestMagics._sweeps,
    "release": DLNestMagics._del,
    "checkpoints": DLNestMagics._checkpoints,
    "forget": DLNestMagics._forget,
    "tasks": DLNestMagics._tasks,
    "showTask": DLNestMagics._tasks,
    "devices": DLNestMagics._devices,
    "showDevices": DLNestMagics._devices,
    "changeDevices": DLNestMagics._change_devices,
    "settings": DLNestMagics._settings,
    "new": DLNestMagics._new,
    "addP": DLNestMagics._add_plugins,
    "watch": DLNestMagics._watch,
    "log": DLNestMagics._log,
    "showDL": DLNestMagics._log,
    "clear": DLNestMagics._clear,
    "dashboard": DLNestMagics._dashboard,
    "help": DLNestMagics._help,
    "-h": DLNestMagics._help,
    "--help": DLNestMagics._help,
}
