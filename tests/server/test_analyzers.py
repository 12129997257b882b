"""Analyzers as real kernels of a real Jupyter server: load once, experiment, attach, delete."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.asynchronous import AsyncKernelClient

from ..conftest import new_package, trained_package
from ..projects import write_project
from ..waiting import wait_until_async
from .conftest import follow_experiment, run_experiment, wait_for_analyzer, wait_for_state

pytestmark = pytest.mark.usefixtures("analyzer_kernelspec")

SPIN = """
import time
def experience(self):
    print("spinning", flush=True)
    while True:
        time.sleep(0.01)
"""
IDENT = """
def experience(self):
    print("model", id(self.model), "checkpoint", self.checkpoint_id)
    return 41 + 1
"""


async def test_an_analyzer_loads_once_runs_experiments_and_keeps_its_model(
    jp_root_dir: Path, dlnest: Any, jp_fetch: Any
) -> None:
    package = trained_package(
        jp_root_dir,
        {
            "ident": IDENT,
            "broken": "def experience(self):\n    return 1 / 0\n",
            "spin": SPIN,
        },
    )
    status, body = await dlnest(
        "POST", "tasks", body={"kind": "analyze", "record_path": str(package), "cpu": True}
    )
    assert status == 201, body
    task = body["task"]
    assert (task["kind"], task["state"], task["devices"]) == ("analyze", "running", [-1])
    assert task["scripts_dir"] == str(jp_root_dir / "proj" / "AnalyzeScripts")
    # Sent while the model loads (the kernel has only just started): queued, then run on it.
    early = await run_experiment(dlnest, task["id"], code="print(type(model).__name__)")
    assert task["progress"]["analyzer"] == "loading"
    assert (early["state"], early["output"]) == ("succeeded", "ToyRunner\n")
    ready = await wait_for_analyzer(dlnest, task["id"])
    assert ready["progress"]["analyzer"] == "ready", ready

    first = await run_experiment(dlnest, task["id"], name="ident")
    second = await run_experiment(dlnest, task["id"], name="ident.py")
    assert first["state"] == second["state"] == "succeeded"
    assert first["output"] == second["output"] and "checkpoint 1" in first["output"]  # loaded once
    assert first["result"] == "42"

    (jp_root_dir / "proj" / "AnalyzeScripts" / "ident.py").write_text(
        "def experience(self):\n    print('edited', type(self.model).__name__)\n"
    )
    assert (await run_experiment(dlnest, task["id"], name="ident"))[
        "output"
    ] == "edited ToyRunner\n"

    cell = await run_experiment(
        dlnest, task["id"], code="print(args['epochs'], model is self.runner)"
    )
    assert (cell["state"], cell["output"]) == ("succeeded", "2 True\n")

    broken = await run_experiment(dlnest, task["id"], name="broken")
    assert broken["state"] == "failed" and "ZeroDivisionError" in broken["error"]

    status, body = await dlnest(
        "POST", "tasks", str(task["id"]), "experiments", body={"name": "spin"}
    )
    spinning = await _printing(dlnest, task["id"], body["experiment"]["id"])
    assert spinning["state"] == "running"  # in the user's loop: an interrupt has code to stop
    status, _ = await dlnest("POST", "tasks", str(task["id"]), "interrupt")
    assert status == 200
    interrupted = await follow_experiment(dlnest, task["id"], spinning)
    assert interrupted["state"] == "interrupted", interrupted

    after = await run_experiment(dlnest, task["id"], code="print(model is self.runner)")
    assert (
        after["output"] == "True\n"
    )  # an exception and an interrupt later, the model is still there

    kernels = json.loads((await jp_fetch("api", "kernels")).body)
    sessions = json.loads((await jp_fetch("api", "sessions")).body)
    assert task["kernel_id"] in [k["id"] for k in kernels]
    assert any(
        s["kernel"]["id"] == task["kernel_id"]
        and s["name"].startswith(f"DLNest analyzer {task['id']} ")
        for s in sessions
    )

    _, body = await dlnest("GET", "tasks", str(task["id"]), "attach")
    connection_file = body["attach"]["connection_file"]
    seen = await _second_client(connection_file, "", "type(model).__name__")
    assert seen["user_expressions"]["value"]["data"]["text/plain"] == "'ToyRunner'"
    # `exit` in a console: the kernel tells the console to keep it, and the model stays.
    exited = await _second_client(connection_file, "exit", "type(model).__name__")
    assert {"source": "ask_exit", "keepkernel": True} in exited["payload"]
    assert exited["user_expressions"]["value"]["data"]["text/plain"] == "'ToyRunner'"

    status, body = await dlnest("DELETE", "tasks", str(task["id"]))
    assert (status, body["task"]["state"]) == (200, "cancelled")

    async def kernel_gone() -> bool:
        kernels = json.loads((await jp_fetch("api", "kernels")).body)
        return task["kernel_id"] not in [k["id"] for k in kernels]

    await wait_until_async(kernel_gone, 30, "the analyzer's kernel to be shut down")


async def _printing(call: Any, task_id: int, experiment_id: int) -> dict[str, Any]:
    """The experiment once its code has printed something: it runs in the kernel by then."""

    async def printed() -> dict[str, Any] | None:
        _, reply = await call(
            "GET", "tasks", str(task_id), "experiments", str(experiment_id),
            params={"wait_s": 2},
        )  # fmt: skip
        experiment: dict[str, Any] = reply["experiment"]
        return experiment if experiment["output"] else None

    return await wait_until_async(printed, 120, "the experiment's first output")


@contextlib.asynccontextmanager
async def _attached(connection_file: str) -> AsyncIterator[AsyncKernelClient]:
    """A client of our own on an analyzer's kernel (as `jupyter console --existing` is), ready."""
    client = AsyncKernelClient(connection_file=connection_file)
    client.load_connection_file()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        yield client
    finally:
        client.stop_channels()


