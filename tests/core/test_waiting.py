"""Why queued tasks wait: the sentence each gets from the pass that left it queued."""

from __future__ import annotations

from collections.abc import Sequence

from dlnest_jupyter.core.devices import CPU_ID, FakeSource, InventorySnapshot
from dlnest_jupyter.core.placement import placement_pass
from dlnest_jupyter.core.placement_values import Demand, Reservation
from dlnest_jupyter.core.settings import Settings
from dlnest_jupyter.core.waiting import WaitExplainer

NOW = 1_000_000.0


def gpus(count: int = 2, total_mb: int = 16384) -> InventorySnapshot:
    return FakeSource((total_mb,) * count).snapshot()


def waits(
    queue: Sequence[Demand],
    snapshot: InventorySnapshot,
    running: Sequence[Reservation] = (),
    settings: Settings | None = None,
    names: dict[int, str] | None = None,
) -> dict[int, str]:
    settings = settings or Settings()
    explainer = WaitExplainer(snapshot, running, settings, NOW, names)
    return {
        demand.task_id: explainer.why(demand, ledger)
        for demand, placement, ledger in placement_pass(queue, snapshot, running, settings, NOW)
        if placement is None
    }


def test_a_task_behind_an_idle_analyzer_says_who_holds_the_memory() -> None:
    analyzer = Reservation(40, {0: 14745}, started_at=NOW - 60, pid=1)

    said = waits([Demand(41, queued_at=NOW)], gpus(count=1), [analyzer], names={40: "analyzer 40"})

    assert said == {
        41: "needs 14,745 MiB; most free is 1,639 MiB on GPU 0 (analyzer 40 holds 14,745)"
    }


def test_the_tasks_a_pass_places_count_for_the_ones_behind_them() -> None:
    queue = [Demand(i, memory_mb=10000, queued_at=NOW) for i in range(3)]

    said = waits(queue, gpus(count=2))

    assert said == {2: "needs 10,000 MiB; most free is 6,384 MiB on GPU 0"}


def test_a_cpu_task_while_the_cpu_is_disabled_says_so() -> None:
    said = waits([Demand(1, cpu=True)], gpus(), settings=Settings(devices=(0, 1)))

    assert said == {1: "the CPU is disabled (changeDevices)"}


def test_every_gpu_disabled_is_said_as_such() -> None:
    said = waits([Demand(1, memory_mb=100)], gpus(), settings=Settings(devices=(CPU_ID,)))

    assert said == {1: "every GPU is disabled (changeDevices)"}


def test_tasks_per_card_at_its_limit() -> None:
    running = [Reservation(i, {i: 100}, started_at=NOW - 60) for i in range(2)]

    said = waits(
        [Demand(9, memory_mb=100, queued_at=NOW)], gpus(), running, Settings(max_tasks_per_device=1)
    )

    assert said == {9: "tasks per card at its limit (1) on each GPU it fits on"}


def test_launch_delay_says_the_delay() -> None:
    running = [Reservation(i, {i: 100}, started_at=NOW - 1) for i in range(2)]

    said = waits(
        [Demand(9, memory_mb=100, queued_at=NOW)], gpus(), running, Settings(launch_delay_s=4)
    )

    assert said == {9: "launch delay, 4 s"}


def test_a_starving_task_and_those_kept_off_its_card_say_why() -> None:
    big = Reservation(1, {0: 10000, 1: 10000}, started_at=NOW - 60)
    starving = Demand(2, memory_mb=12000, queued_at=NOW - 3600)
    small = Demand(3, memory_mb=8000, queued_at=NOW)

    said = waits(
        [starving, small], gpus(), [big], Settings(starvation_s=600, max_tasks_per_device=1)
    )

    assert said[2] == (
        "needs 12,000 MiB; most free is 6,384 MiB on GPU 0 (task 1 holds 10,000); "
        "GPU 0 kept free for task 2, which has waited longest"
    )
    assert said[3].startswith("needs 8,000 MiB")


def test_a_multi_card_task_names_the_memory_of_the_cards_together() -> None:
    said = waits(
        [Demand(1, memory_mb=20000, multi_gpu=True, queued_at=NOW)],
        gpus(),
        [Reservation(5, {0: 10000, 1: 10000}, started_at=NOW - 60)],
    )

    assert said == {1: "needs 20,000 MiB across GPUs; most free together is 12,768 MiB"}


def test_a_task_held_by_expected_ends_says_when_its_card_should_have_room() -> None:
    busy = [
        Reservation(90, {0: 10000}, expected_end=NOW + 600),
        Reservation(91, {1: 10000}, expected_end=NOW + 540),
    ]
    queue = [Demand(1, memory_mb=12000, queued_at=NOW), Demand(2, memory_mb=8000, queued_at=NOW)]

    said = waits(queue, gpus(count=2), busy)

    assert said[1] == (
        "needs 12,000 MiB; most free is 6,384 MiB on GPU 0 (task 90 holds 10,000); "
        "GPU 1 kept for task 1, expected to have room there in about 9 min"
    )
    assert said[2].startswith("needs 8,000 MiB; most free is 6,384 MiB on GPU 0")
