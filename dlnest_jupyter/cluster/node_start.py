"""`dlnest ray-node`: join this machine to a Ray cluster with its cards declared as dlnest reads them.

The `ray start` line it runs declares one resource per card holding the card's memory in MiB
(from NVML, or DLNEST_FAKE_GPUS), one naming the node, and no Ray `GPU`s: no Ray task of anyone
can then take a card behind the ledger's back, and Ray never picks a card or rewrites
CUDA_VISIBLE_DEVICES. Card sizes are fixed when a node starts (Ray cannot change them later).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence

from ..core.devices import source_from_env
from . import names


def ray_start_command(
    node: str,
    totals_mb: Sequence[int],
    address: str | None = None,
    port: int = 6379,
    extra: Sequence[str] = (),
) -> list[str]:
    """The `ray start` argv for a node with cards of `totals_mb`; a head when `address` is None."""
    resources = json.dumps(names.node_resources(node, list(totals_mb)), separators=(",", ":"))
    where = [f"--address={address}"] if address else ["--head", f"--port={port}"]
    ray = shutil.which("ray", path=os.path.dirname(sys.executable)) or "ray"
    return [ray, "start", *where, "--num-gpus=0", f"--resources={resources}", *extra]


def run(
    address: str | None, node: str | None, port: int, dry_run: bool, extra: Sequence[str]
) -> int:
    name = names.checked_node_name(node or names.node_name())
    snapshot = source_from_env().snapshot()
    totals = [g.memory_total_mb for g in snapshot.gpus]
    command = ray_start_command(name, totals, address, port, extra)
    cards = ", ".join(f"{names.card_name(name, i)} {mb} MiB" for i, mb in enumerate(totals))
    print(f"node {name}: {cards or f'no GPU ({snapshot.reason})'}", file=sys.stderr)
    print(" ".join(_quoted(part) for part in command))
    if dry_run:
        return 0
    sys.stdout.flush()
    os.execvp(command[0], command)  # the node's raylet then runs in this process's place
    return 0  # not reached


def _quoted(part: str) -> str:
    return f"'{part}'" if any(c in part for c in ' "{}') else part
