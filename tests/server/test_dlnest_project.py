"""A DLNest 0.3 project through the server: trained, continued and analysed as it was written,
its plugins running, and no reply carrying its mail password."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ..dlnest_project import PASSWORD, write_dlnest_project
from ..mail_servers import Mailbox
from .conftest import run_experiment, wait_for_analyzer, wait_for_state

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("analyzer_kernelspec"),
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS"),
    pytest.mark.filterwarnings("ignore:Session.login_data is deprecated"),
]


async def test_a_dlnest_project_trains_continues_and_analyses_through_the_server(
    jp_root_dir: Path, dlnest: Any, mailbox: Mailbox
) -> None:
    write_dlnest_project(jp_root_dir / "mnist", smtp_port=mailbox.port, epochs=2)
    replies: list[Any] = []

    async def call(*args: Any, **kwargs: Any) -> Any:
        status, body = await dlnest(*args, **kwargs)
        replies.append(body)
        return status, body

    status, made = await call(
        "POST",
        "tasks",
        body={"kind": "train", "config_path": "mnist/root_config.json", "cpu": True},
    )
    assert status == 201, made
    trained = await wait_for_state(call, made["task"]["id"])
    assert trained["state"] == "succeeded", trained
    status, continued = await call(
        "POST",
        "tasks",
        body={"kind": "continue", "record_path": trained["package_path"], "cpu": True},
    )
    assert (await wait_for_state(call, continued["task"]["id"]))["state"] == "succeeded"
    assert [mail["Subject"] for mail in mailbox.mails] == ["Train Finished!", "Train Finished!"]

    status, analyzer = await call(
        "POST",
        "tasks",
        body={"kind": "analyze", "record_path": trained["package_path"], "cpu": True},
    )
    assert status == 201, analyzer
    await wait_for_analyzer(call, analyzer["task"]["id"])
    experiment = await run_experiment(call, analyzer["task"]["id"], name="getAcc")
    assert experiment["state"] == "succeeded", experiment
    accuracy = re.search(r"accuracy: (\d\.\d+)", experiment["output"])
    assert accuracy and float(accuracy.group(1)) > 0.5

    for target in ("tasks", "log", "devices", "settings"):
        replies.append((await call("GET", target))[1])
    for task_id in (made["task"]["id"], continued["task"]["id"]):
        replies.append((await call("GET", "tasks", str(task_id), "output"))[1])
        output = replies[-1]["text"]
        assert "Iter : 5" in output and "MailsNote sent 'Train Finished!'" in output
    assert all(PASSWORD not in json.dumps(reply) for reply in replies)
