from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch

from dlnest_jupyter.core import processes
from dlnest_jupyter.core.devices import FakeSource
from dlnest_jupyter.core.errors import (
    CheckpointNotFoundError,
    ConfigError,
    RequestError,
    TaskError,
    TaskStateError,
)
from dlnest_jupyter.core.package import SavePackage
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.core.tasks import TaskKind, TaskState
from dlnest_jupyter.service import submissions
from dlnest_jupyter.service.service import DLNestService

from ..conftest import new_package, train_in_process
from ..projects import failing_dataset, write_project
from ..recording_executor import RecordingExecutor
from ..waiting import wait_until
from .conftest import hanging_project, wait_for, wait_until_group_is_gone


def test_a_training_task_on_a_fake_gpu_runs_to_succeeded(
    service: DLNestService, tmp_path: Path
) -> None:
    config = write_project(tmp_path / "p", epochs=2)

    task = service.submit(TaskKind.TRAIN, config_path=config, memory_mb=4000, description="toy")

    assert (task.state, task.devices) == (
        TaskState.RUNNING,
        (0,),
    )  # placed by the submission itself
    gpu0 = service.queries.devices()[0]
    assert (gpu0["memory_reserved_mb"], gpu0["task_ids"], gpu0["memory_free_mb"]) == (
        4000,
        [task.id],
        12384,
    )
    wait_for(service, lambda: service.queries.task(task.id).state.terminal)
    done = service.queries.task(task.id)
    assert (done.state, done.exit_code, done.error) == (TaskState.SUCCEEDED, 0, None)
    assert done.progress["epoch"] == 2
    package = SavePackage.open(done.package_path)  # type: ignore[arg-type]
    assert package.state().head == 1
    # Fake GPU 0: with no CUDA the task says so and runs on the CPU; with CUDA it runs there.
    warned = "on pretend GPU 0 (DLNEST_FAKE_GPUS): training on the CPU" in (
        package.output_path().read_text()
    )
    assert warned is not torch.cuda.is_available()
    assert service.queries.devices()[0]["memory_reserved_mb"] == 0


def test_a_run_on_a_pretend_card_reports_its_peak_memory_by_card_and_in_its_row(
    service: DLNestService, tmp_path: Path
) -> None:
    config = write_project(tmp_path / "p", epochs=2, args={"fake_gpu_memory_mb": 1234})

    task = service.submit(TaskKind.TRAIN, config_path=config)
    assert task.to_json()["memory_source"] == "default"  # no -m: 90% of the card
    wait_for(service, lambda: service.queries.task(task.id).state.terminal)

    done = service.queries.task(task.id)
    assert done.state is TaskState.SUCCEEDED
    assert done.progress["peak_memory_mb"] == {"0": 1234}  # GPU 0, where it was placed
    assert done.to_json()["peak_memory_mb"] == 1234
    given = service.submit(TaskKind.TRAIN, config_path=config, memory_mb=3000, cpu=True)
    assert given.to_json()["memory_source"] == "given"
    wait_for(service, lambda: service.queries.task(given.id).state.terminal)
    assert service.queries.task(given.id).to_json()["peak_memory_mb"] is None  # the CPU's


def test_a_default_reservation_shrinks_to_the_measured_peak_and_lets_the_next_run_share_the_card(
    service: DLNestService, tmp_path: Path
) -> None:
    service.update_settings({"devices": [0], "memory_warmup_steps": 5})
    config = write_project(tmp_path / "p", epochs=100_000, args={"fake_gpu_memory_mb": 1000})
    first = service.submit(TaskKind.TRAIN, config_path=config)
    second = service.submit(TaskKind.TRAIN, config_path=config)
    assert first.reserved_mb == {0: 14745}  # 90% of the card: the second cannot fit beside it
    assert second.state is TaskState.QUEUED

    wait_for(service, lambda: service.queries.task(second.id).state is TaskState.RUNNING)

    shrunk = service.queries.task(first.id).to_json()
    assert shrunk["reserved_mb"] == 1000 + 100 + 256  # its peak, + 10%, + 256 MiB
    assert shrunk["memory_note"] == (
        "shrunk after warm-up to 1,356 MiB on GPU 0 (its peak + 10% + 256 MiB)"
    )
    assert shrunk["memory_over"] is False and shrunk["peak_memory_mb"] == 1000
    # The second learned from the first once it had warmed up, not only once it ended.
    learned = service.queries.task(second.id).to_json()
    assert (learned["memory_source"], learned["memory_learned_runs"]) == ("learned", 1)
    assert learned["reserved_mb"] == 1356 and shrunk["state"] == "running"
    # The card shows what both use of what they reserved, once each has said.
    wait_for(service, lambda: service.queries.devices()[0]["memory_measured_mb"] == 2000)


