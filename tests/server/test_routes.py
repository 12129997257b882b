from __future__ import annotations

from pathlib import Path
from typing import Any

from ..projects import scored_project, write_project
from ..waiting import wait_until_async
from .conftest import wait_for_state


async def test_a_task_submitted_over_rest_trains_to_succeeded_and_every_route_answers(
    dlnest: Any, jp_root_dir: Path
) -> None:
    config = write_project(jp_root_dir / "proj", epochs=2)

    status, created = await dlnest(
        "POST",
        "tasks",
        body={
            "kind": "train",
            "config_path": "proj/root_config.json",
            "memory_mb": 2000,
            "description": "rest",
        },
    )
    assert status == 201, created
    task = created["task"]
    assert (task["kind"], task["description"], task["memory_mb"]) == ("train", "rest", 2000)
    assert task["state"] in ("queued", "running")

    done = await wait_for_state(dlnest, task["id"])
    assert (done["state"], done["exit_code"], done["devices"]) == ("succeeded", 0, [0])
    assert Path(done["package_path"]).parent == config.parent / "Saves"

    status, listed = await dlnest("GET", "tasks")
    assert status == 200 and [t["id"] for t in listed["tasks"]] == [task["id"]]
    status, output = await dlnest("GET", "tasks", str(task["id"]), "output", params={"offset": 0})
    assert status == 200 and "epoch 2 loss" in output["text"]
    status, rest = await dlnest(
        "GET", "tasks", str(task["id"]), "output", params={"offset": output["offset"]}
    )
    assert (status, rest) == (200, {"offset": output["offset"], "text": ""})

    status, continued = await dlnest(
        "POST", "tasks", body={"kind": "continue", "record_path": done["package_path"], "cpu": True}
    )
    assert (
        status == 201
        and (await wait_for_state(dlnest, continued["task"]["id"]))["state"] == "succeeded"
    )

    status, log = await dlnest("GET", "log")
    assert status == 200 and f"task {task['id']} succeeded" in log["text"]
    status, cleared = await dlnest("DELETE", "log")
    assert (
        status == 200
        and (await dlnest("GET", "log", params={"offset": cleared["offset"]}))[1]["text"] == ""
    )


async def test_devices_settings_and_projects(dlnest: Any, jp_root_dir: Path) -> None:
    status, devices = await dlnest("GET", "devices")
    assert status == 200
    assert [(d["id"], d["kind"], d["memory_total_mb"]) for d in devices["devices"]] == [
        (0, "gpu", 16384),
        (1, "gpu", 16384),
        (-1, "cpu", None),
    ]

    status, settings = await dlnest(
        "PUT", "settings", body={"devices": [1, -1], "max_tasks_per_device": 2}
    )
    assert (
        status == 200 and settings["devices"] == [1, -1] and settings["max_tasks_per_device"] == 2
    )
    assert (await dlnest("GET", "settings"))[1] == settings

    status, project = await dlnest(
        "POST", "projects", body={"path": "newproj", "template": "digits"}
    )
    assert status == 201 and project["path"] == str(jp_root_dir / "newproj")
    assert (jp_root_dir / "newproj" / "root_config.json").is_file()

    # Over HTTP every -p arrives (DLNest's server kept only the last).
    status, added = await dlnest(
        "POST", "projects/plugins", body={"path": "newproj", "plugins": ["LogInit", "MailsNote"]}
    )
    assert (status, added["plugins"]["added"]) == (200, ["LogInit", "MailsNote"])


async def test_deleting_a_queued_task_cancels_it(dlnest: Any, jp_root_dir: Path) -> None:
    write_project(jp_root_dir / "proj", epochs=1)
    await dlnest("PUT", "settings", body={"devices": [-1]})  # no GPU may take it
    _, created = await dlnest(
        "POST",
        "tasks",
        body={"kind": "train", "config_path": "proj/root_config.json", "memory_mb": 1000},
    )

    status, deleted = await dlnest("DELETE", "tasks", str(created["task"]["id"]))

    assert status == 200 and deleted["task"]["state"] == "cancelled"


async def test_a_sweep_over_rest_runs_its_trials_on_pretend_cards_and_names_the_best(
    dlnest: Any, jp_root_dir: Path
) -> None:
    scored_project(jp_root_dir / "proj", epochs=2)

    status, made = await dlnest(
        "POST",
        "sweeps",
        body={
            "config_path": "proj/root_config.json",
            "search": {"quality": {"choices": [0.2, 0.6]}},
            "trials": 3,
            "parallel": 2,
            "metric": "score",
            "prune": "median",
            "memory_mb": 2000,
            "seed": 0,
        },
    )
    assert status == 201, made
    sweep_id = made["sweep"]["id"]

    async def finished() -> dict[str, Any] | None:
        _, body = await dlnest("GET", "sweeps", str(sweep_id))
        return body["sweep"] if body["sweep"]["state"] != "running" else None

    done = await wait_until_async(finished, 180, "the sweep to finish", every_s=0.3)
    assert done["state"] == "finished" and len(done["trials"]) == 3
    assert done["best"]["value"] == max(t["value"] for t in done["trials"] if t["value"])
    status, task = await dlnest("GET", "tasks", str(done["best"]["task_id"]))
    assert task["task"]["sweep"] == {
        "id": sweep_id,
        "trial": done["best"]["number"],
        "params": done["best"]["params"],
    }
    assert task["task"]["devices"] in ([0], [1])  # a pretend card, like any run
    status, listed = await dlnest("GET", "sweeps")
    assert status == 200 and [s["id"] for s in listed["sweeps"]] == [sweep_id]
