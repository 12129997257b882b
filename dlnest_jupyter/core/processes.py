"""Who a process is, across restarts of the service: pid plus its kernel start time.

A pid alone can be reused by an unrelated process after ours ended; the start time (clock ticks
since boot, /proc/<pid>/stat field 22) tells them apart. Linux only, like the GPU boxes we serve.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path


def start_time(pid: int) -> float | None:
    """The process's start time in clock ticks since boot, or None if there is no such process."""
    fields = _stat_fields(Path(f"/proc/{pid}"))
    return float(fields[19]) if fields is not None else None


def is_alive(pid: int, started: float | None) -> bool:
    """True when `pid` runs and is the process that started at `started` (not a zombie)."""
    fields = _stat_fields(Path(f"/proc/{pid}"))
    if fields is None or (started is not None and float(fields[19]) != started):
        return False
    return fields[0] != "Z"


def kill_group(pgid: int, sig: int = signal.SIGTERM) -> bool:
    """Signal every process in the group; False when the group is already gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def group_members(pgid: int) -> list[int]:
    """Pids still in process group `pgid` (zombies excluded)."""
    return [
        int(entry.name)
        for entry, fields in _processes()
        if int(fields[2]) == pgid and fields[0] != "Z"
    ]


_TASK_COMMANDS = (b"dlnest_jupyter.runtime.task_entry", b"dlnest_jupyter.runtime.zygote")


def find_task_leader(package_path: str) -> tuple[int, float | None] | None:
    """A training task's process for this package: a session leader of ours (a task's first
    process; DDP ranks and workers are its children) whose working folder is the package.

    How a scheduler that took over finds a task whose launch its dead predecessor never
    recorded. One writing task per package is allowed, so at most one matches.
    """
    wanted = os.path.realpath(package_path)
    for entry, fields in _processes():
        pid = int(entry.name)
        if fields[0] == "Z" or int(fields[3]) != pid:  # a zombie, or not a session leader
            continue
        try:
            if os.readlink(entry / "cwd") != wanted:
                continue
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if any(name in command for name in _TASK_COMMANDS):
            return pid, float(fields[19])
    return None


def _processes() -> Iterator[tuple[Path, list[str]]]:
    """Every process's /proc folder and its stat fields (from field 3, the state, on)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(entry)) is not None:
            yield entry, fields


def _stat_fields(entry: Path) -> list[str] | None:
    """/proc/<pid>/stat after the command name, split: [0] state, [2] pgid, [3] session,
    [19] start time. None when the process is gone."""
    try:
        stat = (entry / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its last ")".
    return stat[stat.rindex(")") + 2 :].split()
