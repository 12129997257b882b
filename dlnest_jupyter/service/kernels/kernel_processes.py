"""An analyzer task's kernel under a Jupyter kernel manager: how it is started (kernelspec,
environment, working folder), its process (a new one means the kernel restarted), and whether
the manager still has it.

The environment is the whole contract with the kernel's startup line, which reads it to load the
package (runtime/analyzer_kernel.py, core/analyzer_protocol.py). Apart from host.py because it
changes with that contract and with the kernel manager's API, not with how the host follows an
analyzer's lifecycle.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from ...core.analyzer_protocol import CHECKPOINT_ENV, CPU_ENV, PACKAGE_ENV, SCRIPTS_ENV, TASK_ENV
from ...core.devices import CPU_ID
from ...core.tasks import TaskRecord

KERNEL_NAME = "dlnest-analyzer"


async def start_kernel(
    kernel_manager: Any, kernel_name: str, task: TaskRecord, device_ids: tuple[int, ...]
) -> str:
    """Start `task`'s kernel on `device_ids`; its startup line loads the package on its own."""
    kernel_id: str = await kernel_manager.start_kernel(
        kernel_name=kernel_name,
        env=_kernel_env(task, device_ids),
        **_kernel_cwd(kernel_manager, task),
    )
    return kernel_id


def _kernel_env(task: TaskRecord, device_ids: tuple[int, ...]) -> dict[str, str]:
    spec = task.spec
    gpu_ids = [d for d in device_ids if d != CPU_ID]
    return {  # `env` replaces the kernel's environment: start from ours
        **os.environ,
        PACKAGE_ENV: str(task.package_path),
        CHECKPOINT_ENV: str(spec["checkpoint_id"]),  # resolved at submit
        SCRIPTS_ENV: spec["scripts_dir"],
        CPU_ENV: "1" if not gpu_ids else "0",
        TASK_ENV: str(task.id),
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpu_ids)),
    }


def _kernel_cwd(kernel_manager: Any, task: TaskRecord) -> dict[str, str]:
    # The server's manager takes an API path relative to its root; a bare manager a folder.
    root = getattr(kernel_manager, "root_dir", None)
    package = Path(str(task.package_path))
    if root is None:
        return {"cwd": str(package)}
    try:
        return {"path": package.relative_to(Path(root).resolve()).as_posix()}
    except ValueError:
        return {"path": ""}


def kernel_pid(kernel_manager: Any, kernel_id: str) -> int | None:
    with contextlib.suppress(Exception):  # gone, or between two processes of a restart
        pid = kernel_manager.get_kernel(kernel_id).provisioner.pid
        return int(pid) if pid else None
    return None


def kernel_ids(kernel_manager: Any) -> list[str]:
    if kernel_manager is None:  # a private host before its first analyzer
        return []
    return list(kernel_manager.list_kernel_ids())
