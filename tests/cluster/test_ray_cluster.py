"""Several machines on one Ray cluster: a real local cluster (`ray.cluster_utils.Cluster`) whose
nodes declare fake cards as logical resources, real services (real SQLite, sidecars, node agents
and `task_entry` processes on CPU torch), two of them standing for two users' servers.

One cluster serves the module (it takes seconds to start on 2 cores); each test adds the nodes
and services it changes, so the order of tests does not matter.
"""

from __future__ import annotations

import functools
import gc
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dlnest_jupyter.cluster import names
from dlnest_jupyter.core import processes
from dlnest_jupyter.core.errors import TaskError
from dlnest_jupyter.core.tasks import TaskKind, TaskRecord, TaskState
from dlnest_jupyter.service.factory import build_service
from dlnest_jupyter.service.service import DLNestService

from .. import waiting
from ..conftest import install_analyzer_kernelspec, trained_package
from ..projects import life_cycle_source, write_project
from ..service.conftest import hanging_project, wait_until_group_is_gone

ray_cluster_utils = pytest.importorskip("ray.cluster_utils")
pytestmark = [
    pytest.mark.ray,
    pytest.mark.slow,
    # Ray's node launcher leaves its /dev/null handles to the garbage collector.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]
SMALL_STORE = 80 * 2**20  # bytes of object store per node: Ray's minimum, fixed
CARDS_MB = {"boxa": [1000, 1000], "boxb": [2000]}
SLEEPS = """
def BTrain(self):
    import time
    time.sleep(1.0)
"""


def add_node(cluster: Any, node: str, totals_mb: list[int]) -> Any:
    return cluster.add_node(
        num_cpus=0, object_store_memory=SMALL_STORE, resources=names.node_resources(node, totals_mb)
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    cluster = ray_cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "include_dashboard": False,
            "object_store_memory": SMALL_STORE,
        },
    )
    for node, totals in CARDS_MB.items():
        add_node(cluster, node, totals)
    cluster.wait_for_nodes()
    yield cluster
    shut_down(cluster)


def shut_down(cluster: Any) -> None:
    """Shut a cluster down, and collect the files Ray's node launcher leaves to the garbage
    collector now, while this module's warning filters apply, not in some later test."""
    cluster.shutdown()
    gc.collect()


wait_until = functools.partial(waiting.wait_until, every_s=0.2)  # each look asks Ray


def cluster_service(cluster: Any, database: Path) -> DLNestService:
    """A service on the cluster, started, once it sees the module's cards."""
    service = build_service(database, ray_address=cluster.address, tick_interval_s=0.2)
    service.start()
    wait_until(lambda: len(service.device_source.snapshot().gpus) >= 3, what="the cluster's cards")
    return service


@pytest.fixture(scope="module")
def alice(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DLNestService]:
    service = cluster_service(cluster, tmp_path_factory.mktemp("alice") / "dlnest.sqlite")
    yield service
    end_all(service)


@pytest.fixture(scope="module")
def bob(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DLNestService]:
    service = cluster_service(cluster, tmp_path_factory.mktemp("bob") / "dlnest.sqlite")
    yield service
    end_all(service)


def end_all(service: DLNestService) -> None:
    for task in service.store.list_tasks([TaskState.RUNNING, TaskState.QUEUED, TaskState.STARTING]):
        service.delete(task.id)
    service.stop()


@pytest.fixture(scope="module")
def quick_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("quick"), epochs=1, args={"samples": 16})


def link(service: DLNestService) -> Any:
    """The service's link to the cluster (`cluster/link.py`)."""
    return service.runners.executor.cluster  # type: ignore[attr-defined]


def reservation_state(viewer: DLNestService, owner: str, task_id: int) -> str | None:
    """The state of `owner`'s placement group for `task_id`, as `viewer` sees the cluster now."""
    groups = link(viewer).view(max_age_s=0).reservations
    return next(
        (g["state"] for g in groups if g["owner"] == owner and g["task_id"] == task_id), None
    )


