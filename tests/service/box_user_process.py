"""Another user's scheduler on the same box, for the box ledger test: run as that user.

    python box_user_process.py DATABASE BOX_FOLDER CONFIG COUNT MEMORY_MB

Prints "ready", waits for a line on stdin, submits COUNT tasks of MEMORY_MB on the one fake
card (each a real `sleep`, as this user), prints "submitted", and schedules until killed.
"""

from __future__ import annotations

import sys
import time

from dlnest_jupyter.core.box_ledger import BoxLedger
from dlnest_jupyter.core.devices import FakeSource
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.core.tasks import TaskKind
from dlnest_jupyter.service.service import DLNestService
from tests.recording_executor import SleepingExecutor


def main(database: str, box: str, config: str, count: str, memory_mb: str) -> None:
    store = TaskStore(database)
    service = DLNestService(
        store, FakeSource((16384,)), SleepingExecutor(), 0.05, box=BoxLedger(box, database)
    )
    service.start()
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(int(count)):
        service.submit(TaskKind.TRAIN, config_path=config, memory_mb=int(memory_mb))
    print("submitted", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main(*sys.argv[1:6])
