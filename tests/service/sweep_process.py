"""A service in its own process, for the takeover test: start a pruning search, print its id once
a trial has ended and others run, then wait to be killed mid-sweep."""

from __future__ import annotations

import json
import sys
import time

from dlnest_jupyter.core.devices import FakeSource
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.service.launch.executor import LocalExecutor
from dlnest_jupyter.service.service import DLNestService


def main(database: str, config: str) -> None:
    service = DLNestService(TaskStore(database), FakeSource((16384, 16384)), LocalExecutor())
    sweep, _ = service.sweeps.submit(
        config,
        search={"quality": {"distribution": "uniform", "low": 0.0, "high": 1.0}},
        trials=6,
        parallel=2,
        metric="score",
        prune="median",
        seed=1,
        memory_mb=4000,
    )
    service.start()
    while True:
        states = [t["state"] for t in service.sweeps.get(sweep["id"])["trials"]]
        if states.count("running") >= 1 and len(states) - states.count("running") >= 1:
            break
        time.sleep(0.05)
    print(json.dumps(sweep["id"]), flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main(*sys.argv[1:3])