def test_a_run_using_more_than_it_reserved_has_the_ledger_raised_and_is_flagged(
    service: DLNestService, tmp_path: Path
) -> None:
    config = write_project(tmp_path / "p", epochs=100_000, args={"fake_gpu_memory_mb": 3000})
    task = service.submit(TaskKind.TRAIN, config_path=config, memory_mb=1000)

    wait_for(service, lambda: service.queries.task(task.id).memory_over)

    raised = service.queries.task(task.id).to_json()
    assert (raised["reserved_mb"], raised["memory_over"]) == (3000, True)
    assert "uses 3,000 MiB on GPU 0, reserved 1,000" in raised["memory_note"]
    assert service.queries.devices()[0]["memory_reserved_mb"] == 3000  # what placement counts


def test_the_next_runs_of_a_job_reserve_what_it_used_and_share_a_card_until_it_is_forgotten(
    service: DLNestService, tmp_path: Path
) -> None:
    service.update_settings({"devices": [0]})
    config = write_project(tmp_path / "p", epochs=1, args={"fake_gpu_memory_mb": 1000})
    first = service.submit(TaskKind.TRAIN, config_path=config)
    wait_for(service, lambda: service.queries.task(first.id).state.terminal)

    # Three more runs of the same job reserve its peak + margin each: all share GPU 0 at once.
    longer = write_project(tmp_path / "p", epochs=100_000, args={"fake_gpu_memory_mb": 1000})
    assert longer == config  # the same project: only the epoch count changed
    nexts = [service.submit(TaskKind.TRAIN, config_path=config) for _ in range(3)]
    rows = [service.queries.task(t.id).to_json() for t in nexts]
    assert [r["state"] for r in rows] == ["running"] * 3
    assert [r["reserved_mb"] for r in rows] == [1356] * 3
    assert {(r["memory_source"], r["memory_learned_runs"]) for r in rows} == {("learned", 1)}
    # A changed model config is another job: no history, so the default.
    changed = write_project(
        tmp_path / "q", epochs=1, args={"fake_gpu_memory_mb": 1000, "hidden": 3}
    )
    other = service.submit(TaskKind.TRAIN, config_path=changed)
    assert other.to_json()["memory_source"] == "default"
    # The history is the queue's: another service over the same store learns it too.
    restarted = DLNestService(
        TaskStore(service.store.path), FakeSource((16384, 16384)), RecordingExecutor()
    )
    again = restarted.submit(TaskKind.TRAIN, config_path=config)
    assert again.to_json()["memory_learned_mb"] == 1356
    for task in [*nexts, other]:
        service.delete(task.id)

    forgotten = submissions.forget_memory(service.intake, first.id)

    assert forgotten["forgotten_runs"] == 1
    fresh = service.submit(TaskKind.TRAIN, config_path=config, cpu=False)
    assert fresh.to_json()["memory_source"] == "default"
    restarted.stop()
    service.delete(again.id)  # the leader launched it: its executor stops it
    service.delete(fresh.id)


def test_with_the_guard_a_run_over_its_share_fails_itself_as_out_of_memory_and_is_retried_with_more(
    service: DLNestService, tmp_path: Path
) -> None:
    service.update_settings({"guard_memory": True, "oom_retries": 1})
    config = write_project(tmp_path / "p", epochs=1, args={"fake_gpu_memory_mb": 3000})
    task = service.submit(TaskKind.TRAIN, config_path=config, memory_mb=1000, description="big")
    wait_for(service, lambda: service.queries.task(task.id).state.terminal)

    failed = service.queries.task(task.id)
    assert failed.state is TaskState.FAILED
    assert failed.error == "out of GPU memory (peak 3,000 MiB, reserved 1,000 MiB)"
    # It took no step: its progress holds what it used, and no "epoch 0 step 0".
    assert (failed.progress["epoch"], failed.peak_memory_mb) == (None, 3000)
    [retry] = [t for t in service.queries.tasks() if t.id != task.id]
    assert retry.description == f"big (retry of task {task.id}: out of GPU memory)"
    assert retry.to_json()["memory_learned_mb"] == 3000 + 300 + 256
    wait_for(service, lambda: service.queries.task(retry.id).state.terminal)
    assert service.queries.task(retry.id).state is TaskState.SUCCEEDED  # under its new cap
    assert len(service.queries.tasks()) == 2  # one retry, no more


