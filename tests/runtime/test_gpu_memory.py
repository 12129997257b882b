"""A run's GPU memory by card: pretend cards report their config's figure (issue 22, item 6)."""

from __future__ import annotations

import pytest

from dlnest_jupyter.runtime.devices import plan_devices
from dlnest_jupyter.runtime.gpu_memory import FAKE_MEMORY_KEY, GpuMemory


@pytest.fixture(autouse=True)
def _visibility_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # plan_devices narrows it; restored after


def test_a_run_on_pretend_cards_reports_its_configs_memory_on_each_card() -> None:
    memory = GpuMemory(plan_devices([2, 3], pretend=True), {FAKE_MEMORY_KEY: 1234})

    assert memory.figures() == {
        "memory_mb": {"2": 1234, "3": 1234},
        "peak_memory_mb": {"2": 1234, "3": 1234},
    }
    assert memory.warning is None


def test_a_ddp_rank_reports_only_its_own_card() -> None:
    memory = GpuMemory(plan_devices([0, 1], ddp=True, rank=1, pretend=True), {FAKE_MEMORY_KEY: 50})

    assert memory.figures()["peak_memory_mb"] == {"1": 50}


def test_without_the_key_a_pretend_card_reports_nothing_used_and_a_bad_value_says_so() -> None:
    absent = GpuMemory(plan_devices([0], pretend=True), {})
    bad = GpuMemory(plan_devices([0], pretend=True), {FAKE_MEMORY_KEY: "lots"})

    assert absent.figures()["peak_memory_mb"] == {"0": 0} and absent.warning is None
    assert bad.figures()["peak_memory_mb"] == {"0": 0}
    assert bad.warning is not None and FAKE_MEMORY_KEY in bad.warning and "'lots'" in bad.warning


def test_a_run_on_the_cpu_reports_no_gpu_memory() -> None:
    assert GpuMemory(plan_devices([-1]), {FAKE_MEMORY_KEY: 1234}).figures() == {}
