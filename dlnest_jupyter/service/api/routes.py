"""The routes of DESIGN.md section 6, as data, and the verbs behind them.

Each verb reads a matched request (`api.Call`), checks what it carries against the field tables
(`core/fields.py`; task kinds in `task_kinds.py`, settings in `core/settings.py`), confines the
paths it names, calls the service, and shapes the reply. Paths are relative to `/dlnest/api/`.
"""

from __future__ import annotations

from ...core.errors import RequestError
from ...core.fields import FieldSpec, boolean, integer, one_of, path, text, validated
from ...core.package import STEPS_FILE
from ...core.plugin_configs import is_plugin_file
from ...core.project_plugins import add_plugins as add_project_plugins
from ...core.project_plugins import plugin_names
from ...core.tasks import TaskKind
from ...core.templates import DEFAULT_TEMPLATE, TEMPLATE_NAMES
from ...core.templates import new_project as create_project
from .. import submissions
from ..sweeps.verbs import SWEEP_FIELDS, SWEEP_PATHS
from ..task_kinds import KINDS, PathRule
from . import requests as api_requests
from .call import Call, Reply, Route, Wait, json_reply

_KIND = FieldSpec(one_of(*KINDS), required=True)
EXPERIMENT_FIELDS = {
    "name": FieldSpec(text(255)),
    "code": FieldSpec(text(64 * 1024 * 1024)),  # a cell; the body limit is the real bound
}
INTERRUPT_FIELDS = {
    "experiment": FieldSpec(integer(1)),  # only while this experiment runs: a late click is none
}
PROJECT_FIELDS = {
    "path": FieldSpec(path, required=True),
    "template": FieldSpec(one_of(*TEMPLATE_NAMES)),
    "plugins": FieldSpec(plugin_names),  # DLNest's new -p; a list, so every -p arrives
}
PLUGINS_FIELDS = {
    "path": FieldSpec(path, required=True),  # the project folder
    "plugins": FieldSpec(plugin_names, required=True),
    "full": FieldSpec(boolean),  # addP -F: each plugin's whole config, not its default keys
}


def list_tasks(call: Call) -> Reply:
    """Every task, or with `since=V` those changed after version V (and the running ones)."""
    since = api_requests.offset(call.query, "since") if "since" in call.query else None
    version, tasks = call.service.queries.tasks_json(since)
    # Texts from the store, joined: 10,000 tasks must list in well under 150 ms.
    return Reply(200, f'{{"version": {version}, "tasks": [' + ", ".join(tasks) + "]}")


def submit_task(call: Call) -> Reply:
    body = call.body()
    if "kind" not in body:
        raise RequestError("missing field 'kind'")
    kind = body["kind"]
    if not (isinstance(kind, str) and kind in KINDS):  # [] or {} would not even hash
        raise RequestError(f"field 'kind' must be one of {', '.join(KINDS)}")
    spec = KINDS[TaskKind(kind)]
    fields = validated(body, {"kind": _KIND, **spec.fields})
    del fields["kind"]
    for name, rule in spec.paths.items():
        if fields.get(name) is not None:
            fields[name] = call.path(name, fields[name], folder=rule is PathRule.FOLDER)
    task = call.service.submit(spec.kind, **fields)
    # What the submission warned of (a freq key the config lacks): the task still queued.
    return json_reply(201, {"task": task.to_json(), "warnings": task.spec.get("warnings", [])})


def get_task(call: Call) -> Reply:
    return json_reply(200, {"task": call.service.queries.task(call.ids["task"]).to_json()})


def delete_task(call: Call) -> Reply:
    return json_reply(200, {"task": call.service.delete(call.ids["task"]).to_json()})


def task_output(call: Call) -> Reply:
    end, output = call.service.queries.output(call.ids["task"], api_requests.offset(call.query))
    return json_reply(200, {"offset": end, "text": output})


def task_metrics(call: Call) -> Reply:
    offset = api_requests.offset(call.query)
    return json_reply(200, call.service.queries.metrics(call.ids["task"], offset))


def task_steps(call: Call) -> Reply:
    """Like metrics, from `_steps.jsonl`: each epoch's logged values, step by step."""
    offset = api_requests.offset(call.query)
    return json_reply(200, call.service.queries.metrics(call.ids["task"], offset, STEPS_FILE))


def task_checkpoints(call: Call) -> Reply:
    return json_reply(200, call.service.queries.checkpoints(call.ids["task"]))


def forget_memory(call: Call) -> Reply:
    """What earlier runs of the task's job used is forgotten: the next reserve the default."""
    return json_reply(200, submissions.forget_memory(call.service.intake, call.ids["task"]))


def analyzer_scripts(call: Call) -> Reply:
    return json_reply(200, {"scripts": call.service.experiments.scripts(call.ids["task"])})


def run_experiment(call: Call) -> Reply:
    fields = validated(call.body(), EXPERIMENT_FIELDS)
    if ("name" in fields) == ("code" in fields):
        raise RequestError("give exactly one of 'name' (a script in the scripts folder) or 'code'")
    verbs, task_id = call.service.experiments, call.ids["task"]
    if "name" in fields:
        experiment = verbs.run_script(task_id, fields["name"])
    else:
        experiment = verbs.run_code(task_id, fields["code"])
    return json_reply(201, {"experiment": experiment.to_json()})


