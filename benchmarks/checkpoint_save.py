"""How long training is blocked per checkpoint, against a plain `torch.save` of the same state.

dlnest's save stages the state in memory and makes it durable in the background (temp file,
fsync, rename, fsync of the folder, then `_package.json`). The blocked time is what the training
loop waits for; the durable time is when a crash could no longer lose the checkpoint. Both are
compared with `torch.save` straight to the final name (no fsync), measured in the same run.

    .venv/bin/python benchmarks/checkpoint_save.py [--params-millions N] [--repeats N]
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


def training_state(params_millions: float) -> dict[str, Any]:
    """A model with Adam state after one step: what a real checkpoint holds."""
    width = int((params_millions * 1e6 / 4) ** 0.5)
    model = nn.Sequential(*(nn.Linear(width, width) for _ in range(4)))
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(2, width)).sum().backward()
    optimizer.step()
    return {
        "runner": {
            "modules": {"model": model.state_dict()},
            "optimizer": {"optimizer": optimizer.state_dict()},
        },
        "finished_epoch": 1,
    }


def state_mb(state: Any) -> float:
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size() / 2**20
    if isinstance(state, dict):
        return sum(state_mb(v) for v in state.values())
    if isinstance(state, list | tuple):
        return sum(state_mb(v) for v in state)
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params-millions", type=float, default=8.0)
    # The disk's own pace varies from save to save here: a median over 15 holds still.
    parser.add_argument("--repeats", type=int, default=15)
    options = parser.parse_args()
    state = training_state(options.params_millions)
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        config = write_bench_project(root / "project", noop=True, steps=1, width=8, batch=2)
        package = create_package(load_config(config), PackageOptions())
        writer = CheckpointWriter(package, TrackLimits(fast=1, slow=0, consistent=0))
        plain, blocked, durable = [], [], []
        for index in range(options.repeats):
            start = time.perf_counter()
            torch.save(state, root / f"plain_{index % 2}.ckpt")
            plain.append(time.perf_counter() - start)

            start = time.perf_counter()
            writer.save(state, epoch=index, hold=False)
            blocked.append(time.perf_counter() - start)
            writer.wait()
            durable.append(time.perf_counter() - start)
        assert package.resolve_checkpoint(None) == options.repeats - 1
    plain_s, blocked_s, durable_s = (statistics.median(v) for v in (plain, blocked, durable))
    ratio = blocked_s / plain_s
    print(
        f"state {state_mb(state):.0f} MB: torch.save {plain_s * 1e3:.1f} ms, blocked {blocked_s * 1e3:.1f} ms, durable after {durable_s * 1e3:.1f} ms"
    )
    print(
        json.dumps(
            {
                "metric": "checkpoint_blocked_time_vs_torch_save",
                "value": round(blocked_s * 1e3, 2),
                "baseline": round(plain_s * 1e3, 2),
                "ratio": round(ratio, 4),
                "goal": "ratio <= 0.25 and durable_ratio <= 1.5",
                "met": ratio <= 0.25 and durable_s / plain_s <= 1.5,
                "unit": "ms per checkpoint",
                "durable_ms": round(durable_s * 1e3, 2),
                "durable_ratio": round(durable_s / plain_s, 4),
                "state_mb": round(state_mb(state), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
