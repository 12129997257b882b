"""Training-loop overhead: dlnest's loop against a hand-written PyTorch loop, in one run.

Measurements, each alternating baseline and framework runs and taking medians:
- an MLP whose step takes about 1 ms on a CPU core: ratio of time per step (goal <= 1.03);
- a no-op step: the framework's extra time per step in microseconds (goal <= 20 us);
- the no-op step with three of DLNest's plugins that define no per-step hook (LogInit,
  SimpleCMDVisualize, MailsNote): their extra time per step over the same loop without plugins,
  run in turn with it (goal <= 5 us; DLNest's decorator cost 187 us a step with three
  plugins), and with a fourth that hooks every step (BModelOneStep), shown for scale.

    .venv/bin/python benchmarks/loop_overhead.py [--steps N] [--noop-steps N] [--repeats N]
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

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _project import write_bench_project

from dlnest_jupyter.core.checkpoints import TrackLimits
from dlnest_jupyter.core.config import load_config
from dlnest_jupyter.core.package_creation import PackageOptions, create_package
from dlnest_jupyter.runtime.checkpoint_io import CheckpointWriter
from dlnest_jupyter.runtime.loop import TrainingLoop
from dlnest_jupyter.runtime.progress import ProgressFile
from dlnest_jupyter.runtime.train import prepare
from dlnest_jupyter.runtime.train_request import TrainRequest

WIDTH, BATCH = 192, 64
QUIET_PLUGINS = ["LogInit", "SimpleCMDVisualize", "MailsNote"]  # no per-step hook among them
PLUGINS_CONFIG = {"MailsNote": {"enable_list": []}}  # mails nothing
PER_STEP_PLUGIN = """
class DLNestPlugin:
    _NAME = "EveryStep"

    def BModelOneStep(self):
        pass
"""


def framework_seconds_per_step(root: Path, **args: Any) -> float:
    package = create_package(load_config(write_bench_project(root, **args)), PackageOptions())
    session = prepare(package, TrainRequest(kind="train"))
    loop = TrainingLoop(session, CheckpointWriter(package, TrackLimits()))
    loop.progress = ProgressFile(package.path)  # as every real run has
    assert loop.run() is None
    stamps = sys.modules[type(session.life_cycle).__module__].STAMPS
    return float(stamps["end"] - stamps["start"]) / args["steps"]


def baseline_seconds_per_step(steps: int, noop: bool) -> float:
    """The loop a user would write by hand, over the same model and batches."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    batches = [
        (
            torch.randn(BATCH, WIDTH, generator=generator),
            torch.randint(0, 10, (BATCH,), generator=generator),
        )
        for _ in range(16)
    ]
    data = [batches[i % len(batches)] for i in range(steps)]
    model = nn.Sequential(
        nn.Linear(WIDTH, WIDTH), nn.ReLU(), nn.Linear(WIDTH, WIDTH), nn.ReLU(), nn.Linear(WIDTH, 10)
    )
    cost, optimizer = nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.01)
    log: dict[str, list[float]] = {"loss": []}

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        if noop:
            return
        optimizer.zero_grad()
        loss = cost(model(x), y)
        loss.backward()
        optimizer.step()
        log["loss"].append(loss.item())

    start = time.perf_counter()
    for x, y in data:
        step(x, y)
    return (time.perf_counter() - start) / steps


def measure(
    steps: int, repeats: int, noop: bool, workdir: Path, **extra: Any
) -> tuple[float, float, float]:
    """Median framework and baseline time per step, and the median of paired ratios.

    Each framework run sits between two baseline runs and is compared with their mean, so a
    machine that speeds up or slows down over the run (2 shared cores) skews neither side.
    """
    framework, baseline, ratios = [], [], []
    before = baseline_seconds_per_step(steps, noop)
    for index in range(repeats):
        name = f"{'noop' if noop else 'mlp'}{index}"
        ours = framework_seconds_per_step(
            workdir / f"{name}{len(extra.get('plugins', []))}",
            noop=noop,
            steps=steps,
            width=WIDTH,
            batch=BATCH,
            **extra,
        )
        after = baseline_seconds_per_step(steps, noop)
        framework.append(ours)
        baseline.append(after)
        ratios.append(ours / ((before + after) / 2))
        before = after
    return statistics.median(framework), statistics.median(baseline), statistics.median(ratios)


def plugin_seconds_per_step(
    options: argparse.Namespace, workdir: Path
) -> tuple[float, float, float]:
    """Median time per no-op step with no plugins, with the three quiet ones, and with a fourth
    hooking every step, the three runs taken in turn in each repeat."""
    (workdir / "every_step.py").write_text(PER_STEP_PLUGIN)
    cases = {
        "none": [],
        "quiet": QUIET_PLUGINS,
        "hooked": [*QUIET_PLUGINS, str(workdir / "every_step.py")],
    }
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    for index in range(options.repeats):
        for name, plugins in cases.items():
            seconds[name].append(
                framework_seconds_per_step(
                    workdir / f"plugins_{name}{index}",
                    noop=True,
                    steps=options.noop_steps,
                    width=WIDTH,
                    batch=BATCH,
                    plugins=plugins,
                    plugins_config=PLUGINS_CONFIG,
                )
            )
    none, quiet, hooked = (statistics.median(seconds[name]) for name in cases)
    return none, quiet, hooked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--noop-steps", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=9)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        workdir = Path(temp)
        measure(200, 1, noop=False, workdir=workdir / "warmup")
        model_fw, model_base, ratio = measure(
            options.steps, options.repeats, noop=False, workdir=workdir
        )
        noop_fw, noop_base, _ = measure(
            options.noop_steps, options.repeats, noop=True, workdir=workdir
        )
        plain_fw, quiet_fw, hooked_fw = plugin_seconds_per_step(options, workdir)
    noop_overhead_us = (noop_fw - noop_base) * 1e6
    quiet_us, hooked_us = (quiet_fw - plain_fw) * 1e6, (hooked_fw - plain_fw) * 1e6
    print(
        f"MLP step: framework {model_fw * 1e3:.3f} ms, hand-written {model_base * 1e3:.3f} ms, ratio {ratio:.4f}"
    )
    print(
        f"no-op step: framework {noop_fw * 1e6:.2f} us, hand-written {noop_base * 1e6:.2f} us, overhead {noop_overhead_us:.2f} us"
    )
    print(
        f"no-op step with plugins: 3 without a per-step hook {quiet_fw * 1e6:.2f} us "
        f"({quiet_us:+.2f} us), and a 4th hooking every step {hooked_fw * 1e6:.2f} us "
        f"({hooked_us:+.2f} us)"
    )
    print(
        json.dumps(
            {
                "metric": "train_step_time_ratio_vs_plain_pytorch",
                "value": round(model_fw * 1e3, 4),
                "baseline": round(model_base * 1e3, 4),
                "ratio": round(ratio, 4),
                "goal": "ratio <= 1.03 on a ~1 ms step, no-op overhead <= 20 us per step, and "
                "three plugins without a per-step hook <= 5 us per step",
                "met": ratio <= 1.03 and noop_overhead_us <= 20 and quiet_us <= 5,
                "unit": "ms per step",
                "noop_overhead_us_per_step": round(noop_overhead_us, 2),
                "three_quiet_plugins_us_per_step": round(quiet_us, 2),
                "with_a_per_step_plugin_us_per_step": round(hooked_us, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