def running_with_child(service: DLNestService, task_id: int, marker: Path) -> TaskRecord:
    """`hanging_project`'s task once it runs and has started its child (which writes `marker`)."""
    task: TaskRecord = wait_until(
        lambda: (
            (t := service.store.get(task_id)).state is TaskState.RUNNING and marker.exists() and t
        ),
        what=f"task {task_id} and its child",
    )
    return task


def card_names(service: DLNestService, task: TaskRecord) -> list[str]:
    by_id = {i: name for name, i in service.store.card_ids().items()}
    return [by_id[d] for d in task.devices]


def test_cards_are_named_by_node_and_tasks_spread_across_nodes(
    alice: DLNestService, tmp_path: Path
) -> None:
    rows = [r for r in alice.queries.devices() if r["kind"] == "gpu"]
    assert {(r["name"], r["node"], r["memory_total_mb"]) for r in rows} >= {
        ("boxa:0", "boxa", 1000),
        ("boxa:1", "boxa", 1000),
        ("boxb:0", "boxb", 2000),
    }
    config, _ = hanging_project(tmp_path / "hangs")  # they run until deleted
    ids = [alice.submit(TaskKind.TRAIN, config_path=config, memory_mb=900).id for _ in range(3)]
    try:
        wait_until(
            lambda: all(t.state is TaskState.RUNNING for t in alice.store.get_many(ids)),
            what="three tasks to run",
        )
        tasks = alice.store.get_many(ids)
        placed = sorted(name for t in tasks for name in card_names(alice, t))
        assert placed == ["boxa:0", "boxa:1", "boxb:0"]  # fewest tasks per card, on both nodes
    finally:
        for task_id in ids:
            alice.delete(task_id)


