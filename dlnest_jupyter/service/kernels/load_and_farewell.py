"""What the analyzer host runs in a kernel besides experiments: the question whose answer says
whether the package loaded, and the farewell a deleted analyzer prints before its kernel goes.

Apart from host.py because this is code text sent to a kernel and wording shown to users: it
changes with the kernel's side (runtime/analyzer_kernel.py, core/analyzer_protocol.py) and with
what users are told, not with how the host follows its kernels.
"""

from __future__ import annotations

import ast
import contextlib
import json
import shlex
from typing import Any

from ...core.tasks import TaskRecord

LOAD_TIMEOUT_S = 900.0  # import torch, build the dataset, load the checkpoint
FAREWELL_TIMEOUT_S = 2.0  # a kernel busy with an experiment is not waited for longer


async def user_expression(client: Any, expression: str) -> dict[str, Any]:
    """Evaluate `expression` (a JSON string) in the kernel, without touching its history."""
    reply = await client.execute_interactive(
        "", user_expressions={"value": expression}, store_history=False, timeout=LOAD_TIMEOUT_S,
        output_hook=lambda message: None,
    )  # fmt: skip
    value = reply["content"]["user_expressions"]["value"]
    if value.get("status") != "ok":
        return {"ok": False, "error": f"{value.get('ename')}: {value.get('evalue')}"}
    parsed: dict[str, Any] = json.loads(ast.literal_eval(value["data"]["text/plain"]))
    return parsed


def farewell_text(task: TaskRecord) -> str:
    """A deleted analyzer's last words in its kernel: what ended, and how to load it again."""
    again = f"%dlnest analyze -r {shlex.quote(str(task.package_path))}"
    checkpoint = task.spec.get("checkpoint_id")
    if checkpoint is not None:
        again += f" -c {checkpoint}"
    return (
        f"dlnest: analyzer {task.id} ended (deleted): its model is unloaded and this kernel "
        f"shuts down. To load it again: {again}"
    )


async def say_farewell(client: Any, farewell: str) -> None:
    """Print `farewell` in the kernel, for a notebook or console attached to it."""
    with contextlib.suppress(Exception):  # best effort: the kernel may be busy or gone
        await client.execute_interactive(
            f"import sys; print({farewell!r}, file=sys.stderr, flush=True)",
            store_history=False,
            timeout=FAREWELL_TIMEOUT_S,
            output_hook=lambda message: None,
        )
