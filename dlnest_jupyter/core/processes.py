"""Who a process is, across restarts of the service: pid plus its kernel start time.

A pid alone can be reused by an unrelated process after ours ended; the start time (clock ticks
since boot, /proc/<pid>/stat field 22) tells them apart. Linux only, like the GPU boxes we serve.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def start_time(pid: int) -> float | None:
    """The process's start time in clock ticks since boot, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    return float(fields[19])


def is_alive(pid: int, started: float | None) -> bool:
    """True when `pid` runs and is the process that started at `started` (not a zombie)."""
    now_started = start_time(pid)
    if now_started is None or (started is not None and now_started != started):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def kill_group(pgid: int, sig: int = signal.SIGTERM) -> bool:
    """Signal every process in the group; False when the group is already gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def group_members(pgid: int) -> list[int]:
    """Pids still in process group `pgid` (zombies excluded)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


_TASK_COMMANDS = (b"dlnest_jupyter.runtime.task_entry", b"dlnest_jupyter.runtime.zygote")


def find_task_leader(package_path: str) -> tuple[int, float | None] | None:
    """A training task's process for this package: a session leader of ours (a task's first
    process; DDP ranks and workers are its children) whose working folder is the package.

    How a scheduler that took over finds a task whose launch its dead predecessor never
    recorded. One writing task per package is allowed, so at most one matches.
    """
    wanted = os.path.realpath(package_path)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] == "Z" or int(fields[3]) != pid:  # a zombie, or not a session leader
                continue
            if os.readlink(entry / "cwd") != wanted:
                continue
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if any(name in command for name in _TASK_COMMANDS):
            return pid, float(fields[19])
    return None