def test_two_users_servers_never_reserve_more_of_a_card_than_it_has(
    alice: DLNestService, bob: DLNestService, tmp_path: Path
) -> None:
    """20 tasks each (a second long), submitted at the same moment; the live processes'
    reservations on each card are sampled all along, from both queues."""
    config = write_project(
        tmp_path / "sleepy", epochs=1, args={"samples": 16}, life_cycle=life_cycle_source(SLEEPS)
    )
    totals = {f"{node}:{i}": mb for node, sizes in CARDS_MB.items() for i, mb in enumerate(sizes)}
    peak: dict[str, int] = {}
    users_seen: dict[str, set[str]] = {}
    stop_sampling = threading.Event()

    def sample() -> None:
        while not stop_sampling.is_set():
            live: dict[str, int] = {}
            for user, service in (("alice", alice), ("bob", bob)):
                for task in service.store.running():
                    if task.pid is not None and processes.is_alive(task.pid, task.pid_start_time):
                        for name, device in zip(
                            card_names(service, task), task.devices, strict=True
                        ):
                            live[name] = live.get(name, 0) + task.reserved_mb[device]
                            users_seen.setdefault(name, set()).add(user)
            for name, used in live.items():
                peak[name] = max(peak.get(name, 0), used)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    barrier = threading.Barrier(2)
    submitted: dict[str, list[int]] = {}

    def submit(name: str, service: DLNestService) -> None:
        barrier.wait()
        submitted[name] = [
            service.submit(TaskKind.TRAIN, config_path=config, memory_mb=600).id for _ in range(20)
        ]

    threads = [threading.Thread(target=submit, args=p) for p in (("alice", alice), ("bob", bob))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        for name, service in (("alice", alice), ("bob", bob)):
            wait_until(
                lambda s=service, n=name: all(
                    t.state is TaskState.SUCCEEDED for t in s.store.get_many(submitted[n])
                ),
                timeout_s=300,
                what=f"{name}'s 20 tasks",
            )
    finally:
        stop_sampling.set()
        sampler.join()
    assert peak, "no task was ever seen running"
    for name, used in peak.items():
        assert used <= totals[name], (
            f"{name}: {used} MiB reserved by live tasks, {totals[name]} MiB on the card"
        )
    # The cards were full (boxb:0 held three 600 MiB tasks at once, the 1000 MiB cards one),
    # and the users shared them.
    assert peak == {"boxa:0": 600, "boxa:1": 600, "boxb:0": 1800}
    assert any(users == {"alice", "bob"} for users in users_seen.values()), users_seen
    for name, service in (("alice", alice), ("bob", bob)):
        for task in service.store.get_many(submitted[name]):
            assert task.package_path is not None
            launches = [row for row in _launches(task) if row.get("pid") is not None]
            assert len(launches) == 1, f"{name}'s task {task.id} launched {len(launches)} times"


def _launches(task: TaskRecord) -> list[dict[str, Any]]:
    from dlnest_jupyter.core.package import SavePackage

    assert task.package_path is not None
    return SavePackage(Path(task.package_path)).launches()


def test_del_of_a_task_on_another_node_stops_its_whole_group_and_frees_the_card(
    alice: DLNestService, tmp_path: Path
) -> None:
    config, marker = hanging_project(tmp_path / "hangs")
    task = alice.submit(
        TaskKind.TRAIN, config_path=config, memory_mb=1500
    )  # only boxb:0 holds 1500 MiB
    running = running_with_child(alice, task.id, marker)
    assert card_names(alice, running) == ["boxb:0"]
    child = int(marker.read_text())
    child_started = processes.start_time(child)
    assert running.pid is not None and processes.is_alive(child, child_started)

    alice.delete(task.id)

    wait_until_group_is_gone(running.pid)
    assert not processes.is_alive(child, child_started)
    wait_until(
        lambda: reservation_state(alice, link(alice).owner, task.id) is None,
        what="the task's reservation to be released",
    )
    assert alice.store.get(task.id).state is TaskState.CANCELLED


def test_a_lost_node_fails_its_tasks_kills_them_and_leaves_the_inventory(
    cluster: Any, alice: DLNestService, tmp_path: Path
) -> None:
    node = add_node(cluster, "boxc", [4000])
    wait_until(
        lambda: any(r["name"] == "boxc:0" for r in alice.queries.devices()), what="boxc's card"
    )
    config, marker = hanging_project(tmp_path / "hangs")
    task = alice.submit(
        TaskKind.TRAIN, config_path=config, memory_mb=3000
    )  # only boxc:0 holds 3000 MiB
    running = running_with_child(alice, task.id, marker)
    assert card_names(alice, running) == ["boxc:0"] and running.pid is not None
    waiting = alice.submit(
        TaskKind.TRAIN, config_path=config, memory_mb=3000
    )  # for boxc:0 too: it waits

    cluster.remove_node(node)

    ended = wait_until(
        lambda: (t := alice.store.get(task.id)).state is TaskState.FAILED and t, what="the failure"
    )
    assert ended.error is not None and ended.error.startswith("node boxc lost"), ended.error
    wait_until_group_is_gone(running.pid)  # its watcher outlives the node's workers
    wait_until(
        lambda: not any(r["name"] == "boxc:0" for r in alice.queries.devices()),
        what="boxc:0 to leave",
    )
    # It may have been placed on boxc:0 from a view taken before the node left: then its
    # launch finds the node gone and it is queued again, to wait for a card that can hold it.
    wait_until(lambda: alice.store.get(waiting.id).state is TaskState.QUEUED, what="requeue")
    alice.tick()
    assert alice.store.get(waiting.id).state is TaskState.QUEUED
    alice.delete(waiting.id)


def test_a_restarted_service_adopts_its_tasks_and_a_closed_one_holds_no_card_for_ended_ones(
    cluster: Any, alice: DLNestService, tmp_path: Path
) -> None:
    database = tmp_path / "dlnest.sqlite"
    config, marker = hanging_project(tmp_path / "hangs")
    short = write_project(tmp_path / "short", epochs=1, life_cycle=life_cycle_source(SLEEPS))
    first = cluster_service(cluster, database)
    owner = link(first).owner
    task = first.submit(TaskKind.TRAIN, config_path=config, memory_mb=900)
    ending = first.submit(TaskKind.TRAIN, config_path=short, memory_mb=900)
    running = running_with_child(first, task.id, marker)
    # On a cluster a submission answers before its launch: the scheduler's thread launches it.
    wait_until(
        lambda: first.store.get(ending.id).state is TaskState.RUNNING, what="the second launch"
    )
    first.stop()  # the server goes; its tasks run on, and one of them ends while it is away
    assert running.pid is not None and processes.is_alive(running.pid, running.pid_start_time)

    wait_until(
        lambda: reservation_state(alice, owner, ending.id) is None,
        what="the ended task's card to be freed",
    )
    assert reservation_state(alice, owner, task.id) == "CREATED"  # the running one keeps it

    second = cluster_service(cluster, database)
    try:
        for _ in range(5):
            second.tick()
        again = second.store.get(task.id)
        assert again.state is TaskState.RUNNING and again.pid == running.pid
        assert processes.is_alive(running.pid, running.pid_start_time)
        wait_until(
            lambda: second.store.get(ending.id).state is TaskState.SUCCEEDED,
            what="the task that ended while no server ran",
        )
        second.delete(task.id)
        wait_until_group_is_gone(running.pid)
    finally:
        end_all(second)


def test_with_the_head_down_the_service_answers_queues_and_reconnects(
    tmp_path: Path, quick_config: Path
) -> None:
    """A head that is not up yet, then up, then stopped while the service is connected, then
    started again: the service answers throughout, queues, and runs the queue on each return."""
    import socket

    with socket.socket() as probe:  # a port where no head listens yet
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    service = build_service(
        tmp_path / "dlnest.sqlite", ray_address=f"127.0.0.1:{port}", tick_interval_s=0.2
    )
    service.start()
    head: Any = None

    def start_head() -> Any:
        cluster = ray_cluster_utils.Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 0, "include_dashboard": False, "object_store_memory": SMALL_STORE,
                "gcs_server_port": port,
            },
        )  # fmt: skip
        add_node(cluster, "boxd", [1000])
        return cluster

    def queued_task_runs_once_the_head_is_up() -> None:
        nonlocal head
        rows = service.queries.devices()
        assert [r["kind"] for r in rows] == ["cpu"]
        assert "Ray cluster" in rows[0]["reason"]
        task = service.submit(
            TaskKind.TRAIN, config_path=quick_config, memory_mb=600
        )  # queued, not refused
        service.tick()
        assert service.store.get(task.id).state is TaskState.QUEUED
        head = start_head()
        wait_until(
            lambda: service.store.get(task.id).state is TaskState.SUCCEEDED,
            what="the queued task to run once the head is up",
        )
        assert card_names(service, service.store.get(task.id)) == ["boxd:0"]

    try:
        queued_task_runs_once_the_head_is_up()
        shut_down(head)  # the head goes while the service is connected to it
        head = None
        wait_until(
            lambda: [r["kind"] for r in service.queries.devices()] == ["cpu"],
            what="the service to say the cluster is gone",
        )
        queued_task_runs_once_the_head_is_up()
    finally:
        end_all(service)
        if head is not None:
            shut_down(head)