async def _second_client(connection_file: str, code: str, expression: str) -> dict[str, Any]:
    """Run `code` from a client of our own; the reply."""
    async with _attached(connection_file) as client:
        reply: dict[str, Any] = await client.execute_interactive(
            code, user_expressions={"value": expression}, timeout=60, output_hook=lambda m: None
        )
        return reply["content"]  # type: ignore[no-any-return]


async def test_an_analyzer_on_a_fake_gpu_holds_its_memory_until_deleted(
    jp_root_dir: Path, dlnest: Any
) -> None:
    package = trained_package(jp_root_dir, {"ident": IDENT})

    _, body = await dlnest(
        "POST", "tasks", body={"kind": "analyze", "record_path": str(package), "memory_mb": 3000}
    )
    task = body["task"]
    assert task["devices"] == [0]
    ready = await wait_for_analyzer(dlnest, task["id"])
    assert ready["progress"]["analyzer"] == "ready", ready
    experiment = await run_experiment(dlnest, task["id"], name="ident")
    _, output = await dlnest("GET", "tasks", str(task["id"]), "output")
    _, devices = await dlnest("GET", "devices")
    assert (devices["devices"][0]["memory_reserved_mb"], devices["devices"][0]["task_ids"]) == (
        3000,
        [task["id"]],
    )

    await dlnest("DELETE", "tasks", str(task["id"]))
    _, devices = await dlnest("GET", "devices")

    assert experiment["state"] == "succeeded"
    assert output["text"] == ""  # the package's training output is not the analyzer's
    assert (devices["devices"][0]["memory_reserved_mb"], devices["devices"][0]["task_ids"]) == (
        0,
        [],
    )


async def test_a_package_that_fails_to_load_fails_its_analyzer_with_the_traceback(
    jp_root_dir: Path, dlnest: Any, jp_fetch: Any
) -> None:
    package = trained_package(jp_root_dir, {})
    dataset = package / "code" / "ToyDataset.py"
    dataset.write_text(
        dataset.read_text().replace(
            "def init(self, args):",
            "def init(self, args):\n        raise RuntimeError('disk on fire')\n",
        )
    )

    _, body = await dlnest(
        "POST", "tasks", body={"kind": "analyze", "record_path": str(package), "cpu": True}
    )
    task_id = str(body["task"]["id"])
    status, sent = await dlnest("POST", "tasks", task_id, "experiments", body={"code": "1"})
    failed = await wait_for_state(dlnest, body["task"]["id"])
    _, after = await dlnest("GET", "tasks", task_id, "experiments", str(sent["experiment"]["id"]))

    assert (status, sent["experiment"]["state"]) == (201, "queued")  # accepted while loading
    assert after["experiment"]["state"] == "failed"
    assert "the analyzer failed to load" in after["experiment"]["error"]
    assert "disk on fire" in after["experiment"]["error"]
    assert failed["state"] == "failed"
    assert "Traceback" in failed["error"] and "RuntimeError: disk on fire" in failed["error"]
    kernels = json.loads((await jp_fetch("api", "kernels")).body)
    assert body["task"]["kernel_id"] not in [k["id"] for k in kernels]


