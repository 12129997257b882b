"""Every path that needs a real NVIDIA GPU, in one run of a few minutes, with a short report.

    ./scripts/gpu-check.sh            (this script, in the project's virtual environment)

1. NVML's inventory: each card, its memory, whether the driver lists processes.
2. torch and CUDA: versions, cards visible, nccl.
3. One training run placed by the scheduler: the card it ran on is the card it was placed on
   (CUDA_VISIBLE_DEVICES), and its measured peak (runtime/gpu_memory.py) against nvidia-smi's
   per-process figure sampled while it ran.
4. The guard: with `guard_memory` on, a run that allocates past its reservation fails itself
   as out of GPU memory, while a run beside it on the same card succeeds.
5. With two cards or more: an -mc run and a -DDP run over nccl, each reporting both cards.

No GPU: it says so and exits 0 (nothing to check). Any check that fails: exit 1.

`--pretend 2x16384` runs checks 3 to 5 on pretend cards instead (each run pretends to use what
it would allocate, `fake_gpu_memory_mb`), so the script itself is tested where there is no GPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dlnest_jupyter.core.devices import (  # noqa: E402
    FakeSource,
    InventorySnapshot,
    NvmlSource,
    parse_fake_gpus,
)

RUNNER = """
import torch
from torch import nn
from dlnest_jupyter import RunnerBaseTorch

class Runner(RunnerBaseTorch):
    def init(self, args, datasetInfo=None):
        self.model = nn.Linear(64, 10)
        self.cost = nn.CrossEntropyLoss()

    def initOptimizer(self):
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01)

    def initLog(self):
        return {"loss": []}

    def runOneStep(self, data, log, iter, epoch):
        x, y = data
        self.optimizer.zero_grad()
        loss = self.cost(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        log["loss"].append(loss.item())
"""
DATASET = """
import torch
from dlnest_jupyter import DatasetBase

class Data(DatasetBase):
    def init(self, args):
        g = torch.Generator().manual_seed(0)
        train = [(torch.randn(16, 64, generator=g), torch.randint(0, 10, (16,), generator=g))
                 for _ in range(20)]
        return {}, train, []
"""
# Holds `alloc_mb` MiB on its card from the first step, and says where it runs.
LIFE_CYCLE = """
import os, time, torch
from dlnest_jupyter import LifeCycleBase

class Cycle(LifeCycleBase):
    def BTrain(self):
        device = self._status.device
        if device is not None and device.type == "cuda":
            self.held = torch.empty(self.args["alloc_mb"] * 2**20, dtype=torch.uint8, device=device)
            self.held.fill_(1)
        print("placed:", os.environ.get("CUDA_VISIBLE_DEVICES"), "device:", device, flush=True)

    def AOneEpoch(self):
        time.sleep(self.args["epoch_sleep_s"])

    def needSaveModel(self, epoch, logdict, args):
        return False
"""


class Report:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.failed = False

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.failed |= not ok
        self.say(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")

    def say(self, line: str) -> None:
        print(line, flush=True)
        self.lines.append(line)


def project(root: Path, pretend: bool, **args: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Runner.py").write_text(RUNNER)
    (root / "Data.py").write_text(DATASET)
    (root / "Cycle.py").write_text(LIFE_CYCLE)
    config = {
        "runner_name": "Runner",
        "runner_file_path": "./Runner.py",
        "dataset_name": "Data",
        "dataset_file_path": "./Data.py",
        "life_cycle_name": "Cycle",
        "life_cycle_file_path": "./Cycle.py",
        "epochs": 4,
        "alloc_mb": 1024,
        "epoch_sleep_s": 0.1 if pretend else 1.0,
        **args,
    }
    if pretend:
        config["fake_gpu_memory_mb"] = config["alloc_mb"]
    path = root / "root_config.json"
    path.write_text(json.dumps(config))
    return path


def smi_used_mb() -> dict[int, int]:
    """nvidia-smi's per-process used memory, by pid (empty where it lists none)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    used = {}
    for line in out.strip().splitlines():
        pid, _, mb = line.partition(",")
        if pid.strip().isdigit() and mb.strip().isdigit():
            used[int(pid)] = used.get(int(pid), 0) + int(mb)
    return used


def run_until_done(service: Any, task_id: int, timeout_s: float = 240) -> tuple[Any, int]:
    """Tick until the task ends; returns it and the most nvidia-smi saw its process use."""
    deadline, seen = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        service.tick()
        task = service.queries.task(task_id)
        if task.pid is not None:
            seen = max(seen, smi_used_mb().get(task.pid, 0))
        if task.state.terminal:
            return task, seen
        time.sleep(0.25)
    raise TimeoutError(f"task {task_id} did not end within {timeout_s:.0f} s")


def main(argv: list[str]) -> int:
    pretend = argv[argv.index("--pretend") + 1] if "--pretend" in argv else None
    report = Report()
    if pretend is not None:
        return checks(report, pretend, FakeSource(parse_fake_gpus(pretend)).snapshot())
    snapshot = NvmlSource().snapshot()
    if not snapshot.gpus:
        print(
            f"dlnest gpu-check: no NVIDIA GPU here ({snapshot.reason or 'none found'}): nothing to check"
        )
        return 0
    for gpu in snapshot.gpus:
        listed = "lists processes" if gpu.processes is not None else "lists no processes"
        report.say(
            f"GPU {gpu.id}: {gpu.name}, {gpu.memory_total_mb:,} MiB, {gpu.memory_used_mb:,} used; driver {listed}"
        )

    import torch

    report.check(
        "CUDA",
        torch.cuda.is_available() and torch.cuda.device_count() == len(snapshot.gpus),
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} visible, "
        f"nccl {'.'.join(map(str, torch.cuda.nccl.version())) if torch.cuda.is_available() else '-'}",
    )

    return checks(report, None, snapshot)


