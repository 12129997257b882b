"""What runs inside an analyzer kernel: load a save package once, then run experiments against it.

The `dlnest-analyzer` kernelspec runs `bootstrap()` as its one exec line; the service passes the
package, checkpoint, scripts folder and device through the environment. A startup error does not
stop an IPython kernel, so `bootstrap()` never raises: it records `__dlnest_status__`, which the
service reads once the kernel is ready, and fails the task with the traceback if loading failed.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from typing import Any

from ..core.analyzer_protocol import (
    CHECKPOINT_ENV,
    CPU_ENV,
    PACKAGE_ENV,
    RUN_NAME,
    SCRIPTS_ENV,
    STATUS_NAME,
    TASK_ENV,
)


def bootstrap() -> None:
    """Load the package named by the environment into the kernel's namespace; never raises."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return
    namespace: dict[str, Any] = shell.user_ns
    package = os.environ.get(PACKAGE_ENV)
    if not package:  # started from JupyterLab's launcher: a plain kernel, said once
        namespace[STATUS_NAME] = {
            "ok": False,
            "error": "no package: start analyzers with %dlnest analyze",
        }
        print(
            "This is a DLNest analyzer kernel with no package; start one with %dlnest analyze -r PKG"
        )
        return
    try:
        from .analysis import load_for_analysis

        checkpoint = os.environ.get(CHECKPOINT_ENV, "")
        context = load_for_analysis(
            package,
            checkpoint_id=int(checkpoint) if checkpoint else None,
            cpu=os.environ.get(CPU_ENV) == "1",
        )
    except BaseException:  # everything, SystemExit from user code included, goes to the status
        namespace[STATUS_NAME] = {"ok": False, "error": traceback.format_exc()}
        return
    scripts_dir = Path(
        os.environ.get(SCRIPTS_ENV) or Path(package).parent.parent / "AnalyzeScripts"
    )
    namespace.update(
        self=context,
        args=context.args,
        model=context.model,
        runner=context.runner,
        dataset=context.dataset,
        log=context.log,
        scripts_dir=scripts_dir,
    )
    namespace[RUN_NAME] = lambda name: _run_experiment(context, scripts_dir, name)
    namespace[STATUS_NAME] = {"ok": True, "checkpoint_id": context.checkpoint_id}
    _guard_exit(shell, os.environ.get(TASK_ENV, "?"))


def _run_experiment(context: Any, scripts_dir: Path, name: str) -> Any:
    from .analysis import load_experience

    experience = load_experience(scripts_dir / f"{name}.py")  # afresh: edits take effect
    return experience(context)


def _guard_exit(shell: Any, task_id: str) -> None:
    """`exit` in an attached console would shut the kernel down and lose the model: keep it.

    ipykernel's exiter defaults to keep_kernel=False, and `jupyter console --existing` then sends
    a shutdown; the server restarts the kernel empty. Ours leaves the console and keeps the kernel.
    """
    from IPython.core.autocall import ZMQExitAutocall

    class KeepKernelExit(ZMQExitAutocall):
        def __call__(self, keep_kernel: bool = True) -> None:
            print(
                f"Leaving; the analyzer (task {task_id}) keeps its model loaded. "
                f"End it with %dlnest del {task_id}."
            )
            super().__call__(keep_kernel=True)  # type: ignore[no-untyped-call]

    shell.exiter = KeepKernelExit(shell)  # type: ignore[no-untyped-call]
    shell.user_ns["exit"] = shell.user_ns["quit"] = shell.exiter
