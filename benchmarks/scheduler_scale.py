"""Scheduler at scale: 10,000 queued tasks on 8 fake GPUs, and on a cluster of 64 nodes x 8.

Four figures, each against a baseline measured in the same run:
- one placement pass over the whole queue (goal: under 10 ms), against one pass of DLNest's
  policy (oldest task only, free memory only) over the same queue;
- submissions into the SQLite store per second (goal: 500/s or more), against bare
  `INSERT ... COMMIT` transactions into a one-table SQLite database with the same settings;
- reading the full task list (goal: under 100 ms), against `SELECT *` of the bare table;
- one placement pass on a cluster's inventory, 64 nodes x 8 cards named by node (simulated, no
  Ray), a fifth of them multi-card (goal: under 20 ms), against the one-box pass above;
- the scheduler's pass, which also says why each task it leaves queued waits (core/waiting.py)
  (goal: under 20 ms), against the plain pass above.

    .venv/bin/python benchmarks/scheduler_scale.py [--tasks N]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dlnest_jupyter.core.devices import FakeSource, GpuSnapshot, InventorySnapshot
from dlnest_jupyter.core.placement import placement_pass, plan_placements
from dlnest_jupyter.core.placement_values import Demand, Reservation
from dlnest_jupyter.core.settings import Settings
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.core.waiting import WaitExplainer

GPUS, CARD_MB = 8, 16384
NODES = 64


def cluster_inventory() -> InventorySnapshot:
    """64 machines of 8 cards, ids in node order, as `cluster/ray_executor.py` builds it."""
    cards = tuple(
        GpuSnapshot(n * GPUS + i, f"box{n}:{i}", CARD_MB, 0, None, (), node=f"box{n}", index=i)
        for n in range(NODES)
        for i in range(GPUS)
    )
    return InventorySnapshot(gpus=cards, source="ray", local_node="jupyter")


def median_seconds(action: Callable[[], object], repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def dlnest_pass(queue: list[Demand], free_mb: dict[int, int]) -> list[int]:
    """DLNest's decide(): look at the oldest task only; first card whose free memory exceeds it."""
    if not queue:
        return []
    head = queue[0]
    estimate = head.memory_mb or int(CARD_MB * 0.9)
    return [card for card, free in free_mb.items() if free > estimate][:1]


def explained_pass(
    queue: list[Demand],
    snapshot: InventorySnapshot,
    running: list[Reservation],
    settings: Settings,
    now: float,
) -> dict[int, str]:
    """The scheduler's pass: where tasks go, and why each one left queued waits."""
    explainer = WaitExplainer(snapshot, running, settings, now)
    return {
        demand.task_id: explainer.why(demand, ledger)
        for demand, placement, ledger in placement_pass(queue, snapshot, running, settings, now)
        if placement is None
    }


def bare_sqlite(path: Path, count: int) -> tuple[float, float]:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, spec TEXT NOT NULL, created_at REAL NOT NULL)"
    )
    start = time.perf_counter()
    for i in range(count):
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT INTO t (spec, created_at) VALUES (?, ?)", (json.dumps({"i": i}), time.time())
        )
        db.execute("COMMIT")
    insert_rate = count / (time.perf_counter() - start)
    read_s = median_seconds(lambda: db.execute("SELECT * FROM t").fetchall(), repeats=5)
    db.close()
    return insert_rate, read_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    options = parser.parse_args()
    rng = random.Random(0)
    snapshot = FakeSource((CARD_MB,) * GPUS).snapshot()
    now = time.time()
    queue = [
        Demand(
            i,
            memory_mb=rng.choice([2000, 4000, 8000, 12000]),
            cpu=rng.random() < 0.1,
            queued_at=now - 60,
        )
        for i in range(options.tasks)
    ]
    # A busy machine: every card mostly reserved, so most of the queue must be looked at.
    running = [Reservation(-(g + 1), {g: 13000}, started_at=now - 60) for g in range(GPUS)]
    settings = Settings(max_tasks_per_device=4)
    placement_s = median_seconds(lambda: plan_placements(queue, snapshot, running, settings, now))
    dlnest_s = median_seconds(lambda: dlnest_pass(queue, {g: CARD_MB - 13000 for g in range(GPUS)}))
    explained_s = median_seconds(lambda: explained_pass(queue, snapshot, running, settings, now))

    cluster = cluster_inventory()
    cluster_queue = [
        Demand(
            i,
            memory_mb=rng.choice([2000, 4000, 8000, 12000, 24000]),
            multi_gpu=rng.random() < 0.2,
            queued_at=now - 60,
        )
        for i in range(options.tasks)
    ]
    cluster_running = [
        Reservation(-(g.id + 1), {g.id: 13000}, started_at=now - 60) for g in cluster.gpus
    ]
    cluster_s = median_seconds(
        lambda: plan_placements(cluster_queue, cluster, cluster_running, settings, now)
    )

    with tempfile.TemporaryDirectory() as temp:
        store = TaskStore(Path(temp) / "dlnest.sqlite")
        start = time.perf_counter()
        for demand in queue:
            store.submit(
                "train",
                {"config_path": f"/p/{demand.task_id}.json", "cpu": demand.cpu},
                memory_mb=demand.memory_mb,
            )
        submit_rate = options.tasks / (time.perf_counter() - start)
        list_s = median_seconds(store.list_tasks, repeats=5)
        bare_rate, bare_read_s = bare_sqlite(Path(temp) / "bare.sqlite", options.tasks)

    print(
        f"placement pass over {options.tasks} queued: {placement_s * 1e3:.2f} ms (DLNest's head-only pass {dlnest_s * 1e6:.1f} us)"
    )
    print(
        f"cluster pass ({NODES} nodes x {GPUS} cards) over {options.tasks} queued: {cluster_s * 1e3:.2f} ms"
    )
    print(f"the same pass saying why each waiting task waits: {explained_s * 1e3:.2f} ms")
    print(f"submissions: {submit_rate:.0f}/s (bare SQLite inserts {bare_rate:.0f}/s)")
    print(f"full task list: {list_s * 1e3:.1f} ms (bare SELECT {bare_read_s * 1e3:.1f} ms)")
    met = (
        placement_s < 0.010
        and submit_rate >= 500
        and list_s < 0.100
        and cluster_s < 0.020
        and explained_s < 0.020
    )
    print(
        json.dumps(
            {
                "metric": "placement_pass_ms_10k_queued_8_gpus",
                "value": round(placement_s * 1e3, 3),
                "baseline": round(dlnest_s * 1e3, 4),
                "ratio": round(placement_s / dlnest_s, 1),
                "goal": "pass < 10 ms, submissions >= 500/s, full list < 100 ms, cluster pass"
                " < 20 ms, explained pass < 20 ms",
                "met": met,
                "submissions_per_s": round(submit_rate),
                "bare_sqlite_inserts_per_s": round(bare_rate),
                "submission_ratio_vs_bare": round(submit_rate / bare_rate, 3),
                "list_ms": round(list_s * 1e3, 2),
                "bare_select_ms": round(bare_read_s * 1e3, 2),
                "list_ratio_vs_bare": round(list_s / bare_read_s, 2),
                "cluster_pass_ms_64_nodes_x_8": round(cluster_s * 1e3, 3),
                "cluster_pass_ratio_vs_one_box": round(cluster_s / placement_s, 2),
                "explained_pass_ms": round(explained_s * 1e3, 3),
                "explained_pass_ratio_vs_plain": round(explained_s / placement_s, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