async def test_bad_analyzer_requests_get_a_clear_4xx_and_the_analyzer_lives_on(
    jp_root_dir: Path, dlnest: Any
) -> None:
    """Each bad request is refused with its reason; the analyzer answers the next good one."""
    package = trained_package(jp_root_dir, {"ident": IDENT, "noexp": "x = 1\n"})
    untrained = new_package(write_project(jp_root_dir / "fresh", epochs=1)).path
    _, body = await dlnest(
        "POST", "tasks", body={"kind": "analyze", "record_path": str(package), "cpu": True}
    )
    analyzer = str(body["task"]["id"])
    await wait_for_analyzer(dlnest, body["task"]["id"])
    _, body = await dlnest(
        "POST", "tasks", body={"kind": "continue", "record_path": str(package), "cpu": True}
    )  # training the package an analyzer reads is allowed
    training = str(body["task"]["id"])

    cases: list[tuple[tuple[str, ...], Any, int, str]] = [
        ((analyzer, "experiments"), {"name": "../ident"}, 400, "plain script names"),
        ((analyzer, "experiments"), {"name": "sub/ident"}, 400, "plain script names"),
        ((analyzer, "experiments"), {"name": "missing"}, 400, "no script missing.py"),
        ((analyzer, "experiments"), {"name": "noexp"}, 400, "defines no function experience"),
        ((analyzer, "experiments"), {"name": "ident", "code": "1"}, 400, "exactly one of"),
        ((analyzer, "experiments"), {"name": 3}, 400, "field 'name' must be a string"),
        ((training, "experiments"), {"name": "ident"}, 400, "not an analyzer"),
        (("999", "experiments"), {"name": "ident"}, 404, "no task with id 999"),
        ((analyzer, "interrupt"), None, 200, ""),
    ]
    for path, request, status, message in cases:
        code, reply = await dlnest("POST", "tasks", *path, body=request)
        assert code == status and message in json.dumps(reply), (path, request, reply)
    code, reply = await dlnest("GET", "tasks", analyzer, "experiments", "77")
    assert code == 404 and "has no experiment 77" in reply["error"]["message"]
    code, reply = await dlnest("GET", "tasks", analyzer, "experiments", "1", params={"wait_s": "x"})
    assert code == 400 and "wait_s" in reply["error"]["message"]
    for request, status, message in [
        ({"record_path": str(package), "checkpoint_id": 999}, 404, "999"),
        ({"record_path": str(untrained)}, 400, "holds no checkpoint"),
        ({"record_path": str(package), "scripts_dir": "/etc"}, 403, "outside the folders"),
        ({"record_path": str(package), "ddp": True}, 400, "unknown field 'ddp'"),
    ]:
        code, reply = await dlnest(
            "POST", "tasks", body={"kind": "analyze", "cpu": True, **request}
        )
        assert code == status and message in reply["error"]["message"], (request, reply)

    assert (await run_experiment(dlnest, int(analyzer), name="ident"))["state"] == "succeeded"
    await dlnest("DELETE", "tasks", analyzer)
    await wait_for_state(dlnest, int(training))


async def test_a_console_attached_to_a_deleted_analyzer_is_told_it_ended(
    jp_root_dir: Path, dlnest: Any
) -> None:
    package = trained_package(jp_root_dir, {"ident": IDENT})
    _, body = await dlnest("POST", "tasks", body={"kind": "analyze", "record_path": str(package)})
    task = await wait_for_analyzer(dlnest, body["task"]["id"])
    _, attach = await dlnest("GET", "tasks", str(task["id"]), "attach")
    async with _attached(attach["attach"]["connection_file"]) as console:
        await dlnest("DELETE", "tasks", str(task["id"]))

        said = ""
        while "ended" not in said:  # the kernel's last output, sent to every client
            message = await console.get_iopub_msg(timeout=30)
            if message["msg_type"] == "stream":
                said += message["content"]["text"]
    _, gone = await dlnest("GET", "tasks", str(task["id"]))
    assert said.strip() == (
        f"dlnest: analyzer {task['id']} ended (deleted): its model is unloaded and this kernel "
        f"shuts down. To load it again: %dlnest analyze -r {package} -c 1"
    )
    assert (gone["task"]["state"], gone["task"]["progress"]["analyzer"]) == ("cancelled", "ended")


