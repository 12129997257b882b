"""`%dlnest`: DLNest's shell commands and flags inside any IPython kernel.

    %dlnest run -c ROOT [-f FREQ] [-d DESC] [-m MB] [-ns] [-sd] [-mc] [-DDP] [-CPU] [-j]
    %dlnest continue -r PKG [-c ID] [-d DESC] [-m MB] [-mc] [-DDP] [-CPU] [-j]
    %dlnest del ID | tasks | devices | changeDevices -d ID ... | settings [--max N] [--delay S]
    %dlnest new -d DIR [-t clean|digits] [-MNIST] | watch [ID] | log | clear | help
    %dlnest dashboard           the queue, GPUs, output, analyzers and metric curves, live

Analyzers (a kernel that keeps a trained model loaded):

    %dlnest analyze -r PKG [-c ID] [-s SCRIPTS_DIR] [-d DESC] [-m MB] [-CPU] [-j]
    %dlnest runExp [ID] NAME    run SCRIPTS_DIR/NAME.py's experience(self) in analyzer ID
    %%dlnest exp [ID]           run the cell's code in analyzer ID (`self`, `model`, `dataset`...)
    %dlnest attach [ID]         how to open analyzer ID's kernel from JupyterLab or a console
    %dlnest del ID              shut the analyzer down and free its device

`watch` with no id follows the task this kernel submitted last; the analyzer commands with no
id use the analyzer this kernel started last, else the only one running. Interrupting a
runExp or exp cell interrupts the experiment; the model stays loaded.

Errors are one readable line, never a traceback of ours.
"""

from __future__ import annotations

import argparse
import html
import shlex
import time
from collections.abc import Callable, Sequence
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import display

from ..core.devices import CPU_ID
from ..core.errors import DLNestError
from ..core.tasks import TaskState
from ..core.templates import DEFAULT_TEMPLATE, TEMPLATE_NAMES
from ..service.task_kinds import runs_in_kernel
from .analyzer_commands import AnalyzerCommands
from .arguments import ArgumentParser, absolute_path, placement_parser, task_id_argument
from .client import Client, scheduled_by
from .discovery import find_client

_WATCH_POLL_S = 0.5


