from __future__ import annotations

import pytest

from dlnest_jupyter.core.devices import (
    CPU_ID,
    FakeSource,
    GpuProcess,
    GpuSnapshot,
    NvmlSource,
    parse_fake_gpus,
    source_from_env,
)
from dlnest_jupyter.core.errors import ConfigError


def test_fake_gpus_come_from_the_environment_with_foreign_memory() -> None:
    source = source_from_env(
        {"DLNEST_FAKE_GPUS": "2x24576,1x8192", "DLNEST_FAKE_GPUS_FOREIGN_MB": "1=1000"}
    )

    snapshot = source.snapshot()

    assert snapshot.source == "fake"
    assert [(g.id, g.memory_total_mb, g.memory_used_mb) for g in snapshot.gpus] == [
        (0, 24576, 0),
        (1, 24576, 1000),
        (2, 8192, 0),
    ]
    assert snapshot.device_ids == (0, 1, 2, CPU_ID)


@pytest.mark.parametrize("spec", ["4", "4x", "x100", "2x0", "4x16384;2x8"])
def test_a_malformed_fake_gpu_spec_names_the_variable(spec: str) -> None:
    with pytest.raises(ConfigError, match="DLNEST_FAKE_GPUS"):
        parse_fake_gpus(spec)


def test_zero_fake_gpus_means_a_cpu_only_machine() -> None:
    snapshot = FakeSource(parse_fake_gpus("0")).snapshot()

    assert snapshot.gpus == () and snapshot.device_ids == (CPU_ID,)


def test_nvml_without_a_driver_means_no_gpus_with_the_reason_and_never_raises() -> None:
    snapshot = NvmlSource().snapshot()

    if snapshot.source == "nvml":
        pytest.skip("this machine has a working NVML")
    assert snapshot.gpus == () and snapshot.reason and "NVML unavailable" in snapshot.reason


def test_foreign_memory_uses_the_process_list_when_the_driver_gives_one() -> None:
    listed = GpuSnapshot(0, "g", 16000, 9000, 0, (GpuProcess(10, 4000), GpuProcess(11, 5000)))
    unlisted = GpuSnapshot(0, "g", 16000, 9000, 0, None)

    assert listed.foreign_memory_mb(frozenset({10}), our_reserved_mb=6000) == 5000
    assert unlisted.foreign_memory_mb(frozenset({10}), our_reserved_mb=6000) == 3000
