"""Placement tables: which queued tasks start, and where, on fake GPUs."""

from __future__ import annotations

from dlnest_jupyter.core.devices import CPU_ID, FakeSource, GpuSnapshot, InventorySnapshot
from dlnest_jupyter.core.placement import (
    admission_error,
    gpu_budgets_mb,
    placement_pass,
    plan_placements,
)
from dlnest_jupyter.core.placement_values import Demand, Reservation
from dlnest_jupyter.core.settings import Settings

NOW = 1_000_000.0  # Demand.queued_at defaults to 0: long-queued, so set it where starvation matters


def gpus(count: int = 4, total_mb: int = 16384, foreign: dict[int, int] | None = None):  # type: ignore[no-untyped-def]
    return FakeSource((total_mb,) * count, foreign or {}).snapshot()


def where(placements) -> dict[int, tuple[int, ...]]:  # type: ignore[no-untyped-def]
    return {p.task_id: p.device_ids for p in placements}


def test_a_task_that_fits_starts_on_a_free_card() -> None:
    assert where(plan_placements([Demand(1, memory_mb=4000)], gpus(), [], Settings(), NOW)) == {
        1: (0,)
    }


def test_queued_tasks_spread_over_cards_instead_of_stacking_on_gpu_0() -> None:
    queue = [
        Demand(i, memory_mb=4000, queued_at=NOW - 3600) for i in range(4)
    ]  # long-queued, as in DLNest bug 6

    assert where(plan_placements(queue, gpus(), [], Settings(), NOW)) == {
        0: (0,),
        1: (1,),
        2: (2,),
        3: (3,),
    }


def test_cards_fill_by_memory_and_the_rest_waits() -> None:
    queue = [Demand(i, memory_mb=4000) for i in range(9)]

    placed = plan_placements(queue, gpus(count=2), [], Settings(), NOW)

    assert len(placed) == 8  # four 4000 MiB tasks per 16384 MiB card
    assert sorted(p.device_ids[0] for p in placed) == [0] * 4 + [1] * 4


def test_the_default_estimate_is_ninety_percent_of_a_card() -> None:
    placed = plan_placements([Demand(i) for i in range(3)], gpus(count=2), [], Settings(), NOW)

    assert [dict(p.memory_mb_by_device) for p in placed] == [{0: 14745}, {1: 14745}]


def test_running_reservations_and_foreign_memory_shrink_budgets() -> None:
    running = [Reservation(7, {0: 10000}, pid=42)]
    snapshot = gpus(count=2, foreign={1: 12000})

    assert gpu_budgets_mb(snapshot, running) == {0: 6384, 1: 4384}
    assert where(
        plan_placements([Demand(1, memory_mb=5000)], snapshot, running, Settings(), NOW)
    ) == {1: (0,)}
    assert plan_placements([Demand(1, memory_mb=7000)], snapshot, running, Settings(), NOW) == []


def test_a_task_that_does_not_fit_does_not_block_the_ones_behind_it() -> None:
    queue = [
        Demand(1, memory_mb=15000, queued_at=NOW),
        Demand(2, memory_mb=2000, queued_at=NOW),
        Demand(3, cpu=True),
    ]
    running = [Reservation(9, {0: 8000})]

    assert where(plan_placements(queue, gpus(count=1), running, Settings(), NOW)) == {
        2: (0,),
        3: (CPU_ID,),
    }


def test_a_starving_task_holds_the_gpus_but_cpu_tasks_still_start() -> None:
    queue = [
        Demand(1, memory_mb=15000, queued_at=NOW - 700),  # waited past starvation_s = 600
        Demand(2, memory_mb=2000, queued_at=NOW - 10),
        Demand(3, cpu=True, queued_at=NOW - 5),
    ]
    running = [Reservation(9, {0: 8000})]

    assert where(plan_placements(queue, gpus(count=1), running, Settings(), NOW)) == {3: (CPU_ID,)}
    # Once the running task ends, the starving task goes first.
    assert where(plan_placements(queue, gpus(count=1), [], Settings(), NOW)) == {
        1: (0,),
        3: (CPU_ID,),
    }


