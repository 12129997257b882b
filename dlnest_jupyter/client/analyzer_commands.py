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
from ..core.tasks import ExperimentState, TaskState, runs_in_kernel
from .arguments import absolute_path, parse
from .client import Client
from .views import ExperimentRef, TaskRef

_EXPERIMENT_WAIT_S = 10.0  # one long poll; the server answers as soon as anything is new
_ANALYZER_POLL_S = 0.5


class AnalyzerCommands:
    """Mixed into DLNestMagics, which provides the client and task submission."""

    _last_analyzer_id: int | None = None  # what runExp / exp / attach with no id use

    @property
    def client(self) -> Client:
        raise NotImplementedError

    def _submit(self, body: dict[str, Any], options: argparse.Namespace) -> TaskRef:
        raise NotImplementedError

    def _analyze(self, argv: list[str]) -> TaskRef:
        options = parse("analyze", argv)
        body: dict[str, Any] = {
            "kind": "analyze",
            "record_path": absolute_path(options.r),
        }
        if options.c is not None:
            body["checkpoint_id"] = options.c
        if options.s:
            body["scripts_dir"] = absolute_path(options.s)
        task = self._submit(body, options)
        self._last_analyzer_id = task.id
        print(
            f"dlnest: analyzer {task.id} loads its model in a kernel of its own; "
            f"then %dlnest runExp {task.id} NAME runs {task['scripts_dir']}/NAME.py"
        )
        return task

    def _run_exp(self, argv: list[str]) -> ExperimentRef:
        words = parse("runExp", argv).words
        if len(words) == 2 and words[0].isdigit():
            task_id, name = int(words[0]), words[1]
        elif len(words) == 1:
            task_id, name = self._default_analyzer(), words[0]
        else:
            raise DLNestError("runExp takes [ID] NAME, e.g. %dlnest runExp 3 show_accuracy")
        self._await_analyzer(task_id)
        return self._follow(task_id, self.client.run_experiment(task_id, {"name": name}))

    def _exp(self, argv: list[str], code: str) -> ExperimentRef:
        task_id = parse("exp", argv).id
        task_id = self._default_analyzer() if task_id is None else task_id
        self._await_analyzer(task_id)
        return self._follow(task_id, self.client.run_experiment(task_id, {"code": code}))

    def _attach(self, argv: list[str]) -> None:
        task_id = parse("attach", argv).id
        task_id = self._default_analyzer() if task_id is None else task_id
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

    def _follow(self, task_id: int, experiment: dict[str, Any]) -> ExperimentRef:
        """Stream an experiment's text and rich output into this cell until it ends; one that
        failed or was interrupted is an error (after its traceback), so a loop stops there."""
        offset = display_offset = 0
        interrupted = False
        if experiment["state"] == ExperimentState.QUEUED:
            print(f"dlnest: experiment {experiment['id']} runs once analyzer {task_id} has loaded")
        while True:
            try:  # ■ (SIGINT) lands anywhere in here: while waiting, or while printing
                experiment = self.client.experiment(
                    task_id, experiment["id"], offset, display_offset, _EXPERIMENT_WAIT_S
                )
                print(experiment["output"], end="", flush=True)
                for shown in experiment["displays"]:
                    publish_display_data(shown["data"], shown.get("metadata") or {})  # type: ignore[no-untyped-call]
                offset, display_offset = experiment["offset"], experiment["display_offset"]
                if ExperimentState(experiment["state"]).terminal:
                    break
            except KeyboardInterrupt:
                if interrupted:  # ■ again: stop waiting for the interrupted one to say so
                    raise _stopped_following(task_id, experiment["id"]) from None
                interrupted = True
                try:
                    self.client.interrupt(task_id, experiment["id"])
                except KeyboardInterrupt:
                    raise _stopped_following(task_id, experiment["id"]) from None
        if experiment["error"]:
            print(experiment["error"])
        if experiment["state"] != ExperimentState.SUCCEEDED:
            raise DLNestError(
                f"experiment {experiment['id']} {experiment['state']}; the model stays loaded"
            )
        ended = {k: v for k, v in experiment.items() if k not in ("output", "displays")}
        return ExperimentRef(ended, task_id=task_id)


def _stopped_following(task_id: int, experiment_id: int) -> DLNestError:
    """A second ■ in an experiment's cell: one line, not the socket read it broke into."""
    return DLNestError(
        f"stopped following experiment {experiment_id} of analyzer {task_id} (interrupted "
        "twice); the model stays loaded"
    )
