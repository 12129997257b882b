"""The API dispatcher on its own: no Tornado, no sockets, and an executor that records launches."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dlnest_jupyter.core.devices import FakeSource
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.core.tasks import TaskKind, TaskState
from dlnest_jupyter.service.api import Api
from dlnest_jupyter.service.service import DLNestService

from ..api_cases import CASES, TRAIN, write_case_project
from ..conftest import new_package, train_in_process
from ..projects import write_project
from ..recording_executor import RecordingExecutor


@pytest.fixture
def executor() -> RecordingExecutor:
    return RecordingExecutor()


@pytest.fixture
def api(tmp_path: Path, executor: RecordingExecutor) -> Iterator[Api]:
    root = tmp_path / "root"
    root.mkdir()
    write_case_project(root, tmp_path / "outside")
    service = DLNestService(TaskStore(tmp_path / "q.sqlite"), FakeSource((16384, 16384)), executor)
    yield Api(service, root, [root])
    service.stop()


def call(api: Api, method: str, target: str, body: Any = None) -> tuple[int, Any]:
    raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    reply = api.call(method, target, raw)
    return reply.status, json.loads(reply.text)


@pytest.mark.parametrize(
    ("name", "method", "target", "body", "status", "message"), CASES, ids=[c[0] for c in CASES]
)
def test_the_bad_input_corpus_is_refused_by_the_dispatcher_itself(
    api: Api, name: str, method: str, target: str, body: Any, status: int, message: str
) -> None:
    code, reply = call(api, method, target, body)

    assert (code, set(reply)) == (status, {"error"}), reply
    assert message in reply["error"]["message"]
    assert not (api.root_dir / "proj" / "Saves").exists()


def test_a_submission_is_placed_launched_listed_and_stopped(
    api: Api, executor: RecordingExecutor
) -> None:
    status, created = call(api, "POST", "tasks", {**TRAIN, "memory_mb": 3000, "description": "d"})
    task = created["task"]
    assert status == 201 and (task["state"], task["devices"]) == ("running", [0])
    assert executor.launches == [(task["id"], (0,))]
    assert call(api, "GET", "tasks")[1]["tasks"] == [task]
    assert call(api, "GET", "devices")[1]["devices"][0]["memory_reserved_mb"] == 3000

    status, deleted = call(api, "DELETE", f"tasks/{task['id']}")

    assert (status, deleted["task"]["state"]) == (200, "cancelled")
    assert executor.stopped == [task["id"]]
    assert call(api, "DELETE", f"tasks/{task['id']}")[0] == 409  # already ended


def test_a_freq_key_the_config_lacks_is_warned_of_and_the_task_still_queued(api: Api) -> None:
    status, warned = call(api, "POST", "tasks", {**TRAIN, "freq_path": "proj/typo_freq.json"})
    _, plain = call(api, "POST", "tasks", {**TRAIN, "memory_mb": 100})

    freq = api.root_dir / "proj" / "typo_freq.json"
    assert status == 201 and warned["task"]["state"] in ("queued", "running")
    assert warned["warnings"] == [
        f"'epoch' in {freq} is not a key of the config; the nearest key is 'epochs'"
    ]
    assert plain["warnings"] == []


def test_a_continue_may_set_epochs_and_a_freq_config_and_is_refused_what_cannot_be(
    api: Api,
) -> None:
    package = new_package(write_project(api.root_dir / "trained", epochs=2))
    assert train_in_process(package) == 0  # checkpoint 1 ends epoch 2
    freq = api.root_dir / "trained" / "more.json"
    freq.write_text(json.dumps({"batch_size": 8, "batch_sizes": 4}))
    body = {"kind": "continue", "record_path": str(package.path), "cpu": True}

    not_past = call(api, "POST", "tasks", {**body, "epochs": 2})
    _, finished = call(api, "POST", "tasks", body)  # no --epochs, from its last epoch
    api.service.delete(finished["task"]["id"])
    status, queued = call(api, "POST", "tasks", {**body, "epochs": 5, "freq_path": str(freq)})
    spec = api.service.store.get(queued["task"]["id"]).spec
    api.service.delete(queued["task"]["id"])
    args = json.loads((package.path / "args.json").read_text())
    del args["epochs"]
    (package.path / "args.json").write_text(json.dumps(args))
    no_epochs = call(api, "POST", "tasks", {**body, "epochs": 5})

    assert (
        not_past[0] == 400
        and "--epochs 2 is not past checkpoint 1, which ends epoch 2"
        in (not_past[1]["error"]["message"])
    )
    assert status == 201 and spec["overrides"] == {"batch_size": 8, "batch_sizes": 4, "epochs": 5}
    assert spec["freq_path"] == str(freq)
    assert queued["warnings"] == [
        f"'batch_sizes' in {freq} is not a key of the config; the nearest key is 'batch_size'"
    ]
    assert finished["warnings"] == [
        "checkpoint 1 ends epoch 2, and the config plans 2 epochs: this continue trains one "
        "more epoch (the loop trains one before needContinueTrain decides); --epochs N trains "
        "until epoch N in all"
    ]
    message = no_epochs[1]["error"]["message"]
    assert no_epochs[0] == 400 and "args.json" in message and "needs an 'epochs' key" in message


def test_a_task_whose_process_ends_is_reaped_and_its_card_freed(
    api: Api, executor: RecordingExecutor
) -> None:
    _, first = call(api, "POST", "tasks", {**TRAIN, "memory_mb": 16000})
    _, second = call(api, "POST", "tasks", {**TRAIN, "memory_mb": 16000})
    _, third = call(api, "POST", "tasks", {**TRAIN, "memory_mb": 16000})
    assert [t["task"]["state"] for t in (first, second, third)] == ["running", "running", "queued"]

    executor.finish(first["task"]["id"], 0)
    api.service.tick()

    done = call(api, "GET", f"tasks/{first['task']['id']}")[1]["task"]
    now = call(api, "GET", f"tasks/{third['task']['id']}")[1]["task"]
    assert (done["state"], done["exit_code"]) == (TaskState.SUCCEEDED, 0)
    assert (now["state"], now["devices"]) == ("running", [0])  # the freed card


def test_the_stored_spec_holds_no_copy_of_a_column(api: Api) -> None:
    _, created = call(api, "POST", "tasks", {**TRAIN, "memory_mb": 1234})
    record = api.service.store.get(created["task"]["id"])

    assert record.memory_mb == 1234 and "memory_mb" not in record.spec
    assert record.demand().memory_mb == 1234


def test_settings_are_checked_once_and_served_as_json(api: Api) -> None:
    status, changed = call(api, "PUT", "settings", {"launch_delay_s": 2.5, "devices": [1, -1]})
    assert (status, changed["launch_delay_s"], changed["devices"]) == (200, 2.5, [1, -1])

    status, refused = call(api, "PUT", "settings", b'{"launch_delay_s": 1, "starvation_s": NaN}')

    assert status == 400 and "NaN" in refused["error"]["message"]
    assert call(api, "GET", "settings")[1] == changed  # nothing of the refused request stuck


def test_relative_paths_resolve_against_the_callers_root(api: Api) -> None:
    status, created = call(api, "POST", "projects", {"path": "fresh", "template": "digits"})

    assert (status, created["path"]) == (201, str(api.root_dir / "fresh"))
    assert (api.root_dir / "fresh" / "root_config.json").is_file()


def test_new_with_plugins_and_add_plugins_say_what_they_added(api: Api) -> None:
    root = api.root_dir
    (root / "mine.py").write_text(
        "class DLNestPlugin:\n    _NAME = 'Mine'\n    _config = {'k': 1}\n    _defaultKeys = ['k']\n"
    )
    body = {"path": "fresh", "template": "digits", "plugins": ["LogInit", "SimpleCMDVisualize"]}

    status, created = call(api, "POST", "projects", body)

    config = root / "fresh" / "root_config.json"
    assert (status, created) == (
        201,
        {
            "path": str(root / "fresh"),
            "plugins": {"file": str(config), "added": body["plugins"], "already": []},
        },
    )
    status, added = call(
        api,
        "POST",
        "projects/plugins",
        {"path": "fresh", "plugins": ["MailsNote", "LogInit", "mine.py"], "full": True},
    )
    assert (status, added["plugins"]) == (
        200,
        {
            "file": str(config),
            "added": ["MailsNote", str(root / "mine.py")],
            "already": ["LogInit"],
        },
    )
    written = json.loads(config.read_text())
    assert written["plugins"] == [
        "LogInit",
        "SimpleCMDVisualize",
        "MailsNote",
        str(root / "mine.py"),
    ]
    assert written["plugins_config"]["MailsNote"]["timeout_s"] == 10  # -F: the full config
    assert written["plugins_config"]["Mine"] == {"k": 1}
    assert call(api, "POST", "projects", {"path": "plain"})[1]["plugins"] is None


def test_a_refused_plugin_request_changes_nothing(api: Api) -> None:
    config = api.root_dir / "proj" / "root_config.json"
    before = config.read_text()

    refused = call(api, "POST", "projects/plugins", {"path": "proj", "plugins": ["LogInit", "X"]})
    also = call(api, "POST", "projects", {"path": "p2", "plugins": ["LogInit", "X"]})

    assert refused[0] == also[0] == 400
    assert config.read_text() == before and not (api.root_dir / "p2").exists()


def test_a_verb_that_breaks_answers_a_json_500_naming_the_exception(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> list[dict[str, Any]]:
        raise KeyError("nvml")

    monkeypatch.setattr(api.service.queries, "devices", broken)

    status, reply = call(api, "GET", "devices")

    assert status == 500 and reply["error"] == {
        "type": "InternalError",
        "message": "KeyError: 'nvml'",
    }


def test_a_refresh_since_a_version_gets_only_what_changed_and_the_running_tasks(
    api: Api, executor: RecordingExecutor
) -> None:
    call(api, "PUT", "settings", {"devices": [0]})  # one card: the second task waits
    _, first = call(api, "POST", "tasks", {**TRAIN, "memory_mb": 16000})
    _, second = call(api, "POST", "tasks", {**TRAIN, "memory_mb": 16000})
    _, listed = call(api, "GET", "tasks")

    _, nothing_new = call(api, "GET", f"tasks?since={listed['version']}")
    call(api, "DELETE", f"tasks/{second['task']['id']}")
    _, after_delete = call(api, "GET", f"tasks?since={nothing_new['version']}")

    assert [t["id"] for t in listed["tasks"]] == [first["task"]["id"], second["task"]["id"]]
    assert [t["id"] for t in nothing_new["tasks"]] == [first["task"]["id"]]  # running: live
    assert nothing_new["version"] == listed["version"]
    assert [(t["id"], t["state"]) for t in after_delete["tasks"]] == [
        (first["task"]["id"], "running"),
        (second["task"]["id"], "cancelled"),
    ]
    assert after_delete["version"] > nothing_new["version"]


def test_metrics_come_by_offset_and_a_broken_line_is_skipped_with_a_note(api: Api) -> None:
    _, created = call(api, "POST", "tasks", {**TRAIN, "cpu": True})
    task_id = created["task"]["id"]
    metrics = Path(created["task"]["package_path"]) / "_metrics.jsonl"
    metrics.write_text('{"epoch": 1, "loss": 0.5}\n{"epoch": 2, "lo')  # the second is being written

    _, first = call(api, "GET", f"tasks/{task_id}/metrics")
    with metrics.open("a") as handle:
        handle.write('ss": 0.25}\nnot json\n[1, 2]\n{"epoch": 3, "loss": NaN}\n')
    _, rest = call(api, "GET", f"tasks/{task_id}/metrics?offset={first['offset']}")
    _, nothing = call(api, "GET", f"tasks/{task_id}/metrics?offset={rest['offset']}")

    assert (first["rows"], first["skipped"]) == ([{"epoch": 1, "loss": 0.5}], [])
    assert rest["rows"] == [{"epoch": 2, "loss": 0.25}, {"epoch": 3, "loss": None}]  # NaN: null
    assert [note.split(": ", 1)[1] for note in rest["skipped"]] == [
        "not JSON (Expecting value: line 1 column 1 (char 0))",
        "not a JSON object",
    ]
    second_line = len('{"epoch": 2, "loss": 0.25}\n')
    assert rest["skipped"][0].startswith(f"_metrics.jsonl byte {first['offset'] + second_line}:")
    assert (nothing["rows"], nothing["offset"]) == ([], rest["offset"])


def test_steps_come_by_offset_as_metrics_do(api: Api) -> None:
    _, created = call(api, "POST", "tasks", {**TRAIN, "cpu": True})
    task_id = created["task"]["id"]
    row = {"epoch": 1, "values": {"loss": [0.5, 0.25]}, "counts": {"loss": 2}}
    (Path(created["task"]["package_path"]) / "_steps.jsonl").write_text(json.dumps(row) + "\n")

    _, first = call(api, "GET", f"tasks/{task_id}/steps")
    _, nothing = call(api, "GET", f"tasks/{task_id}/steps?offset={first['offset']}")

    assert (first["rows"], nothing["rows"]) == ([row], [])


def test_forgetting_a_tasks_memory_drops_its_jobs_history_and_names_what_it_forgot(
    api: Api,
) -> None:
    config = write_project(api.root_dir / "proj")
    status, queued = call(api, "POST", "tasks", {"kind": "train", "config_path": str(config)})
    assert status == 201, queued
    task_id = queued["task"]["id"]
    fingerprint = api.service.store.get(task_id).spec["memory_fingerprint"]
    api.service.store.memory.record(fingerprint, 99, {0: 1000}, 10.0, 1, ended_at=1.0)

    status, forgotten = call(api, "DELETE", f"tasks/{task_id}/memory")

    assert (status, forgotten) == (200, {"fingerprint": fingerprint, "forgotten_runs": 1})
    assert api.service.store.memory.learned(fingerprint) is None
    assert call(api, "DELETE", f"tasks/{task_id}/memory")[1]["forgotten_runs"] == 0
    assert call(api, "DELETE", "tasks/404/memory")[0] == 404
    raw = api.service.store.submit(TaskKind.TRAIN, {})  # queued by an older version: no history
    status, refused = call(api, "DELETE", f"tasks/{raw.id}/memory")
    assert status == 400 and "no history" in refused["error"]["message"]