def test_a_big_task_holds_the_card_by_the_running_tasks_expected_end_and_small_ones_backfill(
    service: DLNestService, tmp_path: Path
) -> None:
    service.update_settings({"devices": [0]})
    long = write_project(tmp_path / "long", epochs=100_000)
    running = service.submit(TaskKind.TRAIN, config_path=long, memory_mb=10000)
    # Once it has run a whole epoch it knows its pace: its end is hours away.
    wait_for(service, lambda: service.queries.task(running.id).progress.get("epoch_s") is not None)
    quick = write_project(tmp_path / "quick", epochs=100_000)

    big = service.submit(TaskKind.TRAIN, config_path=quick, memory_mb=12000)
    small = service.submit(TaskKind.TRAIN, config_path=quick, memory_mb=3000)
    another = service.submit(TaskKind.TRAIN, config_path=quick, memory_mb=3000)

    held = service.queries.task(big.id).to_json()["waiting_for"]
    assert held.startswith("needs 12,000 MiB; most free is 3,384 MiB on GPU 0 (task")
    assert f"GPU 0 kept for task {big.id}, expected to have room there in about" in held
    # When GPU 0 frees, the big task needs 12,000 of its 16,384: 4,384 it will not need.
    assert service.queries.task(small.id).state is TaskState.RUNNING
    assert service.queries.task(another.id).state is TaskState.QUEUED  # 1,384 spare left


@pytest.mark.skipif(torch.cuda.is_available(), reason="DDP over pretend cards 0 and 1 runs on gloo")
def test_the_guard_caps_each_ddp_rank_and_a_rank_out_of_memory_is_retried_with_as_many_ranks(
    service: DLNestService, tmp_path: Path
) -> None:
    service.update_settings({"guard_memory": True, "oom_retries": 1})
    config = write_project(tmp_path / "p", epochs=1, args={"fake_gpu_memory_mb": 12000})

    # 20,000 MiB: more than a card, so 10,000 on each of two, capped at 11,256; each rank
    # pretends to use 12,000.
    task = service.submit(TaskKind.TRAIN, config_path=config, memory_mb=20000, ddp=True)
    wait_for(service, lambda: service.queries.task(task.id).state.terminal)

    failed = service.queries.task(task.id)
    assert failed.devices == (0, 1)
    assert failed.error == "out of GPU memory (peak 24,000 MiB, reserved 20,000 MiB)"
    # Its retry reserves on each of two ranks what the busiest reached, plus the margin.
    wait_for(service, lambda: len(service.queries.tasks()) == 2)
    retry = next(t for t in service.queries.tasks() if t.id != task.id)
    wait_for(service, lambda: service.queries.task(retry.id).state.terminal)
    done = service.queries.task(retry.id)
    assert (done.state, done.devices) == (TaskState.SUCCEEDED, (0, 1))
    assert done.to_json()["memory_learned_mb"] == 12000 + 1200 + 256
    assert (
        f"queued again as task {retry.id}, reserving 13,456 MiB for each of 2 DDP ranks"
        in (service.log.read()[1])
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="DDP over pretend cards 0 and 1 runs on gloo")
def test_a_ddp_run_without_m_reserves_for_its_rank_what_a_rank_of_its_job_used(
    service: DLNestService, tmp_path: Path
) -> None:
    config = write_project(tmp_path / "p", epochs=1, args={"fake_gpu_memory_mb": 1234})
    first = service.submit(TaskKind.TRAIN, config_path=config, memory_mb=20000, ddp=True)
    wait_for(service, lambda: service.queries.task(first.id).state.terminal)
    assert service.queries.task(first.id).to_json()["peak_memory_mb"] == 2 * 1234  # two ranks

    again = service.submit(TaskKind.TRAIN, config_path=config, ddp=True)

    # Not the two ranks' 2,468 MiB shared out, nor 90% of a card: one rank, as a -DDP run
    # without -m has, reserving what a rank used plus the margin.
    assert again.to_json()["memory_source"] == "learned"
    assert again.to_json()["memory_learned_mb"] == 1234 + 124 + 256
    assert list(again.reserved_mb.values()) == [1614]
    wait_for(service, lambda: service.queries.task(again.id).state.terminal)
    assert service.queries.task(again.id).state is TaskState.SUCCEEDED


