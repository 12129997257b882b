"""`python -m dlnest_jupyter.cluster.watcher RAYLET_PID TASK_PGID`: kill a task's process group
when its node's raylet dies, and end quietly when the task ends first.

Started by the node agent for each task, it forks at once and its parent exits, so it is no
worker's child: Ray kills a dead worker's direct children only, and this must outlive them all.
Without it, a task whose node left the cluster would keep a card busy that Ray counts as free.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from ..core import processes

POLL_INTERVAL_S = 1.0


def main(raylet_pid: int, pgid: int) -> None:
    if os.fork():
        os._exit(0)
    raylet_started = processes.start_time(raylet_pid)
    task_started = processes.start_time(pgid)
    while processes.is_alive(pgid, task_started):
        if not processes.is_alive(raylet_pid, raylet_started):
            processes.kill_group(pgid, signal.SIGKILL)
            return
        time.sleep(POLL_INTERVAL_S)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
