"""A running task's reservation follows its measured use: raised at once, shrunk after warm-up."""

from __future__ import annotations

from typing import Any

import pytest

from dlnest_jupyter.core.devices import GpuProcess, GpuSnapshot, InventorySnapshot
from dlnest_jupyter.core.memory_policy import (
    cross_checked,
    launch_marks,
    retry_after_out_of_memory,
    revise_reservation,
    warmed_up,
    with_margin,
)
from dlnest_jupyter.core.placement_values import Demand
from dlnest_jupyter.core.settings import Settings
from dlnest_jupyter.core.tasks import demand_of

SETTINGS = Settings(memory_warmup_steps=100, memory_margin_pct=10, memory_margin_mb=256)


def progress(now: dict[str, int], peak: dict[str, int], **more: Any) -> dict[str, Any]:
    return {"memory_mb": now, "peak_memory_mb": peak, **more}


WARM = {"steps": 100}


@pytest.mark.parametrize(
    ("reserved", "reported", "given", "expected", "over"),
    [
        # Shrinks to peak + 10% + 256 MiB once warm: 1,000 -> 1,356.
        ({0: 14745}, progress({"0": 900}, {"0": 1000}, **WARM), False, {0: 1356}, False),
        # Not before warm-up (neither a whole epoch nor enough steps yet).
        ({0: 14745}, progress({"0": 900}, {"0": 1000}, steps=99), False, None, None),
        # A whole epoch is warm-up enough, whatever the step count.
        (
            {0: 14745},
            progress({"0": 900}, {"0": 1000}, steps=3, epoch_s=2.5),
            False,
            {0: 1356},
            False,
        ),
        # A -m reservation stays, unless shrink_given.
        ({0: 6000}, progress({"0": 900}, {"0": 1000}, **WARM), True, None, None),
        # Already at most peak + margin: nothing to do.
        ({0: 1356}, progress({"0": 900}, {"0": 1000}, **WARM), False, None, None),
        # Use past the reservation raises it at once, warm or not, given or not; flagged.
        ({0: 500}, progress({"0": 1000}, {"0": 1000}, steps=1), True, {0: 1000}, True),
        # Each card on its own: card 1 unmeasured keeps its reservation; the CPU is never touched.
        (
            {0: 8000, 1: 8000},
            progress({"0": 10}, {"0": 100}, **WARM),
            False,
            {0: 366, 1: 8000},
            False,
        ),
        ({-1: 0}, progress({"-1": 5}, {"-1": 5}, **WARM), False, None, None),
        # Nothing measured yet, or figures that are not figures: nothing changes.
        ({0: 14745}, {"steps": 500}, False, None, None),
        ({0: 14745}, progress({"0": "x"}, {"zero": 1, "0": True}, **WARM), False, None, None),  # type: ignore[dict-item]
    ],
)
def test_a_reservation_follows_what_the_run_uses(
    reserved: dict[int, int],
    reported: dict[str, Any],
    given: bool,
    expected: dict[int, int] | None,
    over: bool | None,
) -> None:
    revision = revise_reservation(reserved, reported, given, SETTINGS)

    if expected is None:
        assert revision is None
    else:
        assert revision is not None
        assert (revision.reserved_mb, revision.over) == (expected, over)


def test_given_reservations_shrink_when_the_setting_allows_and_notes_say_what_happened() -> None:
    shrinks_given = Settings(memory_warmup_steps=1, shrink_given=True)

    shrunk = revise_reservation(
        {0: 6000}, progress({"0": 1}, {"0": 1000}, steps=1), True, shrinks_given
    )
    grew = revise_reservation({0: 500}, progress({"0": 900}, {"0": 1200}), False, SETTINGS)

    assert shrunk is not None and shrunk.reserved_mb == {0: 1356}
    assert shrunk.note == "shrunk after warm-up to 1,356 MiB on GPU 0 (its peak + 10% + 256 MiB)"
    assert grew is not None and grew.note.startswith(
        "grew past its reservation: uses 1,200 MiB on GPU 0, reserved 500"
    )


