"""DDP on the CPU (gloo), through the command: one process per entry of -devices."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from .projects import DATASET, RUNNER, read_events, write_project

RunCli = Callable[..., subprocess.CompletedProcess[str]]

SHARDED_DATASET = DATASET.replace(
    "self.trainLoader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True)",
    "sampler = self.getSampler(data)\n"
    "        self.trainLoader = torch.utils.data.DataLoader(data, batch_size=batch, sampler=sampler, shuffle=sampler is None)",
)
RANKED_RUNNER = RUNNER.replace(
    'record(self.args, "runOneStep")',
    'record(self.args, f"runOneStep:{self._rank}:{self._worldSize}")',
).replace(
    'log["loss"].append(loss.item())', 'log["loss"].append(self._reduceMean(loss.detach()).item())'
)


def test_ddp_on_two_cpu_processes_shards_the_data_and_saves_once(
    tmp_path: Path, run_cli: RunCli
) -> None:
    events = tmp_path / "events.txt"
    config = write_project(
        tmp_path / "p",
        epochs=2,
        dataset=SHARDED_DATASET,
        runner=RANKED_RUNNER,
        args={"record_file": str(events)},
    )

    result = run_cli("run", "-c", config, "-DDP", "-devices", "-1", "-1")

    assert result.returncode == 0, result.stdout + result.stderr
    [package] = (tmp_path / "p" / "Saves").iterdir()
    steps = read_events(events)
    assert (
        steps.count("runOneStep:0:2") == steps.count("runOneStep:1:2") == 2 * 2
    )  # 64 samples / 2 ranks / 16
    state = json.loads((package / "_package.json").read_text())
    assert state["head"] == 1 and state["next_id"] == 2  # rank 0 alone saved, once per epoch
    for rank in (0, 1):
        assert "epoch 2 loss" in (package / f"_output_{rank}.txt").read_text()
    launch = json.loads((package / "_task.json").read_text())["launches"][0]
    assert (launch["env"], launch["ddp"], launch["exit_code"]) == ("DDP", True, 0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="pretend cards 0 and 1 need no real ones")
def test_ddp_ranks_on_pretend_cards_each_report_their_cards_memory(
    tmp_path: Path, run_cli: RunCli
) -> None:
    config = write_project(
        tmp_path / "p", epochs=1, dataset=SHARDED_DATASET, args={"fake_gpu_memory_mb": 321}
    )

    result = run_cli(
        "run", "-c", config, "-DDP", "-devices", "0", "1", env={"DLNEST_FAKE_GPUS": "2x1024"}
    )

    assert result.returncode == 0, result.stdout + result.stderr
    [package] = (tmp_path / "p" / "Saves").iterdir()
    progress = json.loads((package / "_progress.json").read_text())
    rank_1 = json.loads((package / "_progress.rank1.json").read_text())
    assert progress["ranks"] == 2
    assert (progress["peak_memory_mb"], rank_1["peak_memory_mb"]) == ({"0": 321}, {"1": 321})


def test_a_failing_rank_fails_the_task_and_stops_the_others(
    tmp_path: Path, run_cli: RunCli
) -> None:
    failing = RANKED_RUNNER.replace(
        "        x, y = data\n        self.optimizer.zero_grad()",
        "        if self._rank == 1:\n            raise RuntimeError('rank 1 broke')\n"
        "        x, y = data\n        self.optimizer.zero_grad()",
    )
    config = write_project(tmp_path / "p", epochs=2, dataset=SHARDED_DATASET, runner=failing)

    result = run_cli("run", "-c", config, "-DDP", "-devices", "-1", "-1", timeout_s=120)

    assert result.returncode == 1
    [package] = (tmp_path / "p" / "Saves").iterdir()
    assert "RuntimeError: rank 1 broke" in (package / "_output_1.txt").read_text()
    assert json.loads((package / "_task.json").read_text())["launches"][0]["exit_code"] == 1
