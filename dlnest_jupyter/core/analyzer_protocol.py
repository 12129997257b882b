"""The contract between the service and an analyzer kernel: environment names and the code sent.

The service starts the kernel with these variables; `runtime/analyzer_kernel.py` reads them at
bootstrap and defines the two names below in the kernel's namespace.
"""

from __future__ import annotations

import json
from pathlib import PurePath

PACKAGE_ENV = "DLNEST_ANALYZER_PACKAGE"
CHECKPOINT_ENV = "DLNEST_ANALYZER_CHECKPOINT"  # the id, resolved at submission
SCRIPTS_ENV = "DLNEST_ANALYZER_SCRIPTS"
CPU_ENV = "DLNEST_ANALYZER_CPU"
TASK_ENV = "DLNEST_TASK_ID"

STATUS_NAME = "__dlnest_status__"  # {"ok": true, ...} or {"ok": false, "error": traceback}
RUN_NAME = "__dlnest_run_experiment__"
STATUS_EXPRESSION = f"__import__('json').dumps({STATUS_NAME})"


def experiment_code(name: str) -> str:
    """The code the service executes for `runExp NAME` (the name is checked before this)."""
    return f"{RUN_NAME}({json.dumps(name)})"


def session_name(task_id: int, package_path: str | None) -> str:
    """What JupyterLab's kernel picker shows for an analyzer: "DLNest analyzer 7 <package>"."""
    return f"DLNest analyzer {task_id} {PurePath(str(package_path)).name}"
