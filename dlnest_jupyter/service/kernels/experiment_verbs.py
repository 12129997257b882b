"""The experiment verbs of the service: runExp, experiment cells, their output, interrupt, attach.

Checks happen here, before anything reaches a kernel: the task must be an analyzer that is
loading or loaded (an experiment sent while it loads waits for the model), a script name must be a plain name of a file in the analyzer's scripts folder that defines
`experience` (read, never imported: DLNest ran `../` names as any file on the host).
"""

from __future__ import annotations

import re
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from ...core.analyzer_protocol import experiment_code, session_name
from ...core.errors import AnalysisScriptError, NotAnAnalyzerError
from ...core.project import defines_name
from ...core.store import TaskStore
from ...core.tasks import AnalyzerState, TaskRecord, TaskState, runs_in_kernel
from .experiments import Experiment
from .host import AnalyzerHost

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*")


class ExperimentVerbs:
    def __init__(self, store: TaskStore, analyzers: AnalyzerHost | None) -> None:
        self.store, self.analyzers = store, analyzers

    def run_script(self, task_id: int, name: str) -> Experiment:
        """DLNest's runExp: load `<scripts dir>/NAME.py` afresh and call `experience(self)`."""
        host, task = self._loaded(task_id)
        script = script_path(Path(task.spec["scripts_dir"]), name)
        return host.run(task_id, script.stem, experiment_code(script.stem))

    def run_code(self, task_id: int, code: str) -> Experiment:
        """An experiment cell: `code` runs in the analyzer's namespace (`self`, `model`...)."""
        host, _ = self._loaded(task_id)
        return host.run(task_id, "cell", code)

    def get(self, task_id: int, experiment_id: int) -> Experiment:
        self._analyzer(task_id)
        assert self.analyzers is not None
        return self.analyzers.experiments.get(task_id, experiment_id)

    def change(self, experiment: Experiment, offset: int, display_offset: int) -> Future[None]:
        assert self.analyzers is not None
        return self.analyzers.change(experiment, offset, display_offset)

    def interrupt(self, task_id: int, experiment_id: int | None = None) -> bool:
        """Stop the running experiment (KeyboardInterrupt in the kernel); the model stays loaded.
        With `experiment_id`, only if that one is what runs (`AnalyzerHost.interrupt`)."""
        host, _ = self._loaded(task_id)
        return host.interrupt(task_id, experiment_id)  # an unknown experiment: a 404

    def attach(self, task_id: int) -> dict[str, Any]:
        """How to reach the analyzer's kernel from a notebook or a console."""
        host, task = self._loaded(task_id)
        return {
            "task_id": task_id,
            "kernel_id": task.kernel_id,
            "connection_file": host.connection_file(task_id),
            "session_name": session_name(task_id, task.package_path),
        }

    def scripts(self, task_id: int) -> list[str]:
        """The names runExp takes in this analyzer's scripts folder (those defining `experience`)."""
        folder = Path(self._analyzer(task_id).spec["scripts_dir"])
        names = []
        for path in sorted(folder.glob("*.py")) if folder.is_dir() else []:
            try:
                names.append(script_path(folder, path.stem).stem)
            except AnalysisScriptError:
                continue  # a helper module, or a script with a syntax error: not offered
        return names

    def forget(self, task_id: int) -> None:
        if self.analyzers is not None:
            self.analyzers.experiments.forget(task_id)

    def _analyzer(self, task_id: int) -> TaskRecord:
        task = self.store.get(task_id)
        if not runs_in_kernel(task.kind):
            raise NotAnAnalyzerError(f"task {task_id} is a {task.kind} task, not an analyzer")
        return task

    def _loaded(self, task_id: int) -> tuple[AnalyzerHost, TaskRecord]:
        task = self._analyzer(task_id)
        host = self.analyzers
        if task.state is not TaskState.RUNNING or host is None:
            raise NotAnAnalyzerError(f"analyzer {task_id} is {task.state.value}, not loaded")
        state = host.state(task_id)
        if state is None:  # several servers share the queue; the kernel is another's
            raise NotAnAnalyzerError(
                f"analyzer {task_id} is not running here: its kernel belongs to another Jupyter"
                " server on this queue (the one that schedules it, see GET scheduler); send its"
                " experiments there"
            )
        if state not in (AnalyzerState.LOADING, AnalyzerState.READY):
            raise NotAnAnalyzerError(f"analyzer {task_id} is {state}")
        return host, task


def script_path(scripts_dir: Path, name: str) -> Path:
    """`<scripts_dir>/<name>.py` for a plain name that defines `experience`, or a clear error."""
    stem = name[:-3] if name.endswith(".py") else name
    if not _PLAIN_NAME.fullmatch(stem):
        raise AnalysisScriptError(
            f"experiment names are plain script names in the scripts folder, not {name!r}",
            path=scripts_dir,
        )
    path = scripts_dir / f"{stem}.py"
    if not path.is_file():
        held = sorted(p.stem for p in scripts_dir.glob("*.py")) if scripts_dir.is_dir() else []
        listed = ", ".join(held[:12]) + (", ..." if len(held) > 12 else "")
        raise AnalysisScriptError(
            f"no script {stem}.py in the scripts folder "
            f"({'it holds: ' + listed if held else 'it holds no .py file'})",
            path=scripts_dir,
        )
    try:
        defines = defines_name(path, "experience")
    except SyntaxError as error:
        raise AnalysisScriptError(
            f"syntax error on line {error.lineno}: {error.msg}", path=path
        ) from error
    if not defines:
        raise AnalysisScriptError("defines no function experience(self)", path=path)
    return path