def test_a_launch_clears_the_last_runs_figures_so_they_are_never_read_as_its_own(
    tmp_path: Path,
) -> None:
    package = new_package(write_project(tmp_path / "p", epochs=1))
    assert train_in_process(package) == 0
    old = {"epoch": 2, "epoch_s": 1.0, "steps": 999, "peak_memory_mb": {"0": 10}}
    (package.path / "_progress.json").write_text(json.dumps(old))
    quiet = DLNestService(
        TaskStore(tmp_path / "q.sqlite"), FakeSource((16384,)), RecordingExecutor()
    )

    task = quiet.submit(TaskKind.CONTINUE, record_path=package.path)
    quiet.tick()

    assert task.devices == (0,) and not (package.path / "_progress.json").exists()
    assert quiet.queries.task(task.id).reserved_mb == {0: 14745}  # not shrunk by the old run
    quiet.stop()


def test_no_save_runs_queued_together_each_get_a_scratch_folder_of_their_own(
    tmp_path: Path,
) -> None:
    quiet = DLNestService(
        TaskStore(tmp_path / "q.sqlite"), FakeSource((16384,)), RecordingExecutor()
    )
    config = write_project(tmp_path / "p", epochs=1)

    first = quiet.submit(TaskKind.TRAIN, config_path=config, no_save=True, memory_mb=100)
    second = quiet.submit(TaskKind.TRAIN, config_path=config, no_save=True, memory_mb=100)
    quiet.delete(first.id)
    third = quiet.submit(TaskKind.TRAIN, config_path=config, no_save=True, memory_mb=100)

    saves = tmp_path / "p" / "Saves"
    assert [Path(t.package_path or "") for t in (first, second, third)] == [
        saves / "NOSAVE",
        saves / "NOSAVE_2",  # not the first's, which was running: cleared, it would be lost
        saves / "NOSAVE",  # the first's again, now that no task uses it
    ]
    assert SavePackage.open(second.package_path)  # type: ignore[arg-type]
    quiet.stop()


def test_a_run_out_of_memory_that_could_never_fit_with_more_is_not_queued_again(
    service: DLNestService, tmp_path: Path
) -> None:
    service.update_settings({"guard_memory": True, "devices": [0]})
    config = write_project(tmp_path / "p", epochs=1, args={"fake_gpu_memory_mb": 17000})
    task = service.submit(TaskKind.TRAIN, config_path=config, memory_mb=15000)
    wait_for(service, lambda: service.queries.task(task.id).state.terminal)

    assert service.queries.task(task.id).error == (
        "out of GPU memory (peak 17,000 MiB, reserved 15,000 MiB)"
    )
    assert [t.id for t in service.queries.tasks()] == [task.id]
    assert "not queued again: needs 18956 MiB on one GPU" in service.log.read()[1]


def test_a_crashing_task_fails_with_its_error_and_output_tail(
    service: DLNestService, tmp_path: Path
) -> None:
    broken = failing_dataset("RuntimeError('disk on fire')")
    task = service.submit(
        TaskKind.TRAIN, config_path=write_project(tmp_path / "p", dataset=broken), cpu=True
    )

    wait_for(service, lambda: service.queries.task(task.id).state.terminal)

    failed = service.queries.task(task.id)
    assert (failed.state, failed.exit_code) == (TaskState.FAILED, 1)
    assert failed.error == "exit code 1: RuntimeError: disk on fire"
    assert failed.output_tail and "Traceback" in failed.output_tail


