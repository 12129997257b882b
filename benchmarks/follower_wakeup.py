"""Two services on one queue (JupyterLab opened twice): how soon a submission to the one that
does not schedule starts, and what the waiting costs.

- start latency of a task submitted to the follower (placed and launched by the leader, which
  notices the follower's write by polling the store's `PRAGMA data_version` every 50 ms),
  against a task submitted to the leader itself (placed in the submission's own pass); goal:
  under 100 ms. Submissions come at random moments, as users' do, not just after a poll;
- the CPU both services' scheduler threads burn while the queue is idle (their polls and 1 s
  passes), in ms per second; goal: under 10 ms/s for the two.

    .venv/bin/python benchmarks/follower_wakeup.py [--tasks N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from dlnest_jupyter.core.devices import FakeSource
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.core.tasks import TaskKind, TaskRecord, TaskState
from dlnest_jupyter.service.launch.executor import Launch
from dlnest_jupyter.service.service import DLNestService


class NoProcess:
    """Launches nothing: the benchmark measures the scheduler, not process start-up."""

    def start(self, task: TaskRecord, device_ids: tuple[int, ...]) -> Launch:
        return Launch(os.getpid(), None)

    def exit_code(self, task: TaskRecord) -> int | None:
        return None

    def end_reason(self, task: TaskRecord, code: int) -> str:
        return ""

    def stop(self, task: TaskRecord) -> None:
        pass

    def close(self) -> None:
        pass


def started_after(service: DLNestService, tick: bool) -> float:
    """Seconds from a submission to `service` to its task running (whoever launches it)."""
    start = time.perf_counter()
    task = service.store.submit(TaskKind.TRAIN, {"cpu": True})
    if tick:  # what a submission verb does: a pass of its own (which only the leader places in)
        service.tick()
    while service.store.get(task.id).state is not TaskState.RUNNING:
        time.sleep(0.0005)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=60)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "dlnest.sqlite"
        leader, follower = (
            DLNestService(TaskStore(database), FakeSource(()), NoProcess())  # type: ignore[arg-type]
            for _ in range(2)
        )
        leader.tick()
        for service in (leader, follower):
            service.start()
        leader_s, follower_s = [], []
        for _ in range(options.tasks):  # alternating: the machine's drift hits both alike
            time.sleep(random.uniform(0, 0.05))
            leader_s.append(started_after(leader, tick=True))
            time.sleep(random.uniform(0, 0.05))
            follower_s.append(started_after(follower, tick=True))
        assert leader.queries.scheduler()["this_service"]["leading"]
        for task in leader.store.holding():  # an idle queue: nothing running, nothing queued
            leader.store.finish(task.id, TaskState.SUCCEEDED, exit_code=0)
        time.sleep(1)
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        time.sleep(5)
        idle_ms_per_s = (
            1000 * (time.process_time() - cpu_start) / (time.perf_counter() - wall_start)
        )
        for service in (leader, follower):
            service.stop()
    value, baseline = statistics.median(follower_s), statistics.median(leader_s)
    print(
        json.dumps(
            {
                "benchmark": "follower_wakeup",
                "value": round(value * 1000, 2),
                "baseline": round(baseline * 1000, 2),
                "ratio": round(value / baseline, 1),
                "unit": "ms from submission to running (follower; baseline: leader)",
                "p90_follower_ms": round(1000 * sorted(follower_s)[int(0.9 * len(follower_s))], 2),
                "idle_cpu_ms_per_s": round(idle_ms_per_s, 2),
                "goal": "follower under 100 ms; idle under 10 ms/s",
                "met": value < 0.1 and idle_ms_per_s < 10,
            }
        )
    )


if __name__ == "__main__":
    main()
