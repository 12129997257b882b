"""The extension's seams: where devices come from and what starts tasks are configured classes."""

from __future__ import annotations

from typing import Any

import pytest

from dlnest_jupyter.core.devices import FakeSource


class ThreeSmallCards(FakeSource):
    """A device source as a user would plug one in: a class called with no arguments."""

    def __init__(self) -> None:
        super().__init__((1024, 2048, 4096))


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    del jp_server_config["DLNestApp"]["fake_gpus"]  # fake_gpus would win over the class
    jp_server_config["DLNestApp"]["device_source_class"] = f"{__name__}.ThreeSmallCards"
    jp_server_config["DLNestApp"]["executor_class"] = "tests.recording_executor.RecordingExecutor"
    return jp_server_config


async def test_a_configured_device_source_and_executor_serve_the_api(dlnest: Any) -> None:
    status, devices = await dlnest("GET", "devices")
    assert status == 200
    assert [(d["id"], d["memory_total_mb"]) for d in devices["devices"]] == [
        (0, 1024),
        (1, 2048),
        (2, 4096),
        (-1, None),
    ]

    assert (await dlnest("POST", "projects", body={"path": "p", "template": "clean"}))[0] == 201
    status, created = await dlnest(
        "POST",
        "tasks",
        body={"kind": "train", "config_path": "p/root_config.json", "memory_mb": 3000},
    )

    # Placed on the only card with room, and "started" by the recording executor: no process.
    assert status == 201 and (created["task"]["state"], created["task"]["devices"]) == (
        "running",
        [2],
    )


class NotAnExecutor:
    """What a custom executor_class looked like before Executor was a class: refused now."""

    def __init__(self, zygote: bool = False) -> None:
        pass


def test_an_executor_class_that_is_not_an_executor_is_refused_at_configuration() -> None:
    from traitlets import TraitError

    from dlnest_jupyter.server.app import DLNestApp

    with pytest.raises(TraitError, match="Executor"):
        DLNestApp(executor_class=f"{__name__}.NotAnExecutor")
