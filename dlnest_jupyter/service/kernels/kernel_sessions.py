"""The Jupyter session that names an analyzer's kernel in JupyterLab's kernel picker.

Apart from host.py because only a server's host has a session manager (embedded mode has none),
and the label changes with what the picker shows, not with the analyzer's lifecycle.
"""

from __future__ import annotations

import logging
from typing import Any

from ...core.analyzer_protocol import session_name
from ...core.tasks import TaskRecord

log = logging.getLogger(__name__)


async def name_session(session_manager: Any, kernel_id: str, task: TaskRecord) -> str | None:
    """The id of a session named for `task` on its kernel; None when none could be made."""
    try:
        session = await session_manager.create_session(
            path=f"dlnest/analyzer-{task.id}",
            name=session_name(task.id, task.package_path),
            type="console",
            kernel_id=kernel_id,
        )
    except Exception:  # the analyzer works without a session; only the picker's label suffers
        log.exception("could not name a session for analyzer %s", task.id)
        return None
    session_id: str = session["id"]
    return session_id