def test_each_node_reports_its_cards_use_and_memory_used_by_others_is_not_booked(
    cluster: Any, alice: DLNestService, quick_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node's agent reads its own inventory (here the fake one its raylet was started with):
    3000 MiB of a 4000 MiB card used by a process that is no dlnest task leaves 1000 free."""
    monkeypatch.setenv("DLNEST_FAKE_GPUS", "1x4000")
    monkeypatch.setenv("DLNEST_FAKE_GPUS_FOREIGN_MB", "0=3000")
    node = add_node(cluster, "boxe", [4000])  # the raylet, and so the agent, inherit the env
    monkeypatch.undo()
    try:
        row = wait_until(
            lambda: next(
                (
                    r
                    for r in alice.queries.devices()
                    if r.get("node") == "boxe" and r["memory_used_mb"]
                ),
                None,
            ),
            what="boxe's inventory",
        )
        assert row["name"] == "boxe:0 Fake GPU 0"
        assert (row["memory_total_mb"], row["memory_used_mb"], row["memory_free_mb"]) == (
            4000,
            3000,
            1000,
        )
        alice.update_settings({"devices": [row["id"]]})
        task = alice.submit(TaskKind.TRAIN, config_path=quick_config, memory_mb=2000)
        for _ in range(5):
            alice.tick()
        assert alice.store.get(task.id).state is TaskState.QUEUED  # 2000 > the 1000 left
        alice.delete(task.id)
    finally:
        alice.update_settings({"devices": None})
        cluster.remove_node(node)


def test_an_analyzer_runs_on_the_servers_machine_with_its_card_reserved_in_ray(
    cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This server's machine is node boxa here: its analyzer kernel gets a boxa card, reserved
    in Ray like a task's, and released when the analyzer is deleted."""
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DLNEST_NODE_NAME", "boxa")
    install_analyzer_kernelspec()
    package = trained_package(tmp_path, {"ident": "def experience(self):\n    return 42\n"})
    service = build_service(
        tmp_path / "dlnest.sqlite", ray_address=cluster.address, tick_interval_s=0.2, analyzers=True
    )
    service.start()
    try:
        wait_until(lambda: len(service.device_source.snapshot().gpus) >= 3, what="the cards")
        task = service.submit(TaskKind.ANALYZE, record_path=package, memory_mb=900)
        running = wait_until(
            lambda: (t := service.store.get(task.id)).state is TaskState.RUNNING and t,
            what="the analyzer's kernel",
        )
        (card,) = card_names(service, running)
        assert card.startswith("boxa:")
        # The kernel sees its card by its index on this machine (queued while the model loads).
        experiment = service.experiments.run_code(
            task.id, "import os\nos.environ['CUDA_VISIBLE_DEVICES']"
        )
        done = wait_until(
            lambda: (
                (e := service.experiments.get(task.id, experiment.id).to_json())["state"]
                in ("succeeded", "failed")
                and e
            ),
            what="the experiment",
        )
        assert done["result"] == repr(card.split(":")[1]), done

        owner = link(service).owner
        assert reservation_state(service, owner, task.id) == "CREATED"
        service.delete(task.id)
        wait_until(
            lambda: reservation_state(service, owner, task.id) is None,
            what="the analyzer's reservation to be released",
        )

        # A machine with no card in the cluster: a GPU analyzer is refused, saying why.
        link(service).local_node = "jupyter-host"
        with pytest.raises(
            TaskError, match=r"node jupyter-host\), which has no GPU in the cluster"
        ):
            service.submit(TaskKind.ANALYZE, record_path=package, memory_mb=900)
    finally:
        end_all(service)


def test_a_node_that_cannot_see_the_package_fails_the_task_saying_so(
    alice: DLNestService, quick_config: Path
) -> None:
    """As on a node without the lab's shared filesystem: the package is not there."""
    alice.update_settings({"devices": [-1]})  # hold every card back while the package goes
    try:
        task = alice.submit(TaskKind.TRAIN, config_path=quick_config, memory_mb=600)
        assert task.package_path is not None and alice.store.get(task.id).state is TaskState.QUEUED
        shutil.rmtree(task.package_path)
    finally:
        alice.update_settings({"devices": None})
    failed = wait_until(
        lambda: (t := alice.store.get(task.id)).state is TaskState.FAILED and t, what="the failure"
    )
    assert failed.error is not None
    assert f"the save package {task.package_path} is not visible on node box" in failed.error
    assert "filesystem every node mounts" in failed.error