async def test_an_analyzer_busy_with_a_cell_of_an_attached_client_says_so(
    jp_root_dir: Path, dlnest: Any
) -> None:
    package = trained_package(jp_root_dir, {"ident": IDENT})
    _, body = await dlnest("POST", "tasks", body={"kind": "analyze", "record_path": str(package)})
    task = await wait_for_analyzer(dlnest, body["task"]["id"])
    _, attach = await dlnest("GET", "tasks", str(task["id"]), "attach")
    async with _attached(attach["attach"]["connection_file"]) as notebook:
        stop = jp_root_dir / "stop"
        notebook.execute(
            f"import os, time\nwhile not os.path.exists({str(stop)!r}): time.sleep(0.05)"
        )

        seen = await _kernel_state(dlnest, task["id"], "busy")
        stop.touch()
        after = await _kernel_state(dlnest, task["id"], "idle")
    assert (seen, after) == ("busy", "idle")


async def _kernel_state(dlnest: Any, task_id: int, wanted: str) -> str:
    async def reads() -> bool:
        _, body = await dlnest("GET", "tasks", str(task_id))
        return bool(body["task"]["progress"].get("kernel") == wanted)

    await wait_until_async(reads, 60, f"analyzer {task_id}'s kernel to read {wanted}")
    return wanted


async def test_a_kernel_shut_down_from_jupyterlab_ends_its_analyzer_task(
    jp_root_dir: Path, dlnest: Any, jp_fetch: Any
) -> None:
    package = trained_package(jp_root_dir, {"ident": IDENT})
    _, body = await dlnest(
        "POST", "tasks", body={"kind": "analyze", "record_path": str(package), "memory_mb": 2000}
    )
    task = await wait_for_analyzer(dlnest, body["task"]["id"])

    await jp_fetch("api", "kernels", task["kernel_id"], method="DELETE")  # JupyterLab's "Shut Down"
    ended = await wait_for_state(dlnest, task["id"])
    _, devices = await dlnest("GET", "devices")

    assert (ended["state"], ended["progress"]["analyzer"]) == ("succeeded", "ended")
    assert devices["devices"][0]["task_ids"] == []


async def test_a_kernel_restarted_from_jupyterlab_loads_its_package_again(
    jp_root_dir: Path, dlnest: Any, jp_fetch: Any
) -> None:
    package = trained_package(jp_root_dir, {"ident": IDENT, "spin": SPIN})
    _, body = await dlnest(
        "POST", "tasks", body={"kind": "analyze", "record_path": str(package), "cpu": True}
    )
    task = await wait_for_analyzer(dlnest, body["task"]["id"])
    await run_experiment(dlnest, task["id"], code="before_restart = 1")
    _, body = await dlnest("POST", "tasks", str(task["id"]), "experiments", body={"name": "spin"})
    spinning = await _printing(dlnest, task["id"], body["experiment"]["id"])

    await jp_fetch("api", "kernels", task["kernel_id"], "restart", method="POST", body="{}")
    interrupted = await follow_experiment(dlnest, task["id"], spinning)
    reloaded = await _wait_for_loads(dlnest, task["id"], 2)
    after = await run_experiment(
        dlnest, task["id"], code="print('before_restart' in dir(), model is self.runner)"
    )

    assert interrupted["state"] == "interrupted"  # a restart interrupts first
    assert (reloaded["state"], reloaded["kernel_id"]) == ("running", task["kernel_id"])
    assert after["output"] == "False True\n"  # a fresh namespace with the model loaded again
    await dlnest("DELETE", "tasks", str(task["id"]))


