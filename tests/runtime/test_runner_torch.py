from __future__ import annotations

import torch
from torch import nn

from dlnest_jupyter import RunnerBaseTorch
from dlnest_jupyter.runtime.status import RunningStatus


class TwoModules(RunnerBaseTorch):
    def init(self, args, datasetInfo=None):  # type: ignore[no-untyped-def]
        self.encoder = nn.Linear(3, 4)
        self.head = self.register(nn.Linear(4, 1))  # DLNest's README style: register, then assign
        self.optimizer = torch.optim.Adam(
            [*self.encoder.parameters(), *self.head.parameters()], lr=0.1
        )
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer)
        self.cosine = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=10)


def built() -> TwoModules:
    runner = TwoModules({}, status=RunningStatus())
    runner.init({})
    return runner


def test_assigned_modules_are_registered_once_and_saved_by_attribute_name() -> None:
    runner = built()

    saved = runner.getSaveDict()

    assert set(saved["modules"]) == {"encoder", "head"}
    assert set(saved["optimizer"]) == {"optimizer"}
    assert set(saved["scheduler"]) == {"plateau", "cosine"}  # torch 2 classes, which DLNest missed
    assert runner.register(runner.head) is runner.head


def test_a_save_dict_restores_weights_optimizer_and_schedulers() -> None:
    source = built()
    source.encoder(torch.randn(2, 3)).sum().backward()
    source.optimizer.step()
    source.cosine.step()
    source.plateau.step(1.0)
    target = built()

    target.loadSaveDict(source.getSaveDict())

    assert torch.equal(target.encoder.weight, source.encoder.weight)
    assert (
        target.optimizer.state_dict()["state"].keys()
        == source.optimizer.state_dict()["state"].keys()
    )
    assert target.cosine.last_epoch == 1 and target.plateau.best == 1.0


def test_dlnest_0_3_save_dicts_with_integer_keys_still_load() -> None:
    source = built()
    legacy = {
        0: source.encoder.state_dict(),
        1: source.head.state_dict(),
        "optimizer": {},
        "scheduler": {},
    }
    target = built()

    target.loadSaveDict(legacy)

    assert torch.equal(target.head.weight, source.head.weight)


def test_outside_ddp_reductions_are_the_identity_and_the_env_is_reported() -> None:
    runner = built()
    value = torch.tensor(3.0)

    assert runner._reduceMean(value) is value and runner._reduceSum(value) is value
    assert (runner._envType, runner._rank, runner._worldSize) == ("CPU", -1, 1)
