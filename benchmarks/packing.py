"""Packing: how fast a synthetic trace of tasks finishes on fake GPUs under our placement policy.

No training runs: durations are simulated. All tasks are queued at time 0 (a shared box on a
Monday morning); whenever a task ends, the policy places what it can. The makespan is compared
with the sum-of-work lower bound, max(sum(memory x duration) / total memory, longest task), and
with DLNest's policy replayed on the same trace and events: only the oldest queued task is
considered, on the first card whose free memory exceeds its estimate (reference/dlnest.md 3.6).

    .venv/bin/python benchmarks/packing.py [--tasks N] [--gpus N] [--seeds N]
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from dlnest_jupyter.core.devices import FakeSource, InventorySnapshot
from dlnest_jupyter.core.placement import plan_placements
from dlnest_jupyter.core.placement_values import Demand, Placement, Reservation
from dlnest_jupyter.core.settings import Settings

CARD_MB = 16384


@dataclass(frozen=True)
class Job:
    demand: Demand
    duration_s: float


Policy = Callable[[list[Demand], InventorySnapshot, list[Reservation], float], list[Placement]]


def ours(
    queue: list[Demand], snapshot: InventorySnapshot, running: list[Reservation], now: float
) -> list[Placement]:
    return plan_placements(queue, snapshot, running, Settings(), now)


def dlnest(
    queue: list[Demand], snapshot: InventorySnapshot, running: list[Reservation], now: float
) -> list[Placement]:
    free = {g.id: g.memory_total_mb for g in snapshot.gpus}
    for reservation in running:
        for device, mb in reservation.memory_mb_by_device.items():
            free[device] -= mb
    placed = []
    for demand in queue:  # strict FIFO: stop at the first task that does not fit
        estimate = demand.memory_mb or int(CARD_MB * 0.9)
        card = next((g for g, mb in sorted(free.items()) if mb > estimate), None)
        if card is None:
            break
        free[card] -= estimate
        placed.append(Placement(demand.task_id, {card: estimate}))
    return placed


def simulate(jobs: list[Job], gpus: int, policy: Policy) -> float:
    snapshot = FakeSource((CARD_MB,) * gpus).snapshot()
    by_id = {job.demand.task_id: job for job in jobs}
    queue = [job.demand for job in jobs]
    running: dict[int, Reservation] = {}
    ends: list[tuple[float, int]] = []
    now = 0.0
    while queue or running:
        for placement in policy(queue, snapshot, list(running.values()), now):
            running[placement.task_id] = Reservation(
                placement.task_id, placement.memory_mb_by_device, started_at=now
            )
            heapq.heappush(ends, (now + by_id[placement.task_id].duration_s, placement.task_id))
        started = set(running)
        queue = [d for d in queue if d.task_id not in started]
        if not ends:
            raise RuntimeError("a queued task can never start")
        now, finished = heapq.heappop(ends)
        del running[finished]
    return now


def trace(tasks: int, seed: int) -> list[Job]:
    rng = random.Random(seed)
    jobs = []
    for i in range(tasks):
        memory_mb = rng.choice([1500, 3000, 3000, 6000, 6000, 10000, 14000])
        duration_s = rng.choice([300, 600, 1200, 3600]) * rng.uniform(0.8, 1.2)
        jobs.append(Job(Demand(i, memory_mb=memory_mb, queued_at=0.0), duration_s))
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--gpus", type=int, default=4)
    parser.add_argument(
        "--seeds", type=int, default=5, help="traces to replay; medians are reported"
    )
    options = parser.parse_args()
    rows = []
    for seed in range(options.seeds):
        jobs = trace(options.tasks, seed)
        work = sum((job.demand.memory_mb or 0) * job.duration_s for job in jobs)
        bound = max(work / (CARD_MB * options.gpus), max(job.duration_s for job in jobs))
        rows.append(
            (bound, simulate(jobs, options.gpus, ours), simulate(jobs, options.gpus, dlnest))
        )
        print(
            f"seed {seed}: bound {bound / 3600:.2f} h, ours {rows[-1][1] / 3600:.2f} h, "
            f"DLNest's policy {rows[-1][2] / 3600:.2f} h"
        )
    ratio = statistics.median(o / d for _, o, d in rows)
    print(
        json.dumps(
            {
                "metric": "makespan_vs_dlnest_policy",
                "value": round(statistics.median(o for _, o, _ in rows) / 3600, 3),
                "baseline": round(statistics.median(d for _, _, d in rows) / 3600, 3),
                "ratio": round(ratio, 4),
                "goal": "ratio < 1 (sooner than DLNest's policy) on every trace, near the sum-of-work bound",
                "met": all(o < d for _, o, d in rows),
                "unit": "hours (medians over traces)",
                "ratio_to_lower_bound": round(statistics.median(o / b for b, o, _ in rows), 4),
                "dlnest_ratio_to_lower_bound": round(
                    statistics.median(d / b for b, _, d in rows), 4
                ),
                "traces": options.seeds,
                "tasks": options.tasks,
                "gpus": options.gpus,
            }
        )
    )


if __name__ == "__main__":
    main()