def test_bad_submissions_are_refused_and_leave_nothing_behind(
    service: DLNestService, tmp_path: Path
) -> None:
    config = write_project(tmp_path / "p", args={"dataset_name": "Nope"})
    with pytest.raises(ConfigError, match="dataset_name is 'Nope'"):
        service.submit(TaskKind.TRAIN, config_path=config)
    good = write_project(tmp_path / "q")
    with pytest.raises(
        TaskError, match="needs 20000 MiB on one GPU, but the largest GPU has 16384 MiB"
    ):
        service.submit(TaskKind.TRAIN, config_path=good, memory_mb=20000)

    wordy = write_project(tmp_path / "r", args={"epochs": "eight"})
    with pytest.raises(ConfigError, match="epochs is 'eight' \\(str\\); it must be a number"):
        service.submit(TaskKind.TRAIN, config_path=wordy)

    assert service.queries.tasks() == []
    assert not any((tmp_path / name / "Saves").exists() for name in ("p", "q", "r"))


def test_delete_stops_the_whole_process_group_and_frees_the_card_at_once(
    service: DLNestService, tmp_path: Path
) -> None:
    config, marker = hanging_project(tmp_path / "p")
    task = service.submit(TaskKind.TRAIN, config_path=config, memory_mb=4000)
    wait_for(service, marker.exists)
    running = service.queries.task(task.id)
    child_pid = int(marker.read_text())
    assert set(processes.group_members(running.pid)) >= {running.pid, child_pid}  # type: ignore[arg-type]

    cancelled = service.delete(task.id)

    assert cancelled.state is TaskState.CANCELLED
    assert service.queries.devices()[0]["memory_reserved_mb"] == 0
    wait_until_group_is_gone(running.pid)  # type: ignore[arg-type]
    with pytest.raises(ProcessLookupError):
        os.kill(child_pid, 0)
    said = service.queries.output(task.id)[1]  # stopped on purpose: a line, not a traceback
    assert "dlnest: stopped (SIGTERM: the task was deleted" in said and "Traceback" not in said
    with pytest.raises(TaskStateError, match=r"has already ended \(cancelled\); nothing to stop"):
        service.delete(task.id)


def test_output_is_read_from_an_offset(service: DLNestService, tmp_path: Path) -> None:
    task = service.submit(
        TaskKind.TRAIN, config_path=write_project(tmp_path / "p", epochs=1), cpu=True
    )
    wait_for(service, lambda: service.queries.task(task.id).state.terminal)

    end, text = service.queries.output(task.id)
    again, rest = service.queries.output(task.id, offset=end)

    assert "epoch 1 loss" in text and (again, rest) == (end, "")
    assert service.queries.output(task.id, offset=end - 5)[1] == text[-5:]


def test_settings_change_at_run_time_and_persist(service: DLNestService) -> None:
    changed = service.update_settings({"devices": [1, -1], "max_tasks_per_device": 2})

    assert changed.devices == (1, -1) and service.queries.settings() == changed
    assert [d["enabled"] for d in service.queries.devices()] == [False, True, True]
    # A card this machine lacks would leave every GPU task waiting for ever: refused.
    with pytest.raises(
        RequestError, match=r"devices: no device 5, 7 here; the devices are -1, 0, 1"
    ):
        service.update_settings({"devices": [0, 5, 7]})
    assert service.update_settings({"devices": [0, 0]}).devices == (0,)


def test_continue_of_a_package_in_use_is_refused(service: DLNestService, tmp_path: Path) -> None:
    task = service.submit(
        TaskKind.TRAIN, config_path=write_project(tmp_path / "p", epochs=1), cpu=True
    )
    wait_for(service, lambda: service.queries.task(task.id).state.terminal)
    follow_up = service.submit(TaskKind.CONTINUE, record_path=task.package_path, cpu=True)  # type: ignore[arg-type]

    with pytest.raises(TaskError, match=f"task {follow_up.id} already uses this package"):
        service.submit(TaskKind.CONTINUE, record_path=task.package_path, cpu=True)  # type: ignore[arg-type]
    wait_for(service, lambda: service.queries.task(follow_up.id).state.terminal)
    assert service.queries.task(follow_up.id).state is TaskState.SUCCEEDED
    assert SavePackage.open(task.package_path).state().head == 1  # type: ignore[arg-type]


