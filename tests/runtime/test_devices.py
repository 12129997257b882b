from __future__ import annotations

from collections import namedtuple

import pytest
import torch

from dlnest_jupyter.runtime.devices import move_to_device, plan_devices

Pair = namedtuple("Pair", ["x", "y"])


class Batch:
    def __init__(self) -> None:
        self.moved_to: torch.device | None = None

    def to(self, device: torch.device) -> Batch:
        self.moved_to = device
        return self


def test_batches_of_any_nesting_move_and_keep_their_types() -> None:
    meta = torch.device("meta")  # a real device on every machine, so no GPU is needed
    custom = Batch()
    batch = {
        "pair": Pair(torch.ones(2), [torch.zeros(1), (torch.ones(1), 3)]),
        "label": "text",
        "obj": custom,
    }

    moved = move_to_device(batch, meta)

    assert isinstance(moved["pair"], Pair)
    assert moved["pair"].x.device == meta
    assert moved["pair"].y[0].device == meta and moved["pair"].y[1][0].device == meta
    assert isinstance(moved["pair"].y[1], tuple) and moved["pair"].y[1][1] == 3
    assert moved["label"] == "text" and custom.moved_to == meta
    assert (
        move_to_device(torch.ones(1), meta).device == meta
    )  # a bare tensor moves too (DLNest bug 4)


def test_cpu_placement_is_the_cpu() -> None:
    plan = plan_devices([-1])

    assert (plan.env, plan.device.type, plan.gpu_ids) == ("CPU", "cpu", ())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback when CUDA is absent")
def test_a_gpu_placement_without_cuda_runs_on_the_cpu_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # restored after the test: plan_devices sets it

    plan = plan_devices([2])

    assert (plan.env, plan.device.type) == ("CPU", "cpu")
    assert plan.warning is not None and "placed on GPU 2 but CUDA is not available" in plan.warning
