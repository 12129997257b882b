"""Launch latency: from submitting a task to its first training step, with a free device.

The service runs with the zygote executor (warm); each task's life cycle stamps the wall clock
at its first BModelOneStep. The baseline, measured in the same run, is what any fresh task
process pays before its first line of user code: `python -c "import torch"`. For reference the
same submission is also timed with the zygote off (a fresh interpreter per task).

    .venv/bin/python benchmarks/launch_latency.py [--launches N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _project import write_bench_project

from dlnest_jupyter.core.devices import FakeSource
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.core.tasks import TaskKind
from dlnest_jupyter.service.launch.executor import LocalExecutor
from dlnest_jupyter.service.service import DLNestService

STAMPING_LIFE_CYCLE = """
import os, time
from dlnest_jupyter import LifeCycleBase

class Cycle(LifeCycleBase):
    def BModelOneStep(self):
        if self._status.iter == 0 and self._status.epoch == 1:
            stamp = self.args["stamp_file"]
            with open(stamp + ".tmp", "w") as handle:
                handle.write(repr(time.time()))
            os.replace(stamp + ".tmp", stamp)

    def needSaveModel(self, epoch, logdict, args):
        return False
"""


def submit_to_first_step_s(service: DLNestService, workdir: Path, index: int) -> float:
    stamp = workdir / f"stamp{index}"
    config = write_bench_project(
        workdir / f"project{index}", noop=False, steps=5, width=32, batch=8, stamp_file=str(stamp)
    )
    (config.parent / "Cycle.py").write_text(STAMPING_LIFE_CYCLE)
    submitted = time.time()
    task = service.submit(
        TaskKind.TRAIN, config_path=config, memory_mb=1000
    )  # placed and started by the submission
    deadline = time.monotonic() + 120
    while not stamp.exists():
        assert time.monotonic() < deadline, (
            f"task {task.id} never took a step: {service.queries.task(task.id)}"
        )
        time.sleep(0.002)
    first_step = float(stamp.read_text())
    while not service.queries.task(task.id).state.terminal:
        service.tick()
        time.sleep(0.05)
    return first_step - submitted


def import_torch_s() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launches", type=int, default=7)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        workdir = Path(temp)
        executor = LocalExecutor(zygote=True)
        assert executor.zygote is not None and executor.zygote.wait_ready(120)
        warm = DLNestService(TaskStore(workdir / "warm.sqlite"), FakeSource((16384,)), executor)
        zygote_s = [
            submit_to_first_step_s(warm, workdir / "warm", i) for i in range(options.launches)
        ]
        warm.stop()
        cold = DLNestService(
            TaskStore(workdir / "cold.sqlite"), FakeSource((16384,)), LocalExecutor()
        )
        fresh_s = [submit_to_first_step_s(cold, workdir / "cold", i) for i in range(3)]
        baseline_s = [import_torch_s() for _ in range(3)]
    median, baseline = statistics.median(zygote_s), statistics.median(baseline_s)
    print(
        f"submission to first step, zygote: median {median * 1e3:.0f} ms ({', '.join(f'{s * 1e3:.0f}' for s in zygote_s)})"
    )
    print(
        f"submission to first step, fresh interpreter: median {statistics.median(fresh_s) * 1e3:.0f} ms"
    )
    print(f"python -c 'import torch': median {baseline * 1e3:.0f} ms")
    print(
        json.dumps(
            {
                "metric": "submit_to_first_step_s",
                "value": round(median, 4),
                "baseline": round(baseline, 4),
                "ratio": round(median / baseline, 4),
                "goal": "median <= 0.020 s",
                "met": median <= 0.020,
                "unit": "seconds",
                "fresh_interpreter_s": round(statistics.median(fresh_s), 4),
                "launches": options.launches,
            }
        )
    )


if __name__ == "__main__":
    main()