def test_checkpoints_are_listed_by_branch_and_a_gone_one_is_refused_by_id(
    service: DLNestService, tmp_path: Path
) -> None:
    keep_two = {"checkpoint_args": {"max_ckpt_in_fast_track": 2, "max_ckpt_in_consistent_track": 0}}
    first = service.submit(
        TaskKind.TRAIN, config_path=write_project(tmp_path / "p", epochs=3, args=keep_two), cpu=True
    )
    wait_for(
        service, lambda: service.queries.task(first.id).state.terminal
    )  # ids 0..2, keeps 1 and 2
    fork = service.submit(
        TaskKind.CONTINUE, record_path=first.package_path, checkpoint_id=1, cpu=True
    )  # type: ignore[arg-type]
    wait_for(
        service, lambda: service.queries.task(fork.id).state.terminal
    )  # epoch 3 again, as id 3

    listed = service.queries.checkpoints(fork.id)

    assert listed["head"] == 3
    assert [(c["id"], c["epoch"], c["branch"]) for c in listed["checkpoints"]] == [
        (1, 2, 0),
        (2, 3, 0),
        (3, 3, 1),
    ]
    assert listed["branches"] == [
        {
            "id": 0,
            "parent": None,
            "head": 2,
            "fork_checkpoint": None,
            "fork_epoch": None,
            "overrides": {},
        },
        {"id": 1, "parent": 0, "head": 3, "fork_checkpoint": 1, "fork_epoch": 2, "overrides": {}},
    ]
    with pytest.raises(
        CheckpointNotFoundError,
        match=r"no checkpoint 0 in this package \(checkpoints held: 1, 2, 3\)",
    ):
        service.submit(TaskKind.CONTINUE, record_path=first.package_path, checkpoint_id=0, cpu=True)  # type: ignore[arg-type]


def test_a_run_and_its_continue_each_show_only_their_own_output_though_one_file_holds_both(
    service: DLNestService, tmp_path: Path
) -> None:
    first = service.submit(
        TaskKind.TRAIN, config_path=write_project(tmp_path / "p", epochs=1), cpu=True
    )
    wait_for(service, lambda: service.queries.task(first.id).state.terminal)
    first_end, first_text = service.queries.output(first.id)
    follow_up = service.submit(TaskKind.CONTINUE, record_path=first.package_path, cpu=True)  # type: ignore[arg-type]
    wait_for(service, lambda: service.queries.task(follow_up.id).state.terminal)

    _, own_text = service.queries.output(follow_up.id)
    _, first_again = service.queries.output(first.id)  # `watch` of the first, after the continue

    assert service.queries.task(follow_up.id).output_start == first_end
    assert "epoch 1 loss" in first_text and "epoch 2 loss" not in first_text
    assert "epoch 2 loss" in own_text and "epoch 1 loss" not in own_text
    assert first_again == first_text  # it stops where the continue began
    whole = SavePackage.open(first.package_path).output_path().read_text()  # type: ignore[arg-type]
    assert whole == first_text + own_text


def test_settings_survive_later_commands_where_dlnest_reset_them(
    service: DLNestService, tmp_path: Path
) -> None:
    service.update_settings({"max_tasks_per_device": 3, "launch_delay_s": 2})
    service.submit(TaskKind.TRAIN, config_path=write_project(tmp_path / "p", epochs=1), cpu=True)
    service.tick()

    assert (
        service.queries.settings().max_tasks_per_device,
        service.queries.settings().launch_delay_s,
    ) == (3, 2)


def test_embedded_mode_schedules_on_its_own_thread_and_stops_cleanly(
    service: DLNestService, tmp_path: Path
) -> None:
    service.loop.tick_interval_s = 0.2
    service.start()
    try:
        task = service.submit(
            TaskKind.TRAIN, config_path=write_project(tmp_path / "p", epochs=1), cpu=True
        )
        # no manual ticks here
        wait_until(lambda: service.store.get(task.id).state.terminal, 120, "the task's end")
    finally:
        service.stop()

    assert service.store.get(task.id).state is TaskState.SUCCEEDED


def test_a_task_submitted_after_the_last_one_ended_starts_without_waiting_for_a_tick(
    service: DLNestService, tmp_path: Path
) -> None:
    service.update_settings({"devices": [0], "max_tasks_per_device": 1})
    first = service.submit(
        TaskKind.TRAIN, config_path=write_project(tmp_path / "a", epochs=1), memory_mb=1000
    )
    wait_until(
        lambda: not processes.is_alive(first.pid, first.pid_start_time),  # type: ignore[arg-type]
        180,
        "the first task's process to end",
    )
    assert service.store.get(first.id).state is TaskState.RUNNING  # no tick has seen it end

    second = service.submit(
        TaskKind.TRAIN, config_path=write_project(tmp_path / "b", epochs=1), memory_mb=1000
    )

    assert second.state is TaskState.RUNNING
    assert service.store.get(first.id).state is TaskState.SUCCEEDED
    wait_for(service, lambda: service.queries.task(second.id).state.terminal)


