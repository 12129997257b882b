"""Child process for the crash test: save checkpoints of a known content as fast as possible."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import torch

from dlnest_jupyter.core.checkpoints import TrackLimits
from dlnest_jupyter.core.package import SavePackage
from dlnest_jupyter.runtime.checkpoint_io import CheckpointWriter


def main(package_path: str) -> None:
    package = SavePackage.open(Path(package_path))
    writer = CheckpointWriter(package, TrackLimits(fast=2, slow=2, dilation=3, consistent=1))
    print("ready", flush=True)
    while True:
        new_id = writer.state.next_id
        payload = {"value": torch.full((256 * 1024,), float(new_id)), "meta": {"id": new_id}}
        writer.save(payload, epoch=new_id, hold=random.random() < 0.3)


if __name__ == "__main__":
    main(sys.argv[1])
