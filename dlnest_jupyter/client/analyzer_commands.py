"""The analyzer commands of `%dlnest`: analyze, runExp, experiment cells and attach.

An experiment's output is streamed by long polling (`wait_s`), so a quick experiment costs one
round trip and a long one shows its prints as they come; rich output (plots, tables) arrives as
display data and is shown in the calling cell.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from IPython.display import publish_display_data

from ..core.errors import DLNestError
from ..core.tasks import ExperimentState, TaskState
from ..service.task_kinds import runs_in_kernel
from .arguments import ArgumentParser, absolute_path, task_id_argument
from .client import Client

_EXPERIMENT_WAIT_S = 10.0  # one long poll; the server answers as soon as anything is new
_ANALYZER_POLL_S = 0.5


class AnalyzerCommands:
    """Mixed into DLNestMagics, which provides the client and task submission."""

    _last_analyzer_id: int | None = None  # what runExp / exp / attach with no id use

    @property
    def client(self) -> Client:
        raise NotImplementedError

    def _submit(self, body: dict[str, Any], options: argparse.Namespace) -> dict[str, Any]:
        raise NotImplementedError

    def _analyze(self, argv: list[str]) -> None:
        parser = ArgumentParser(prog="analyze")
        parser.add_argument("-r", required=True, help="save package")
        parser.add_argument("-c", type=int, default=None, help="checkpoint id")
        parser.add_argument("-s", help="scripts folder (default: the project's AnalyzeScripts)")
        parser.add_argument("-d", help="description")
        parser.add_argument("-m", type=int, help="estimated GPU memory in MiB")
        parser.add_argument("-CPU", action="store_true")
        parser.add_argument("-j", action="store_true", help="jump to the front of the queue")
        options = parser.parse_args(argv)
        body: dict[str, Any] = {"kind": "analyze", "record_path": absolute_path(options.r)}
        if options.c is not None:
            body["checkpoint_id"] = options.c
        if options.s:
            body["scripts_dir"] = absolute_path(options.s)
        task = self._submit(body, options)
        self._last_analyzer_id = task["id"]
        print(
            f"dlnest: analyzer {task['id']} loads its model in a kernel of its own; "
            f"then %dlnest runExp {task['id']} NAME runs {task['scripts_dir']}/NAME.py"
        )

    def _run_exp(self, argv: list[str]) -> None:
        if len(argv) == 2 and argv[0].isdigit():
            task_id, name = int(argv[0]), argv[1]
        elif len(argv) == 1:
            task_id, name = self._default_analyzer(), argv[0]
        else:
            raise DLNestError("runExp takes [ID] NAME, e.g. %dlnest runExp 3 show_accuracy")
        self._await_analyzer(task_id)
        self._follow(task_id, self.client.run_experiment(task_id, {"name": name}))

    def _exp(self, argv: list[str], code: str) -> None:
        task_id = task_id_argument(argv, "exp") if argv else self._default_analyzer()
        self._await_analyzer(task_id)
        self._follow(task_id, self.client.run_experiment(task_id, {"code": code}))

    def _attach(self, argv: list[str]) -> None:
        task_id = task_id_argument(argv, "attach") if argv else self._default_analyzer()
        self._await_analyzer(task_id)
        how = self.client.attach(task_id)
        lines = [
            f"analyzer {task_id}: kernel {how['kernel_id']}",
            f"  a console:  jupyter console --existing {how['connection_file']}",
        ]
        if self.client.in_process:
            lines.append("  (this kernel's own scheduler runs it: no Jupyter server lists it)")
        else:
            lines.append(
                f"  JupyterLab: Kernel > Change Kernel..., then the session {how['session_name']!r}"
            )
        lines.append(
            f"  `exit` in a console leaves the model loaded; %dlnest del {task_id} ends it"
        )
        print("\n".join(lines))

    def _default_analyzer(self) -> int:
        if self._last_analyzer_id is not None:
            return self._last_analyzer_id
        running = [
            t["id"]
            for t in self.client.tasks()
            if runs_in_kernel(t["kind"]) and t["state"] == TaskState.RUNNING
        ]
        if len(running) != 1:
            found = f"analyzers {running} are running" if running else "no analyzer is running"
            raise DLNestError(f"{found}; name one, e.g. %dlnest runExp ID NAME")
        return int(running[0])

    def _await_analyzer(self, task_id: int) -> None:
        """Wait while the analyzer is queued; one that loads takes experiments (they wait there)."""
        said = False
        while True:
            task = self.client.task(task_id)
            if not runs_in_kernel(task["kind"]) or task["state"] != TaskState.QUEUED:
                return  # the server says what is wrong, if anything
            if not said:
                print(f"dlnest: waiting for analyzer {task_id} (queued)")
                said = True
            time.sleep(_ANALYZER_POLL_S)

    def _follow(self, task_id: int, experiment: dict[str, Any]) -> None:
        """Stream an experiment's text and rich output into this cell until it ends."""
        offset = display_offset = 0
        interrupted = False
        if experiment["state"] == ExperimentState.QUEUED:
            print(f"dlnest: experiment {experiment['id']} runs once analyzer {task_id} has loaded")
        while True:
            try:
                experiment = self.client.experiment(
                    task_id, experiment["id"], offset, display_offset, _EXPERIMENT_WAIT_S
                )
            except KeyboardInterrupt:
                if interrupted:
                    raise
                interrupted = True
                self.client.interrupt(task_id)
                continue
            print(experiment["output"], end="", flush=True)
            for shown in experiment["displays"]:
                publish_display_data(shown["data"], shown.get("metadata") or {})  # type: ignore[no-untyped-call]
            offset, display_offset = experiment["offset"], experiment["display_offset"]
            if ExperimentState(experiment["state"]).terminal:
                break
        if experiment["error"]:
            print(experiment["error"])
        if experiment["state"] != ExperimentState.SUCCEEDED:
            print(
                f"dlnest: experiment {experiment['id']} {experiment['state']}; the model stays loaded"
            )
