"""The contract between the service and an analyzer kernel: environment names and the code sent.

The service starts the kernel with these variables; `runtime/analyzer_kernel.py` reads them at
bootstrap and defines the two names below in the kernel's namespace.
"""

from __future__ import annotations

import json

PACKAGE_ENV = "DLNEST_ANALYZER_PACKAGE"
CHECKPOINT_ENV = "DLNEST_ANALYZER_CHECKPOINT"  # empty: the head of the current branch
SCRIPTS_ENV = "DLNEST_ANALYZER_SCRIPTS"
CPU_ENV = "DLNEST_ANALYZER_CPU"
TASK_ENV = "DLNEST_TASK_ID"

STATUS_NAME = "__dlnest_status__"  # {"ok": true, ...} or {"ok": false, "error": traceback}
RUN_NAME = "__dlnest_run_experiment__"
STATUS_EXPRESSION = f"__import__('json').dumps({STATUS_NAME})"


def experiment_code(name: str) -> str:
    """The code the service executes for `runExp NAME` (the name is checked before this)."""
    return f"{RUN_NAME}({json.dumps(name)})"
