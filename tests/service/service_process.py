"""A service in its own process, for the restart test: queue tasks, start two, then wait to be killed."""

from __future__ import annotations

import json
import sys
import time

from dlnest_jupyter.core.devices import FakeSource
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.core.tasks import TaskKind
from dlnest_jupyter.service.launch.executor import LocalExecutor
from dlnest_jupyter.service.service import DLNestService


def main(database: str, slow_config: str, fast_config: str) -> None:
    service = DLNestService(TaskStore(database), FakeSource((16384, 16384)), LocalExecutor())
    service.update_settings({"max_tasks_per_device": 1})
    ids = [
        service.submit(TaskKind.TRAIN, config_path=slow_config, memory_mb=4000).id for _ in range(2)
    ]
    ids += [
        service.submit(TaskKind.TRAIN, config_path=fast_config, memory_mb=4000).id for _ in range(6)
    ]
    running = [t.id for t in service.store.running()]
    assert running == ids[:2], running  # each submission started what fit at once
    print(json.dumps(ids), flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main(*sys.argv[1:4])
