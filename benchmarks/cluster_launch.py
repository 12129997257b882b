"""Cluster launch: from submitting a task to its first training step on a Ray node.

A local Ray cluster (`ray.cluster_utils.Cluster`: a head and one node declaring one 16 GiB card,
CPU only) and a service on it: each submission is placed, reserved as a placement group, and
started by the node's agent from its pre-warmed zygote. The baseline, measured in the same run,
is the same submission on one box (`LocalExecutor` with a warm zygote). One launch on each warms
up (the node agent's first start, the zygote's import of torch) and is not counted.

The last line also times each reply to a submission on the cluster, the first (which pays for
the node agent's start) included: placement and launch follow on the scheduler's thread, as in
the server, so every reply should come within 100 ms.

    .venv/bin/python benchmarks/cluster_launch.py [--launches N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from launch_latency import submit_to_first_step_s
from ray.cluster_utils import Cluster

from dlnest_jupyter.cluster import names
from dlnest_jupyter.core.devices import FakeSource
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.core.tasks import TaskRecord
from dlnest_jupyter.service.factory import build_service
from dlnest_jupyter.service.launch.executor import LocalExecutor
from dlnest_jupyter.service.service import DLNestService

SMALL_STORE = 80 * 2**20


def timed_replies(service: DLNestService) -> list[float]:
    """Seconds each later `service.submit` took to return, appended as they come."""
    replies: list[float] = []
    submit = service.submit

    def timed(*args: Any, **fields: Any) -> TaskRecord:
        start = time.perf_counter()
        try:
            return submit(*args, **fields)
        finally:
            replies.append(time.perf_counter() - start)

    service.submit = timed  # type: ignore[method-assign]
    return replies


def launches_s(service: DLNestService, workdir: Path, count: int) -> list[float]:
    submit_to_first_step_s(service, workdir / "warm-up", 0)
    return [submit_to_first_step_s(service, workdir / "run", i) for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launches", type=int, default=7)
    options = parser.parse_args()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "include_dashboard": False,
            "object_store_memory": SMALL_STORE,
        },
    )
    cluster.add_node(
        num_cpus=0,
        object_store_memory=SMALL_STORE,
        resources=names.node_resources("bench", [16384]),
    )
    try:
        with tempfile.TemporaryDirectory() as temp:
            workdir = Path(temp)
            on_cluster = build_service(workdir / "cluster.sqlite", ray_address=cluster.address)
            on_cluster.start()  # the scheduler's thread, as in the server
            replies_s = timed_replies(on_cluster)
            deadline = time.monotonic() + 120
            while not on_cluster.device_source.snapshot().gpus:
                assert time.monotonic() < deadline, "the cluster's card never appeared"
                time.sleep(0.2)
            cluster_s = launches_s(on_cluster, workdir / "cluster", options.launches)
            on_cluster.stop()
            executor = LocalExecutor(zygote=True)
            assert executor.zygote is not None and executor.zygote.wait_ready(120)
            local = DLNestService(
                TaskStore(workdir / "local.sqlite"), FakeSource((16384,)), executor
            )
            local_s = launches_s(local, workdir / "local", options.launches)
            local.stop()
    finally:
        cluster.shutdown()
    median, baseline = statistics.median(cluster_s), statistics.median(local_s)
    print(
        f"submission to first step on a Ray node: median {median * 1e3:.0f} ms ({', '.join(f'{s * 1e3:.0f}' for s in cluster_s)})"
    )
    print(f"the same on one box (local zygote): median {baseline * 1e3:.0f} ms")
    print(
        f"replies to submissions on the cluster: longest {max(replies_s) * 1e3:.0f} ms "
        f"({', '.join(f'{s * 1e3:.0f}' for s in replies_s)})"
    )
    print(
        json.dumps(
            {
                "metric": "cluster_submit_to_first_step_s",
                "value": round(median, 4),
                "baseline": round(baseline, 4),
                "ratio": round(median / baseline, 2),
                "goal": "median <= 1 s, and every reply to a submission within 0.1 s",
                "met": median <= 1.0 and max(replies_s) <= 0.1,
                "unit": "seconds",
                "longest_reply_s": round(max(replies_s), 4),
                "launches": options.launches,
            }
        )
    )


if __name__ == "__main__":
    main()
