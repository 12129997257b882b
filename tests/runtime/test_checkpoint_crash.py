"""SIGKILL while checkpoints are being saved, at many points of the save cycle: the package
always keeps its latest committed checkpoint loadable.

Each round lets the saver commit a number of checkpoints (as `_package.json` says), then kills
it at once, while it writes the next one: it saves in a tight loop, so a kill lands inside a
save. How far into that save varies with the poll; nothing asserted depends on timing.
"""

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
from ..waiting import wait_until

ROUNDS = 10


def committed(package: SavePackage) -> int:
    """The checkpoints the package has committed so far (its next id)."""
    return package.state().next_id


def kill_after_saves(package: SavePackage, saves: int, spread_s: float) -> int:
    """Run the saver until it has committed `saves` more checkpoints, then SIGKILL it (after
    `spread_s`, to vary where in a save the kill lands); returns the count seen before it."""
    before = committed(package)
    with subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("crash_saver.py")), str(package.path)],
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        seen = wait_until(
            lambda: (count := committed(package)) >= before + saves and count,
            120,
            f"{saves} saves",
            every_s=0.001,
        )
        time.sleep(spread_s)
        child.send_signal(signal.SIGKILL)
    assert child.returncode == -signal.SIGKILL  # killed, not ended by itself
    return seen


def assert_every_held_checkpoint_loads(package: SavePackage) -> None:
    state = package.state()
    for checkpoint_id in state.held_ids():
        saved = torch.load(package.checkpoint_path(checkpoint_id), weights_only=True)
        assert saved["checkpoint_id"] == saved["meta"]["id"] == checkpoint_id
        assert torch.equal(saved["value"], torch.full((256 * 1024,), float(checkpoint_id)))
    assert state.head is not None
    assert package.resolve_checkpoint(None) == state.head


def test_sigkill_while_saving_always_leaves_the_latest_committed_checkpoint_loadable(
    project: Path,
) -> None:
    package = new_package(project)
    rng = random.Random(20261122)
    heads = []

    for _ in range(ROUNDS):
        seen = kill_after_saves(package, saves=rng.randint(1, 3), spread_s=rng.uniform(0, 0.01))

        assert committed(package) >= seen  # no committed save is lost to the kill
        assert_every_held_checkpoint_loads(package)
        heads.append(package.state().head)

    assert heads == sorted(set(heads))  # each round's saves moved the head on
