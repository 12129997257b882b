"""What runs inside an analyzer kernel: load a save package once, then run experiments against it.

The `dlnest-analyzer` kernelspec runs `bootstrap()` as its one exec line; the service passes the
package, checkpoint, scripts folder and device through the environment. A startup error does not
stop an IPython kernel, so `bootstrap()` never raises: it records `__dlnest_status__`, which the
service reads once the kernel is ready, and fails the task with the traceback if loading failed.
"""

from __future__ import annotations

import functools
import json
import os
import traceback
import urllib.request
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
    session_name,
)
from ..core.server_env import TOKEN_ENV, URL_ENV


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
        _say_once_when_bare(shell)
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
    namespace[RUN_NAME] = functools.partial(_run_experiment, context, scripts_dir)
    namespace[STATUS_NAME] = {"ok": True, "checkpoint_id": context.checkpoint_id}
    _guard_exit(shell, os.environ.get(TASK_ENV, "?"))
    _report_memory(context, os.environ.get(TASK_ENV))


def _report_memory(context: Any, task_id: str | None) -> None:
    """What the model and the experiments hold on the card, for the scheduler's ledger
    (service/kernels/host.py reads it into the task's progress)."""
    if not task_id:
        return
    from .devices import DevicePlan
    from .gpu_memory import gpu_memory, report_in_background

    plan = context.session.devices
    if not plan.own_cards and os.environ.get(CPU_ENV) == "0":
        # Placed on a card, with no CUDA here: a pretend card (DLNEST_FAKE_GPUS), whose
        # memory is the config's fake_gpu_memory_mb, as a training run's on one.
        plan = DevicePlan(plan.env, plan.device, (), own_cards={0: None})
    memory = gpu_memory(context.session, plan)
    report_in_background(memory, context.package.analyzer_memory_path(task_id))


def _run_experiment(context: Any, scripts_dir: Path, name: str) -> Any:
    # IPython leaves frames with this local out of tracebacks: an experiment's error or
    # interrupt shows the user's frames, not ours.
    __tracebackhide__ = True
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


def _say_once_when_bare(shell: Any) -> None:
    """Picked from JupyterLab's kernel list, this kernel holds no model: the first cell says so,
    with the running analyzers to switch to (output at startup would reach no cell)."""

    def say(*_: Any) -> None:
        shell.events.unregister("pre_run_cell", say)
        running = _running_analyzers()
        lines = [
            "This DLNest analyzer kernel has no model loaded (`model`, `self` and `dataset` are"
            " not defined here): it was started bare from the kernel list.",
            "To load a save package: %dlnest analyze -r PKG in any notebook, then"
            " Kernel > Change Kernel... and pick its session, 'DLNest analyzer <id> <package>'.",
        ]
        if running:
            lines.append("Running analyzers to switch to: " + ", ".join(map(repr, running)))
        print("\n".join(lines))

    shell.events.register("pre_run_cell", say)


def _running_analyzers() -> list[str]:
    """The session names of the loaded analyzers, asked of the server that started this kernel."""
    url, token = os.environ.get(URL_ENV), os.environ.get(TOKEN_ENV, "")
    if not url:
        return []
    request = urllib.request.Request(
        url.rstrip("/") + "/dlnest/api/tasks", headers={"Authorization": f"token {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            tasks = json.load(reply)["tasks"]
    except (OSError, ValueError, KeyError):
        return []  # no server to ask: the hint above is still true
    return [
        session_name(t["id"], t["package_path"])
        for t in tasks
        if t.get("kernel_id") and t.get("state") == "running"
    ]
