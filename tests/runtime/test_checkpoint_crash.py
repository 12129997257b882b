from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from dlnest_jupyter.core.package import SavePackage

from ..conftest import new_package

ROUNDS = 10


def kill_while_saving(package: SavePackage, delay_s: float) -> None:
    with subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("crash_saver.py")), str(package.path)],
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(delay_s)
        child.send_signal(signal.SIGKILL)


def assert_every_held_checkpoint_loads(package: SavePackage) -> None:
    state = package.state()
    for checkpoint_id in state.held_ids():
        saved = torch.load(package.checkpoint_path(checkpoint_id), weights_only=True)
        assert saved["checkpoint_id"] == saved["meta"]["id"] == checkpoint_id
        assert torch.equal(saved["value"], torch.full((256 * 1024,), float(checkpoint_id)))
    if state.head is not None:
        assert package.resolve_checkpoint(None) == state.head


def test_sigkill_at_random_moments_while_saving_always_leaves_the_latest_good_checkpoint_loadable(
    project: Path,
) -> None:
    package = new_package(project)
    rng = random.Random(20261122)
    heads = []

    for _ in range(ROUNDS):
        kill_while_saving(package, delay_s=rng.uniform(0.0, 0.4))
        assert_every_held_checkpoint_loads(package)
        heads.append(package.state().head)

    assert package.state().next_id > 2 * ROUNDS  # the kills landed among many saves
    assert len(set(heads)) > ROUNDS // 2