def test_the_margin_and_the_warm_up_read_the_settings() -> None:
    assert with_margin(1000, SETTINGS) == 1356
    assert with_margin(1000, Settings(memory_margin_pct=0, memory_margin_mb=0)) == 1000
    assert not warmed_up({}, SETTINGS) and warmed_up({"epoch_s": 1.0}, SETTINGS)


def test_the_guard_caps_each_card_at_its_reservation_plus_the_margin_and_only_when_on() -> None:
    guarded = Settings(guard_memory=True)

    assert launch_marks({0: 1000, 1: 2000}, False, guarded) == {
        "memory_cap_mb": {"0": 1356, "1": 2456}
    }
    assert launch_marks({0: 1000}, True, Settings()) == {"pretend_gpus": True}
    assert launch_marks({-1: 0}, False, guarded) == {}  # the CPU has no allocator to cap


def test_a_run_out_of_gpu_memory_is_retried_reserving_what_it_reached_while_retries_last() -> None:
    spec = {"config_path": "/p/root.json", "cpu": False, "learned_mb": 1356, "learned_runs": 2}
    reached = {"peak_memory_mb": {"0": 3000}}

    retry = retry_after_out_of_memory(spec, reached, Settings(oom_retries=1))
    assert retry is not None and retry.spec["learned_mb"] == 3556
    assert retry.spec == {
        "config_path": "/p/root.json",
        "cpu": False,
        "learned_mb": 3556,
        "oom_retries_used": 1,
    }
    assert retry_after_out_of_memory(retry.spec, reached, Settings(oom_retries=1)) is None
    assert retry_after_out_of_memory(spec, reached, Settings(oom_retries=0)) is None
    assert retry_after_out_of_memory(spec, {}, Settings()) is None  # it never said what it used
    multi = retry_after_out_of_memory(
        {**spec, "multi_gpu": True}, {"peak_memory_mb": {"0": 3000, "1": 1000}}, Settings()
    )
    assert multi is not None and multi.spec["learned_mb"] == 4000 + 400 + 256  # over all its cards
    ddp = retry_after_out_of_memory(
        {**spec, "ddp": True}, {"peak_memory_mb": {"0": 3000, "1": 2000}}, Settings()
    )
    # Each of its two ranks reserves what the busiest reached: its ranks keep their number.
    assert ddp is not None and ddp.spec["learned_mb"] == 3556 and ddp.spec["learned_ranks"] == 2
    assert ddp.note == "reserving 3,556 MiB for each of 2 DDP ranks"
    assert demand_of(5, None, ddp.spec) == Demand(5, memory_mb=2 * 3556, ddp=True, rank_mb=3556)


def test_nvml_per_process_figures_raise_what_the_run_reported_and_nothing_else() -> None:
    def card(gpu_id: int, *processes: tuple[int, int]) -> GpuSnapshot:
        listed = tuple(GpuProcess(pid, mb) for pid, mb in processes)
        return GpuSnapshot(gpu_id, f"GPU {gpu_id}", 16384, 0, None, listed)

    snapshot = InventorySnapshot(
        (card(0, (41, 2000), (42, 500), (7, 9000)), card(1, (43, 0))), "nvml"
    )
    reported = progress({"0": 1800, "1": 900}, {"0": 2100, "1": 950}, epoch=3)

    checked = cross_checked(reported, {41, 42, 43}, snapshot)

    # GPU 0: its two processes (a DDP rank and the leader) hold 2,500 by NVML; another user's
    # 9,000 is not ours. GPU 1: NVML says 0 (no per-process figure): the runtime's stands.
    assert checked["memory_mb"] == {"0": 2500, "1": 900}
    assert checked["peak_memory_mb"] == {"0": 2500, "1": 950}
    assert checked["epoch"] == 3
    assert cross_checked(reported, {99}, snapshot) == reported