def get_experiment(call: Call) -> Reply | Wait:
    offset = api_requests.offset(call.query)
    shown = api_requests.offset(call.query, "display_offset")
    wait_s = api_requests.wait_s(call.query)
    verbs = call.service.experiments
    experiment = verbs.get(call.ids["task"], call.ids["experiment"])

    def reply() -> Reply:
        return json_reply(200, {"experiment": experiment.to_json(offset, shown)})

    if wait_s > 0:  # long polling: answer at the first change, or when wait_s is up
        return Wait(verbs.change(experiment, offset, shown), wait_s, reply)
    return reply()


def interrupt(call: Call) -> Reply:
    fields = validated(call.body(), INTERRUPT_FIELDS)
    task_id = call.ids["task"]
    interrupted = call.service.experiments.interrupt(task_id, fields.get("experiment"))
    task = call.service.queries.task(task_id).to_json()
    return json_reply(200, {"task": task, "interrupted": interrupted})


def attach(call: Call) -> Reply:
    return json_reply(200, {"attach": call.service.experiments.attach(call.ids["task"])})


def list_sweeps(call: Call) -> Reply:
    return json_reply(200, {"sweeps": call.service.sweeps.all()})


def submit_sweep(call: Call) -> Reply:
    """A grid or a search over config values, its trials queued as train tasks."""
    fields = validated(call.body(), SWEEP_FIELDS)
    for name in SWEEP_PATHS:
        if fields.get(name) is not None:
            fields[name] = call.path(name, fields[name])
    sweep, warnings = call.service.sweeps.submit(**fields)
    return json_reply(201, {"sweep": sweep, "warnings": warnings})


def get_sweep(call: Call) -> Reply:
    return json_reply(200, {"sweep": call.service.sweeps.get(call.ids["sweep"])})


def stop_sweep(call: Call) -> Reply:
    return json_reply(200, {"sweep": call.service.sweeps.stop(call.ids["sweep"])})


def devices(call: Call) -> Reply:
    return json_reply(200, {"devices": call.service.queries.devices()})


def scheduler(call: Call) -> Reply:
    return json_reply(200, {"scheduler": call.service.queries.scheduler()})


def get_settings(call: Call) -> Reply:
    return json_reply(200, call.service.queries.settings().to_json())


def put_settings(call: Call) -> Reply:
    # Checked by Settings.updated, against the one table of settings (core/settings.py).
    return json_reply(200, call.service.update_settings(call.body()).to_json())


def new_project(call: Call) -> Reply:
    fields = validated(call.body(), PROJECT_FIELDS)
    where = call.path("path", fields["path"])
    plugins = _confined_plugins(call, fields.get("plugins", []))
    created, added = create_project(where, fields.get("template", DEFAULT_TEMPLATE), plugins)
    return json_reply(
        201, {"path": str(created), "plugins": added.to_json() if added is not None else None}
    )


def add_plugins(call: Call) -> Reply:
    """DLNest's addP: plugins and their configs added to an existing project's config."""
    fields = validated(call.body(), PLUGINS_FIELDS)
    where = call.path("path", fields["path"], folder=True)
    plugins = _confined_plugins(call, fields["plugins"])
    added = add_project_plugins(where, plugins, fields.get("full", False))
    return json_reply(200, {"path": str(where), "plugins": added.to_json()})


def _confined_plugins(call: Call, entries: list[str]) -> list[str]:
    """Plugin files named by path lie under the served folders, like every path a request
    names (the server reads them, and training processes will run them)."""
    return [str(call.path("plugins", e)) if is_plugin_file(e) else e for e in entries]


def read_log(call: Call) -> Reply:
    end, written = call.service.log.read(api_requests.offset(call.query))
    return json_reply(200, {"offset": end, "text": written})


def clear_log(call: Call) -> Reply:
    call.service.log.clear()
    return json_reply(200, {"offset": call.service.log.read()[0], "text": ""})


ROUTES: tuple[Route, ...] = (
    Route("GET", "tasks", list_tasks),
    Route("POST", "tasks", submit_task),
    Route("GET", "tasks/{task}", get_task),
    Route("DELETE", "tasks/{task}", delete_task),
    Route("GET", "tasks/{task}/output", task_output),
    Route("GET", "tasks/{task}/metrics", task_metrics),
    Route("GET", "tasks/{task}/steps", task_steps),
    Route("GET", "tasks/{task}/checkpoints", task_checkpoints),
    Route("DELETE", "tasks/{task}/memory", forget_memory),
    Route("GET", "tasks/{task}/scripts", analyzer_scripts),
    Route("POST", "tasks/{task}/experiments", run_experiment),
    Route("GET", "tasks/{task}/experiments/{experiment}", get_experiment),
    Route("POST", "tasks/{task}/interrupt", interrupt),
    Route("GET", "tasks/{task}/attach", attach),
    Route("GET", "sweeps", list_sweeps),
    Route("POST", "sweeps", submit_sweep),
    Route("GET", "sweeps/{sweep}", get_sweep),
    Route("DELETE", "sweeps/{sweep}", stop_sweep),
    Route("GET", "devices", devices),
    Route("GET", "scheduler", scheduler),
    Route("GET", "settings", get_settings),
    Route("PUT", "settings", put_settings),
    Route("POST", "projects", new_project),
    Route("POST", "projects/plugins", add_plugins),
    Route("GET", "log", read_log),
    Route("DELETE", "log", clear_log),
)
