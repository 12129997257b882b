"""What a checkpoint holds: the state at the moment `save` returned, whatever training does to
the tensors afterwards (the writer copies into the buffers of its previous save)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dlnest_jupyter.core.checkpoints import TrackLimits
from dlnest_jupyter.runtime.checkpoint_io import CheckpointWriter, stage_to_cpu

from ..conftest import new_package
from ..projects import write_project


def test_each_checkpoint_holds_the_weights_of_its_save_though_training_goes_on(
    tmp_path: Path,
) -> None:
    package = new_package(write_project(tmp_path / "p"))
    writer = CheckpointWriter(package, TrackLimits(fast=10, slow=0, consistent=0))
    model = nn.Linear(4, 3)
    expected = {}
    for epoch in range(1, 5):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(1.0)  # training changes the weights in place between saves
        if epoch == 3:
            model = nn.Linear(5, 3)  # a bigger layer: its buffers cannot be reused
        state = {"model": model.state_dict(), "steps": [torch.tensor(epoch)]}
        saved_id = writer.save(state, epoch=epoch, hold=False)
        expected[saved_id] = (epoch, {k: v.clone() for k, v in model.state_dict().items()})
        with torch.no_grad():
            model.weight.mul_(-1)  # changed again before the background write is done
    writer.close()

    for checkpoint_id, (epoch, weights) in expected.items():
        loaded = torch.load(package.checkpoint_path(checkpoint_id), weights_only=True)
        assert loaded["checkpoint_id"] == checkpoint_id
        assert loaded["model"].keys() == weights.keys()
        for key, value in weights.items():
            assert torch.equal(loaded["model"][key], value), (checkpoint_id, key)
        assert loaded["steps"][0].item() == epoch


def test_staging_copies_into_matching_buffers_only() -> None:
    weight = torch.arange(6.0).reshape(2, 3)
    first = stage_to_cpu({"w": weight, "t": (weight.t(),), "n": 1})
    weight.add_(10)

    again = stage_to_cpu({"w": weight, "t": (weight.t(),), "n": 2}, reuse=first)

    assert again["w"] is first["w"] and torch.equal(again["w"], weight)
    assert torch.equal(again["t"][0], weight.t()) and again["n"] == 2
    resized = stage_to_cpu({"w": torch.zeros(3, 3)}, reuse=again)
    assert resized["w"] is not again["w"] and resized["w"].shape == (3, 3)