def test_a_delete_hands_the_freed_card_to_the_next_task_at_once(
    service: DLNestService, tmp_path: Path
) -> None:
    hanging, _ = hanging_project(tmp_path / "a")
    service.update_settings({"devices": [0], "max_tasks_per_device": 1})
    first = service.submit(TaskKind.TRAIN, config_path=hanging, memory_mb=1000)
    second = service.submit(
        TaskKind.TRAIN, config_path=write_project(tmp_path / "b", epochs=1), memory_mb=1000
    )
    assert (first.state, second.state) == (TaskState.RUNNING, TaskState.QUEUED)

    service.delete(first.id)

    assert service.store.get(second.id).state is TaskState.RUNNING  # no tick in between


def test_a_queued_task_says_why_it_waits_and_a_default_reservation_is_shown(
    service: DLNestService, tmp_path: Path
) -> None:
    hanging, _ = hanging_project(tmp_path / "a")
    service.update_settings({"devices": [0]})
    first = service.submit(
        TaskKind.TRAIN, config_path=hanging
    )  # no -m: the default, 90% of the 16 GiB card

    second = service.submit(
        TaskKind.TRAIN, config_path=write_project(tmp_path / "b", epochs=1), memory_mb=4000
    )

    assert first.to_json()["reserved_mb"] == 14745
    assert second.to_json()["waiting_for"] == (
        f"needs 4,000 MiB; most free is 1,639 MiB on GPU 0 (task {first.id} holds 14,745)"
    )
    service.update_settings({"devices": None})  # GPU 1 comes back: it starts, and says nothing
    assert service.queries.task(second.id).to_json()["waiting_for"] is None
    wait_for(service, lambda: service.queries.task(second.id).state.terminal)


def test_a_cpu_task_is_refused_while_the_cpu_is_disabled(
    service: DLNestService, tmp_path: Path
) -> None:
    service.update_settings({"devices": [0, 1]})  # DLNest's changeDevices -d 0 1

    with pytest.raises(TaskError, match=r"the CPU is disabled \(changeDevices\)"):
        service.submit(
            TaskKind.TRAIN, config_path=write_project(tmp_path / "p", epochs=1), cpu=True
        )
    assert service.queries.tasks() == []


def test_a_stopped_run_keeps_how_far_it_got(service: DLNestService, tmp_path: Path) -> None:
    task = service.submit(
        TaskKind.TRAIN, config_path=write_project(tmp_path / "p", epochs=100_000), cpu=True
    )
    wait_for(service, lambda: (service.queries.task(task.id).progress.get("epoch") or 0) >= 1)

    service.delete(task.id)

    stopped = service.queries.task(task.id)
    assert stopped.state is TaskState.CANCELLED
    assert stopped.progress["epoch"] >= 1 and stopped.to_json()["progress"]["epoch"] >= 1


def test_a_wait_whose_figures_alone_change_is_stored_again_only_now_and_then(
    service: DLNestService, tmp_path: Path
) -> None:
    service.update_settings({"devices": [0]})
    cards = service.device_source
    assert isinstance(cards, FakeSource) and cards.totals_mb == (16384, 16384)
    cards.foreign_mb[0] = 1000  # someone else's memory
    task = service.submit(
        TaskKind.TRAIN, config_path=write_project(tmp_path / "p", epochs=1), memory_mb=16000
    )
    now = time.time()  # the submission's own pass stored the first reason just now

    def waiting_after_a_pass(foreign_mb: int, at: float) -> str | None:
        cards.foreign_mb[0] = foreign_mb
        service.tick(at)
        return service.queries.task(task.id).to_json()["waiting_for"]

    first = waiting_after_a_pass(1000, now)
    same_words = waiting_after_a_pass(1200, now + 1)  # other processes' memory moved a little
    later = waiting_after_a_pass(1200, now + 11)

    assert first == "needs 16,000 MiB; most free is 15,384 MiB on GPU 0"
    assert same_words == first  # not rewritten (every dashboard would fetch it again)
    assert later == "needs 16,000 MiB; most free is 15,184 MiB on GPU 0"