def checks(report: Report, pretend: str | None, snapshot: InventorySnapshot) -> int:
    from dlnest_jupyter.core.tasks import TaskKind, TaskState
    from dlnest_jupyter.service.factory import build_service

    with tempfile.TemporaryDirectory(prefix="dlnest-gpu-check-") as folder:
        work = Path(folder)

        def make(name: str, **args: Any) -> Path:
            return project(work / name, pretend is not None, **args)

        service = build_service(work / "q.sqlite", fake_gpus=pretend, zygote=False)
        try:
            # 3. One run: placement, CUDA_VISIBLE_DEVICES, measured peak against nvidia-smi.
            config = make("one", alloc_mb=1024)
            task = service.submit(TaskKind.TRAIN, config_path=config, memory_mb=4000)
            placed = task.devices
            done, smi_mb = run_until_done(service, task.id)
            output = Path(done.package_path, "_output.txt").read_text()
            report.check(
                "placement",
                done.state is TaskState.SUCCEEDED
                and (pretend is not None or f"placed: {placed[0]}" in output),
                f"placed on GPU {placed}, the run saw CUDA_VISIBLE_DEVICES "
                + (output.split("placed: ", 1)[1].split()[0] if "placed: " in output else "?"),
            )
            peak = done.to_json()["peak_memory_mb"]
            ratio = f"{peak / smi_mb:.2f}x" if peak and smi_mb else "n/a"
            report.check(
                "measured peak",
                peak is not None and peak >= 1024 and (not smi_mb or 0.8 <= peak / smi_mb <= 1.5),
                f"runtime {peak} MiB vs nvidia-smi {smi_mb or 'no per-process figure'} MiB ({ratio})",
            )

            # 4. The guard: an oversized run fails alone; its neighbour on the card succeeds.
            service.update_settings(
                {"guard_memory": True, "oom_retries": 0, "devices": [placed[0]]}
            )
            big = service.submit(
                TaskKind.TRAIN, config_path=make("big", alloc_mb=3000), memory_mb=1000
            )
            small = service.submit(
                TaskKind.TRAIN, config_path=make("small", alloc_mb=200), memory_mb=1000
            )
            big_done, _ = run_until_done(service, big.id)
            small_done, _ = run_until_done(service, small.id)
            report.check(
                "guard",
                big_done.state is TaskState.FAILED
                and "out of GPU memory" in (big_done.error or "")
                and small_done.state is TaskState.SUCCEEDED,
                f"oversized run: {big_done.state.value} ({big_done.error}); neighbour: {small_done.state.value}",
            )
            service.update_settings({"guard_memory": False, "devices": None})

            # 5. Two cards: -mc and -DDP over nccl.
            if len(snapshot.gpus) >= 2:
                two_cards_mb = max(g.memory_total_mb for g in snapshot.gpus) + 1024
                for label, fields in (("-mc", {"multi_gpu": True}), ("-DDP (nccl)", {"ddp": True})):
                    spread = service.submit(
                        TaskKind.TRAIN,
                        config_path=make(label.strip("-( )"), alloc_mb=512),
                        memory_mb=two_cards_mb,  # more than one card holds: two are used
                        **fields,
                    )
                    spread_done, _ = run_until_done(service, spread.id)
                    peaks = spread_done.progress.get("peak_memory_mb") or {}
                    report.check(
                        label,
                        spread_done.state is TaskState.SUCCEEDED and len(peaks) >= 2,
                        f"{spread_done.state.value} on GPU {spread_done.devices}, peaks by card {peaks}"
                        + (f": {spread_done.error}" if spread_done.error else ""),
                    )
            else:
                report.say("SKIP  -mc and -DDP: one card only")
        finally:
            service.stop()
    report.say(
        "dlnest gpu-check: " + ("some checks FAILED" if report.failed else "all checks passed")
    )
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