def test_a_starving_task_holds_one_card_and_others_keep_using_the_rest() -> None:
    running = [Reservation(8, {0: 6000}), Reservation(9, {1: 9000})]
    queue = [
        Demand(1, memory_mb=15000, queued_at=NOW - 700),
        Demand(2, memory_mb=2000, queued_at=NOW - 10),
        Demand(3, memory_mb=2000, queued_at=NOW - 10),
    ]

    placed = plan_placements(queue, gpus(count=2), running, Settings(max_tasks_per_device=2), NOW)

    # Card 0 has the most budget, so it drains for task 1; card 1 takes one more task (the cap).
    assert where(placed) == {2: (1,)}


def test_a_task_that_cannot_fit_the_enabled_cards_never_holds_the_gpus() -> None:
    queue = [
        Demand(1, memory_mb=20000, multi_gpu=True, queued_at=NOW - 7200),
        Demand(2, memory_mb=1000),
    ]

    placed = plan_placements(queue, gpus(count=2), [], Settings(devices=(0, CPU_ID)), NOW)

    assert where(placed) == {2: (0,)}


def test_queue_order_decides_between_tasks_that_both_fit_alone() -> None:
    queue = [Demand(5, memory_mb=10000), Demand(4, memory_mb=10000)]  # 5 jumped the queue

    assert where(plan_placements(queue, gpus(count=1), [], Settings(), NOW)) == {5: (0,)}


def test_max_tasks_per_device_caps_each_card_and_the_cpu() -> None:
    queue = [
        Demand(1, memory_mb=100),
        Demand(2, memory_mb=100),
        Demand(3, cpu=True),
        Demand(4, cpu=True),
    ]

    placed = plan_placements(queue, gpus(count=1), [], Settings(max_tasks_per_device=1), NOW)

    assert where(placed) == {1: (0,), 3: (CPU_ID,)}


def test_disabled_devices_are_never_used() -> None:
    queue = [Demand(1, memory_mb=100), Demand(2, cpu=True)]

    placed = plan_placements(queue, gpus(count=3), [], Settings(devices=(2,)), NOW)

    assert where(placed) == {1: (2,)}


def test_launch_delay_keeps_a_card_for_a_while_after_a_launch() -> None:
    running = [Reservation(9, {0: 100}, started_at=NOW - 2)]
    settings = Settings(launch_delay_s=5)

    assert where(
        plan_placements([Demand(1, memory_mb=100)], gpus(count=2), running, settings, NOW)
    ) == {1: (1,)}
    assert plan_placements([Demand(1, memory_mb=100)], gpus(count=1), running, settings, NOW) == []


def test_multi_card_takes_the_largest_budgets_until_the_estimate_is_covered() -> None:
    running = [Reservation(9, {0: 10000})]

    placed = plan_placements(
        [Demand(1, memory_mb=20000, multi_gpu=True)], gpus(count=3), running, Settings(), NOW
    )

    assert [dict(p.memory_mb_by_device) for p in placed] == [{1: 16384, 2: 3616}]


def test_ddp_takes_the_fewest_cards_that_each_hold_an_equal_share() -> None:
    running = [Reservation(9, {0: 10000})]

    placed = plan_placements(
        [Demand(1, memory_mb=30000, ddp=True)], gpus(count=3), running, Settings(), NOW
    )

    assert [dict(p.memory_mb_by_device) for p in placed] == [{1: 15000, 2: 15000}]


def test_a_ddp_task_sized_per_rank_never_splits_into_ranks_with_less_each() -> None:
    running = [Reservation(9, {0: 10000}), Reservation(8, {1: 10000})]
    # Two cards have 6,384 MiB free: a total of 10,000 splits into two shares of 5,000, but
    # a task whose every rank needs 10,000 waits for a card, whatever its number of ranks.
    split = Demand(1, memory_mb=10000, ddp=True)
    per_rank = Demand(2, memory_mb=10000, ddp=True, rank_mb=10000)
    two_ranks = Demand(3, memory_mb=12000, ddp=True, rank_mb=6000)

    placed = plan_placements([split], gpus(count=2), running, Settings(), NOW)
    waits = plan_placements([per_rank], gpus(count=2), running, Settings(), NOW)
    both = plan_placements([two_ranks], gpus(count=2), running, Settings(), NOW)

    assert [dict(p.memory_mb_by_device) for p in placed] == [{0: 5000, 1: 5000}]
    assert waits == []
    assert [dict(p.memory_mb_by_device) for p in both] == [{0: 6000, 1: 6000}]
    assert "needs 20000 MiB for each DDP rank, but the largest GPU has 16384 MiB" in (
        admission_error(Demand(1, memory_mb=20000, ddp=True, rank_mb=20000), gpus()) or ""
    )