async def _wait_for_loads(call: Any, task_id: int, loads: int) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def loaded() -> dict[str, Any] | None:
        _, body = await call("GET", "tasks", str(task_id))
        task: dict[str, Any] = body["task"]
        seen.update(task)  # for the message if it never loads
        progress = task["progress"]
        return (
            task if progress.get("loads") == loads and progress.get("analyzer") == "ready" else None
        )

    return await wait_until_async(
        loaded, 120, lambda: f"analyzer {task_id} to load {loads} times: {seen}", every_s=0.2
    )


async def test_an_experiment_sent_right_behind_a_failing_one_still_runs(
    jp_root_dir: Path, dlnest: Any
) -> None:
    package = trained_package(jp_root_dir, {"ident": IDENT})
    _, body = await dlnest(
        "POST", "tasks", body={"kind": "analyze", "record_path": str(package), "cpu": True}
    )
    task_id = body["task"]["id"]
    await wait_for_analyzer(dlnest, task_id)

    # The second is queued while the first still runs: a kernel's stop_on_error would abort it.
    # The first fails only once the second has been sent, however slow the machine.
    go = jp_root_dir / "go"
    failing = {
        "code": f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.01)\n1 / 0"
    }
    _, first = await dlnest("POST", "tasks", str(task_id), "experiments", body=failing)
    status, sent = await dlnest(
        "POST", "tasks", str(task_id), "experiments", body={"name": "ident"}
    )
    assert status == 201, sent
    go.touch()
    second = await follow_experiment(dlnest, task_id, sent["experiment"])
    _, failed = await dlnest(
        "GET", "tasks", str(task_id), "experiments", str(first["experiment"]["id"]),
        params={"wait_s": 10},
    )  # fmt: skip

    assert failed["experiment"]["state"] == "failed", failed
    assert (second["state"], second["result"]) == ("succeeded", "42"), second
    await dlnest("DELETE", "tasks", str(task_id))


async def test_an_analyzer_starts_from_its_packages_measured_peak_and_is_raised_if_it_uses_more(
    jp_root_dir: Path, dlnest: Any
) -> None:
    # A run on a pretend card that used 1,500 MiB teaches its package's analyzers.
    config = write_project(jp_root_dir / "p", epochs=1, args={"fake_gpu_memory_mb": 1500})
    (jp_root_dir / "p" / "AnalyzeScripts").mkdir()
    (jp_root_dir / "p" / "AnalyzeScripts" / "ident.py").write_text(IDENT)
    _, body = await dlnest("POST", "tasks", body={"kind": "train", "config_path": str(config)})
    trained = await wait_for_state(dlnest, body["task"]["id"])
    assert (trained["state"], trained["peak_memory_mb"]) == ("succeeded", 1500)
    package = trained["package_path"]

    _, body = await dlnest("POST", "tasks", body={"kind": "analyze", "record_path": package})
    learned = body["task"]
    assert (learned["memory_source"], learned["memory_learned_mb"]) == ("learned", 1906)
    assert learned["reserved_mb"] == 1906  # 1,500 + 10% + 256 MiB, not 90% of the card
    await wait_for_analyzer(dlnest, learned["id"])
    experiment = await run_experiment(dlnest, learned["id"], name="ident")
    assert experiment["state"] == "succeeded"

    # Given too little, its kernel's figure raises the ledger at once, and says so.
    _, body = await dlnest(
        "POST", "tasks", body={"kind": "analyze", "record_path": package, "memory_mb": 1000}
    )
    small = body["task"]

    async def raised() -> dict[str, Any] | None:
        _, reply = await dlnest("GET", "tasks", str(small["id"]))
        return reply["task"] if reply["task"]["memory_over"] else None

    over = await wait_until_async(raised, 180, "the analyzer's reservation raised", every_s=0.2)
    assert (over["reserved_mb"], over["peak_memory_mb"]) == (1500, 1500)
    card = over["devices"][0]
    assert f"uses 1,500 MiB on GPU {card}, reserved 1,000" in over["memory_note"]
    _, still = await dlnest("GET", "tasks", str(learned["id"]))
    assert still["task"]["reserved_mb"] == 1906  # an analyzer's reservation never shrinks
    for task_id in (learned["id"], small["id"]):
        await dlnest("DELETE", "tasks", str(task_id))
    await wait_until_async(  # its figures go with its kernel
        lambda: _nothing_left(Path(package)), 60, "the analyzers' memory files removed"
    )


async def _nothing_left(package: Path) -> bool:
    return not list(package.glob("_analyzer*.memory.json"))
