"""No reply carries a plugin's password: a real run through the dispatcher, whose user code prints
its args, then a continue whose freq config sets another password."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dlnest_jupyter.core.devices import FakeSource
from dlnest_jupyter.core.store import TaskStore
from dlnest_jupyter.service.api import Api
from dlnest_jupyter.service.launch.executor import LocalExecutor
from dlnest_jupyter.service.service import DLNestService

from ..projects import life_cycle_source, write_project
from .conftest import wait_for

FIRST, SECOND = "hunter2-first-password", "swordfish-second-password"
PRINTS_ITS_ARGS = """
def BTrain(self):
    print("training with", self.args)
"""


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    service = DLNestService(
        TaskStore(tmp_path / "q.sqlite"), FakeSource((16384,)), LocalExecutor(stop_grace_s=5)
    )
    yield Api(service, tmp_path, [tmp_path])
    service.stop()


def call(api: Api, method: str, target: str, body: Any = None) -> tuple[int, str]:
    reply = api.call(method, target, None if body is None else json.dumps(body).encode())
    return reply.status, reply.text


def test_no_reply_carries_a_plugin_password(api: Api, tmp_path: Path) -> None:
    mail = {"username": "me", "password": FIRST, "host": "localhost"}
    config = write_project(
        tmp_path / "p",
        epochs=1,
        args={"plugins_config": {"MailsNote": mail}},
        life_cycle=life_cycle_source(PRINTS_ITS_ARGS),
    )
    replies: list[str] = []

    def done(task_id: int) -> bool:
        return json.loads(call(api, "GET", f"tasks/{task_id}")[1])["task"]["state"] == "succeeded"

    status, text = call(
        api, "POST", "tasks", {"kind": "train", "config_path": str(config), "cpu": True}
    )
    assert status == 201, text
    first = json.loads(text)["task"]
    wait_for(api.service, lambda: done(first["id"]))
    package = Path(first["package_path"])
    freq = tmp_path / "new_password.json"
    freq.write_text(json.dumps({"plugins_config": {"MailsNote": {"password": SECOND}}}))
    status, text = call(
        api,
        "POST",
        "tasks",
        {"kind": "continue", "record_path": str(package), "freq_path": str(freq), "cpu": True},
    )
    assert status == 201, text
    second = json.loads(text)["task"]
    wait_for(api.service, lambda: done(second["id"]))

    for task_id in (first["id"], second["id"]):
        for target in ("", "/output", "/output?offset=0", "/checkpoints", "/metrics"):
            replies.append(call(api, "GET", f"tasks/{task_id}{target}")[1])
    for target in ("tasks", "log?offset=0", "sweeps"):
        replies.append(call(api, "GET", target)[1])
    sweep = {
        "config_path": str(config),
        "grid": {"plugins_config.MailsNote.password": [FIRST, SECOND]},
    }
    status, refused = call(api, "POST", "sweeps", sweep)
    replies.append(refused)

    assert status == 400 and "would vary a secret" in refused
    outputs = [json.loads(replies[i])["text"] for i in (1, 6)]
    assert "training with" in outputs[0] and "'password': '***'" in outputs[0]
    assert "'password': '***'" in outputs[1]  # the continue's own password, from its freq file
    assert json.loads(replies[8])["branches"][1]["overrides"]["plugins_config"] == {
        "MailsNote": {"password": "***"}
    }
    for reply in replies:
        assert FIRST not in reply and SECOND not in reply, reply
    # The package's own files keep what the user wrote.
    assert FIRST in (package / "args.json").read_text()
    assert FIRST in (package / "_output.txt").read_text()


RAISES_WITH_ITS_ARGS = """
def BTrain(self):
    raise RuntimeError("cannot train with " + repr(self.args["plugins_config"]))
"""


def test_a_failed_run_whose_error_holds_a_password_says_it_without(
    api: Api, tmp_path: Path
) -> None:
    mail = {"username": "me", "password": FIRST, "host": "localhost"}
    config = write_project(
        tmp_path / "p",
        epochs=1,
        args={"plugins_config": {"MailsNote": mail}},
        life_cycle=life_cycle_source(RAISES_WITH_ITS_ARGS),
    )
    _, made = call(api, "POST", "tasks", {"kind": "train", "config_path": str(config), "cpu": True})
    task_id = json.loads(made)["task"]["id"]
    wait_for(api.service, lambda: api.service.store.get(task_id).state.terminal)

    replies = [call(api, "GET", f"tasks/{task_id}")[1], call(api, "GET", "log")[1]]

    task = json.loads(replies[0])["task"]
    assert task["state"] == "failed" and "cannot train with" in task["error"]
    assert all(FIRST not in reply for reply in replies)
    assert "***" in task["error"]