def test_a_task_that_can_never_fit_is_refused_with_the_reason() -> None:
    assert "largest GPU has 16384 MiB (use -mc or -DDP to spread it)" in (
        admission_error(Demand(1, memory_mb=20000), gpus()) or ""
    )
    analyzer = admission_error(Demand(1, memory_mb=20000, one_card=True), gpus()) or ""
    assert analyzer.endswith("the largest GPU has 16384 MiB")  # it cannot spread
    assert "all 4 GPUs hold together (65536 MiB)" in (
        admission_error(Demand(1, memory_mb=70000, multi_gpu=True), gpus()) or ""
    )
    assert "no GPU" in (admission_error(Demand(1), gpus(count=0)) or "")
    assert admission_error(Demand(1, cpu=True), gpus(count=0)) is None
    assert admission_error(Demand(1, memory_mb=20000, multi_gpu=True), gpus()) is None


def cluster_cards(*nodes: tuple[str, int, int]) -> InventorySnapshot:
    """Cards of several machines: (node, count, MiB each), with ids in that order."""
    cards = []
    for node, count, total in nodes:
        for index in range(count):
            cards.append(
                GpuSnapshot(
                    len(cards), f"{node}:{index}", total, 0, None, (), node=node, index=index
                )
            )
    return InventorySnapshot(gpus=tuple(cards), source="ray", local_node="jupyter")


def test_multi_card_and_ddp_tasks_take_cards_of_one_machine_only() -> None:
    # Across machines the four cards hold 36 GiB; on one, 20 GiB (boxa) or 16 GiB (boxb).
    snapshot = cluster_cards(("boxa", 2, 10240), ("boxb", 2, 8192))
    placed = plan_placements(
        [Demand(1, memory_mb=18000, multi_gpu=True), Demand(2, memory_mb=16000, ddp=True)],
        snapshot,
        [],
        Settings(),
        NOW,
    )
    assert where(placed) == {1: (0, 1), 2: (2, 3)}
    too_big = Demand(3, memory_mb=21000, multi_gpu=True)  # more than boxa's 2 x 10240
    assert plan_placements([too_big], snapshot, [], Settings(), NOW) == []
    assert admission_error(too_big, snapshot) == (
        "needs 21000 MiB, more than the GPUs of any one machine hold together "
        "(the most: node boxa, 20480 MiB)"
    )


def test_an_analyzer_on_a_cluster_takes_only_a_card_of_the_servers_machine() -> None:
    snapshot = cluster_cards(("boxa", 1, 16384), ("jupyter", 1, 4096))
    analyzer = Demand(1, memory_mb=2000, node="jupyter")
    assert where(plan_placements([analyzer], snapshot, [], Settings(), NOW)) == {1: (1,)}
    elsewhere = cluster_cards(("boxa", 1, 16384))
    assert plan_placements([analyzer], elsewhere, [], Settings(), NOW) == []
    reason = admission_error(analyzer, elsewhere)
    assert reason is not None and "node jupyter" in reason and "CPU" in reason
    too_big = Demand(2, memory_mb=8000, node="jupyter")  # boxa's card would hold it; ours not
    assert admission_error(too_big, snapshot) == (
        "needs 8000 MiB on one GPU, but the largest GPU of this server's machine (node jupyter)"
        " has 4096 MiB"
    )


def test_a_cluster_that_cannot_be_read_refuses_nothing() -> None:
    unreachable = InventorySnapshot(gpus=(), source="ray", reason="head down", unavailable=True)
    assert admission_error(Demand(1, memory_mb=4000), unreachable) is None
    assert plan_placements([Demand(1, memory_mb=4000)], unreachable, [], Settings(), NOW) == []