class Table:
    """Rows shown as an HTML table in notebooks and as aligned text elsewhere."""

    def __init__(self, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.columns, self.rows = (
            list(columns),
            [["" if v is None else str(v) for v in row] for row in rows],
        )

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
            for row in self.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        widths = [
            max(len(c), *(len(r[i]) for r in self.rows)) if self.rows else len(c)
            for i, c in enumerate(self.columns)
        ]
        lines = ["  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True))]
        lines += [
            "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in self.rows
        ]
        return "\n".join(lines) if self.rows else lines[0] + "\n(none)"


@magics_class
class DLNestMagics(AnalyzerCommands, Magics):
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
    def dlnest(self, line: str, cell: str | None = None) -> None:
        """DLNest commands; `%dlnest help` lists them."""
        try:
            argv = shlex.split(line)
            command = argv[0] if argv else "help"
            if cell is not None:
                if command != "exp":
                    raise DLNestError(
                        "the cell form is %%dlnest exp [ID]; other commands are %dlnest"
                    )
                self._exp(argv[1:], cell)
                return
            handler = _COMMANDS.get(command)
            if handler is None:
                raise DLNestError(f"unknown command {command!r}; `%dlnest help` lists them")
            handler(self, argv[1:])
        except DLNestError as error:
            print(f"dlnest: error: {error}")
        except KeyboardInterrupt:
            print("dlnest: stopped watching (the task goes on)")

    # -- commands ---------------------------------------------------------------------------
    def _run(self, argv: list[str]) -> None:
        parser = placement_parser("run")
        parser.add_argument("-c", required=True, help="root config")
        parser.add_argument("-f", help="freq config")
        parser.add_argument("-ns", action="store_true")
        parser.add_argument("-sd", action="store_true")
        options = parser.parse_args(argv)
        body = {
            "kind": "train",
            "config_path": absolute_path(options.c),
            "no_save": options.ns,
            "use_description": options.sd,
            "multi_gpu": options.mc,
            "ddp": options.DDP,
        }
        if options.f:
            body["freq_path"] = absolute_path(options.f)
        self._submit(body, options)

    def _continue(self, argv: list[str]) -> None:
        parser = placement_parser("continue")
        parser.add_argument("-r", required=True, help="save package")
        parser.add_argument("-c", type=int, default=None, help="checkpoint id")
        options = parser.parse_args(argv)
        body: dict[str, Any] = {
            "kind": "continue",
            "record_path": absolute_path(options.r),
            "multi_gpu": options.mc,
            "ddp": options.DDP,
        }
        if options.c is not None:
            body["checkpoint_id"] = options.c
        self._submit(body, options)

    def _submit(self, body: dict[str, Any], options: argparse.Namespace) -> dict[str, Any]:
        """Send `body` with the options every kind shares (-CPU, -j, -d, -m)."""
        body.update(cpu=options.CPU, jump=options.j)
        if options.d:
            body["description"] = options.d
        if options.m is not None:
            body["memory_mb"] = options.m
        task = self.client.submit(body)
        self._last_task_id = task["id"]
        where = f" on {_devices(task['devices'])}" if task["devices"] else ""
        print(f"dlnest: task {task['id']} {task['state']}{where}; package {task['package_path']}")
        return task

    def _del(self, argv: list[str]) -> None:
        task = self.client.delete(task_id_argument(argv, "del"))
        print(f"dlnest: task {task['id']} {task['state']}")

    def _tasks(self, argv: list[str]) -> None:
        rows = [
            (
                t["id"],
                t["kind"],
                t["state"],
                _devices(t["devices"]),
                _progress(t),
                t["description"],
                t["error"] or "",
            )
            for t in self.client.tasks()
        ]
        _show(Table(["id", "kind", "state", "devices", "progress", "description", "error"], rows))

    def _devices(self, argv: list[str]) -> None:
        devices = self.client.devices()
        rows: list[tuple[Any, ...]] = [
            (
                d["id"], d["name"], "yes" if d["enabled"] else "no",
                f"{d['memory_used_mb']} / {d['memory_reserved_mb']} / {d['memory_total_mb']}" if d["kind"] == "gpu" else "",
                ", ".join(map(str, d["task_ids"])),
                _by_other_users(d),
            )
            for d in devices
        ]  # fmt: skip
        headers = ["id", "name", "enabled", "MiB used / reserved / total", "tasks"]
        if any(row[-1] for row in rows):  # a box ledger shows other users' reservations
            headers.append("reserved by other users")
        rows = [row[: len(headers)] for row in rows]
        if any(d.get("node") for d in devices):  # a cluster: each card's machine, first
            headers.insert(0, "node")
            rows = [
                (d.get("node") or "this server", *row) for d, row in zip(devices, rows, strict=True)
            ]
        _show(Table(headers, rows))
        print(f"dlnest: {scheduled_by(self.client.scheduler())}")

    def _change_devices(self, argv: list[str]) -> None:
        parser = ArgumentParser(prog="changeDevices")
        parser.add_argument(
            "-d", type=int, nargs="+", required=True, help="device ids (-1 is the CPU)"
        )
        settings = self.client.update_settings({"devices": parser.parse_args(argv).d})
        print(f"dlnest: devices now {settings['devices']}")

    def _settings(self, argv: list[str]) -> None:
        parser = ArgumentParser(prog="settings")
        parser.add_argument("--max", type=int, dest="max_tasks_per_device")
        parser.add_argument("--delay", type=float, dest="launch_delay_s")
        changes = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
        settings = self.client.update_settings(changes) if changes else self.client.settings()
        _show(Table(["setting", "value"], sorted(settings.items())))

    def _new(self, argv: list[str]) -> None:
        parser = ArgumentParser(prog="new")
        parser.add_argument("-d", required=True)
        parser.add_argument("-t", choices=TEMPLATE_NAMES, default=DEFAULT_TEMPLATE)
        parser.add_argument("-MNIST", action="store_true")
        options = parser.parse_args(argv)
        created = self.client.new_project(
            absolute_path(options.d), "digits" if options.MNIST else options.t
        )
        print(
            f"dlnest: new project in {created['path']}; train it with %dlnest run -c {created['path']}/root_config.json"
        )

    def _watch(self, argv: list[str]) -> None:
        if not argv and self._last_task_id is not None:
            task_id = self._last_task_id
            print(f"dlnest: watching task {task_id}")
        else:
            task_id = task_id_argument(argv, "watch")
        offset = 0
        while True:
            # Read the state before the output, so output written just before an end is read.
            task = self.client.task(task_id)
            ended = TaskState(task["state"]).terminal
            if runs_in_kernel(task["kind"]) and not ended:
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
            if ended:
                print(
                    f"dlnest: task {task_id} {task['state']}"
                    + (f": {task['error']}" if task["error"] else "")
                )
                return
            time.sleep(_WATCH_POLL_S)

    def _log(self, argv: list[str]) -> None:
        chunk = self.client.log(self._log_offset)
        self._log_offset = chunk["offset"]
        print(chunk["text"] or "dlnest: nothing new", end="" if chunk["text"] else "\n")

    def _clear(self, argv: list[str]) -> None:
        self._log_offset = self.client.clear_log()["offset"]
        print("dlnest: log cleared")

    def _dashboard(self, argv: list[str]) -> None:
        if argv:
            raise DLNestError("dashboard takes no arguments")
        if self._dashboard_factory is None:
            raise DLNestError("no dashboard here: load the magics with %load_ext dlnest_jupyter")
        _show(self._dashboard_factory(self.client))

    def _help(self, argv: list[str]) -> None:
        print(__doc__)


def _show(shown: Any) -> None:
    display(shown)  # type: ignore[no-untyped-call]


def _by_other_users(device: dict[str, Any]) -> str:
    mb = device.get("memory_reserved_by_others_mb") or 0
    return f"{mb} MiB ({', '.join(device.get('other_users') or [])})" if mb else ""


def _devices(ids: Sequence[int]) -> str:
    return ", ".join("CPU" if d == CPU_ID else f"GPU {d}" for d in ids)


def _progress(task: dict[str, Any]) -> str:
    progress = task.get("progress") or {}
    if progress.get("epoch") is None:
        return ""
    rate = progress.get("steps_per_s")
    return f"epoch {progress['epoch']} step {progress.get('iter')}" + (
        f" ({rate:.0f}/s)" if rate else ""
    )


_COMMANDS: dict[str, Callable[[DLNestMagics, list[str]], None]] = {
    "run": DLNestMagics._run,
    "continue": DLNestMagics._continue,
    "analyze": DLNestMagics._analyze,
    "load": DLNestMagics._analyze,
    "runExp": DLNestMagics._run_exp,
    "attach": DLNestMagics._attach,
    "del": DLNestMagics._del,
    "release": DLNestMagics._del,
    "tasks": DLNestMagics._tasks,
    "showTask": DLNestMagics._tasks,
    "devices": DLNestMagics._devices,
    "showDevices": DLNestMagics._devices,
    "changeDevices": DLNestMagics._change_devices,
    "settings": DLNestMagics._settings,
    "new": DLNestMagics._new,
    "watch": DLNestMagics._watch,
    "log": DLNestMagics._log,
    "showDL": DLNestMagics._log,
    "clear": DLNestMagics._clear,
    "dashboard": DLNestMagics._dashboard,
    "help": DLNestMagics._help,
}
