"""Which runs are the same job for memory, and what the queue remembers of them (issue 22, item 3)."""

from __future__ import annotations

from pathlib import Path

from dlnest_jupyter.core.config import load_config
from dlnest_jupyter.core.memory_fingerprint import (
    copied_files,
    fingerprint_of,
    memory_fingerprint,
    memory_relevant,
)
from dlnest_jupyter.core.package_creation import project_root
from dlnest_jupyter.core.project import project_layout
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.core.tasks import TaskKind

from ..conftest import new_package
from ..projects import write_project


def test_only_what_changes_memory_counts_in_the_config() -> None:
    args = {
        "batch": 32,
        "model": {"width": 64, "init_seed": 3, "weights_path": "/a"},
        "description": "first try",
        "epochs": 10,
        "seed": 1,
        "_seed": 99,
        "save_root": "./Saves",
        "dataset_file_path": "./code/d.py",
        "other_file_paths": ["./x.py"],
        "checkpoint_args": {"max_ckpt_in_fast_track": 2},
    }

    assert memory_relevant(args) == {"batch": 32, "model": {"width": 64}}


def test_the_same_code_and_config_is_one_job_and_a_change_to_either_is_another(
    tmp_path: Path,
) -> None:
    package = new_package(write_project(tmp_path / "p", args={"hidden": 8}))
    args = package.args()
    again = memory_fingerprint(package, {**args, "epochs": 99, "_description": "again"})

    assert memory_fingerprint(package, args) == again
    assert memory_fingerprint(package, {**args, "hidden": 16}) != again
    runner = next(package.path.rglob("ToyRunner.py"))
    runner.write_text(runner.read_text() + "\n# changed\n")
    assert memory_fingerprint(package, args) != again


def test_the_history_keeps_the_highest_peak_and_survives_a_new_store_until_forgotten(
    tmp_path: Path,
) -> None:
    store = TaskStore(tmp_path / "q.sqlite")
    store.memory.record("job", 1, {0: 900}, 60.0, 3, ended_at=1.0)
    store.memory.record("job", 2, {0: 1200, 1: 1100}, 120.0, 3, ended_at=2.0)
    store.memory.record("other", 3, {0: 50}, None, None, ended_at=3.0)
    store.close()

    reopened = TaskStore(tmp_path / "q.sqlite")
    learned = reopened.memory.learned("job")

    assert learned is not None
    assert (learned.runs, learned.card_peak_mb, learned.total_peak_mb) == (2, 1200, 2300)
    assert learned.mean_duration_s == 90.0
    assert reopened.memory.forget("job") == 2
    assert reopened.memory.learned("job") is None and reopened.memory.learned("other") is not None


def test_packages_of_one_project_are_one_job_whatever_their_folders_seeds_and_notes(
    tmp_path: Path,
) -> None:
    config = write_project(tmp_path / "p")
    first, second = new_package(config), new_package(config, description="again", seed=3)

    assert first.args()["root_file_path"] != second.args()["root_file_path"]
    assert (first.args()["_seed"], first.args()["_description"]) != (3, "again")
    assert (second.args()["_seed"], second.args()["_description"]) == (3, "again")
    assert memory_fingerprint(first, first.args()) == memory_fingerprint(second, second.args())


def test_queued_unsized_one_card_and_ddp_runs_of_a_job_learn_what_it_used_and_no_others(
    tmp_path: Path,
) -> None:
    store = TaskStore(tmp_path / "q.sqlite")
    job = {"memory_fingerprint": "job"}
    learns = store.submit(TaskKind.TRAIN, job)
    ddp = store.submit(TaskKind.TRAIN, {**job, "ddp": True})  # each rank: what a card held
    untouched = [
        store.submit(TaskKind.TRAIN, job, memory_mb=900),  # given -m
        store.submit(TaskKind.TRAIN, {**job, "cpu": True}),
        store.submit(TaskKind.TRAIN, {**job, "multi_gpu": True}),  # its figure is per task
        store.submit(TaskKind.TRAIN, {"memory_fingerprint": "other"}),
        store.submit(TaskKind.TRAIN, {**job, "learned_mb": 5000, "learned_runs": 4}),
    ]
    running = store.submit(TaskKind.TRAIN, job)
    store.claim(running.id, {0: 100}, "me", 0, now=1.0)

    assert store.memory.teach_queued("job", 1356, 1) == 2

    assert store.get(learns.id).to_json()["memory_learned_mb"] == 1356
    assert store.get(learns.id).memory_note == "learned while queued, from a run of its job"
    assert store.get(learns.id).demand().memory_mb == 1356
    assert (store.get(ddp.id).demand().memory_mb, store.get(ddp.id).demand().rank_mb) == (
        1356,
        1356,
    )
    assert [store.get(t.id).spec for t in untouched] == [t.spec for t in untouched]
    assert "learned_mb" not in store.get(running.id).spec


def test_a_submission_hashing_the_projects_files_agrees_with_the_package_it_makes(
    tmp_path: Path,
) -> None:
    config = write_project(tmp_path / "p", args={"hidden": 8})
    loaded = load_config(config)
    layout = project_layout(loaded.args, project_root(loaded), loaded.source_of)
    package = new_package(config)

    from_sources = fingerprint_of(copied_files(layout.copies()), loaded.args)

    assert from_sources == memory_fingerprint(package, package.args())