def test_a_starving_multi_card_task_on_a_cluster_drains_one_machine_not_all() -> None:
    snapshot = cluster_cards(("boxa", 2, 10240), ("boxb", 2, 10240))
    busy = [Reservation(-(g + 1), {g: 6000}, started_at=NOW - 60) for g in range(4)]
    starving = Demand(1, memory_mb=18000, multi_gpu=True, queued_at=NOW - 3600)
    small = Demand(2, memory_mb=1000, queued_at=NOW)
    placed = plan_placements([starving, small], snapshot, busy, Settings(), NOW)
    assert where(placed) == {2: (2,)}  # boxa (cards 0, 1) drains for task 1; boxb keeps working


# Backfill by expected end (issue 22, item 5): two cards, each 10,000 MiB busy.
BUSY_TWO = [
    Reservation(90, {0: 10000}, expected_end=NOW + 600),  # GPU 0 frees in 10 minutes
    Reservation(91, {1: 10000}, expected_end=NOW + 60),  # GPU 1 in one
]


def test_a_big_task_holds_the_card_that_frees_soonest_and_only_what_ends_before_it_backfills() -> (
    None
):
    big = Demand(1, memory_mb=12000, queued_at=NOW)  # fits no card now, just queued
    short = Demand(2, memory_mb=3000, queued_at=NOW, expected_s=30)  # ends before GPU 1 frees
    long = Demand(3, memory_mb=5000, queued_at=NOW, expected_s=3600)
    unknown = Demand(4, memory_mb=5000, queued_at=NOW)

    placed = where(plan_placements([big, short, long, unknown], gpus(2), BUSY_TWO, Settings(), NOW))

    # GPU 1 is kept for the big task: of the others only the short one may use it; the long
    # and the unknown go to GPU 0, where one fits (6,384 free) and the other waits.
    assert placed == {2: (1,), 3: (0,)}


def test_a_task_that_fits_in_what_the_held_task_will_not_need_backfills_whatever_its_length() -> (
    None
):
    big = Demand(1, memory_mb=12000, queued_at=NOW)
    # At GPU 1's expected end it will have 16,384 free: the big one needs 12,000, 4,384 spare.
    small = Demand(2, memory_mb=4000, queued_at=NOW)
    second = Demand(3, memory_mb=2000, queued_at=NOW)  # 384 spare left: no
    busy = [Reservation(90, {0: 16000}), BUSY_TWO[1]]  # GPU 0: full, its end unknown

    placed = where(plan_placements([big, small, second], gpus(2), busy, Settings(), NOW))

    assert placed == {2: (1,)}


def test_the_held_task_starts_when_its_card_frees_as_expected() -> None:
    big = Demand(1, memory_mb=12000, queued_at=NOW)
    short = Demand(2, memory_mb=3000, queued_at=NOW, expected_s=30)
    first = where(plan_placements([big, short], gpus(2), BUSY_TWO, Settings(), NOW))
    assert first == {2: (1,)}

    # A minute later GPU 1's task and the short one have ended: the big one starts there.
    later = [BUSY_TWO[0]]
    assert where(plan_placements([big], gpus(2), later, Settings(), NOW + 60)) == {1: (1,)}


def test_with_no_expected_end_known_a_new_big_task_holds_nothing() -> None:
    busy = [Reservation(90, {0: 10000}), Reservation(91, {1: 10000})]
    big = Demand(1, memory_mb=12000, queued_at=NOW)  # not starving yet
    small = Demand(2, memory_mb=5000, queued_at=NOW)

    assert where(plan_placements([big, small], gpus(2), busy, Settings(), NOW)) == {2: (0,)}


def test_of_cards_that_free_at_the_same_time_the_held_task_takes_the_roomier_either_way() -> None:
    big = Demand(1, memory_mb=10000, queued_at=NOW)
    ends = NOW + 60
    roomy = Reservation(90, {0: 12000}, expected_end=ends)  # GPU 0: 16,384 free then
    tight = Reservation(91, {1: 13000}, expected_end=ends)  # GPU 1: 15,384, as
    stays = Reservation(92, {1: 1000})  # this one's end is unknown

    for running in ([roomy, tight, stays], [stays, tight, roomy]):
        [(_, placement, ledger)] = placement_pass([big], gpus(2), running, Settings(), NOW)
        assert placement is None and ledger.held == {0} and ledger.slack_mb == {0: 6384}
