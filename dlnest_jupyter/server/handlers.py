"""REST handlers under /dlnest/api/: thin translations between HTTP and DLNestService.

Every handler is `@tornado.web.authenticated` (outside) and `@authorized` (inside), so a request
needs the server's token or a cookie plus XSRF. Service calls run on a worker thread (they read
files, fork and write SQLite), never on the server's event loop. Errors leave through one table.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from jupyter_server.auth import User
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from ..core.errors import (
    CheckpointNotFoundError,
    DLNestError,
    PackageBusyError,
    TaskNotFoundError,
    TaskStateError,
)
from ..service.service import DLNestService
from . import requests
from .requests import BodyTooLargeError, ForbiddenPathError

# The one error-to-status table; the first matching class wins, DLNestError is the catch-all.
ERROR_STATUS: tuple[tuple[type[DLNestError], int], ...] = (
    (BodyTooLargeError, 413),
    (ForbiddenPathError, 403),
    (TaskNotFoundError, 404),
    (CheckpointNotFoundError, 404),
    (TaskStateError, 409),
    (PackageBusyError, 409),
    (DLNestError, 400),
)

KERNEL_USER = User(username="dlnest-kernel", name="a kernel of this server")
T = TypeVar("T")
Handler = TypeVar("Handler", bound=Callable[..., Awaitable[None]])


def status_for(error: DLNestError) -> int:
    return next(status for kind, status in ERROR_STATUS if isinstance(error, kind))


def api(method: Handler) -> Handler:
    """Authenticate, authorise, and turn our errors into `{"error": {"type", "message"}}`."""

    @functools.wraps(method)
    async def wrapper(self: DLNestHandler, *args: Any) -> None:
        try:
            await method(self, *args)
        except DLNestError as error:
            self.set_status(status_for(error))
            self.finish(
                json.dumps({"error": {"type": type(error).__name__, "message": str(error)}})
            )

    return web.authenticated(authorized(wrapper))  # type: ignore[return-value]


class DLNestHandler(ExtensionHandlerMixin, APIHandler):
    auth_resource = "dlnest"

    async def prepare(self) -> None:  # type: ignore[override]  # as APIHandler's own
        # The kernel key (app.py) stands in for the token a password-only server cannot give
        # its kernels. Marking the request authenticated before the server's own check makes
        # the identity provider accept it as it would a token: no cookie, no XSRF.
        if self._bears_kernel_key():
            self._jupyter_current_user = KERNEL_USER
            self._token_authenticated = True
        await super().prepare()

    def _bears_kernel_key(self) -> bool:
        key: str | None = self.settings.get("dlnest_kernel_key")
        scheme, _, given = self.request.headers.get("Authorization", "").partition(" ")
        # Bytes: compare_digest refuses str with non-ASCII, and headers are whatever was sent.
        return bool(
            key
            and scheme.lower() == "token"
            and hmac.compare_digest(given.encode("utf-8", "surrogateescape"), key.encode())
        )

    @property
    def service(self) -> DLNestService:
        service: DLNestService = self.settings["dlnest_service"]
        return service

    def body(self) -> dict[str, Any]:
        return requests.parse_json_object(self.request.body, self.settings["dlnest_max_body_bytes"])

    def path_argument(self, raw: str) -> Path:
        return requests.confined(
            raw, self.settings["dlnest_root_dir"], self.settings["dlnest_allowed_roots"]
        )

    async def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(function, *args, **kwargs)
        )

    def reply(self, value: dict[str, Any], status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(value))


class TasksHandler(DLNestHandler):
    @api
    async def get(self) -> None:
        tasks = await self.call(self.service.tasks_json)  # JSON texts: 10,000 must list fast
        self.set_header("Content-Type", "application/json")
        self.finish('{"tasks": [' + ", ".join(tasks) + "]}")

    @api
    async def post(self) -> None:
        body = self.body()
        fields = requests.validated(body, requests.task_fields(body))
        kind = fields.pop("kind")
        if kind == "train":
            config = self.path_argument(fields.pop("config_path"))
            freq = fields.pop("freq_path", None)
            fields["freq_path"] = self.path_argument(freq) if freq is not None else None
            task = await self.call(self.service.submit_train, config, **fields)
        elif kind == "continue":
            record = self.path_argument(fields.pop("record_path"))
            task = await self.call(self.service.submit_continue, record, **fields)
        else:
            record = self.path_argument(fields.pop("record_path"))
            scripts = fields.pop("scripts_dir", None)
            fields["scripts_dir"] = self.path_argument(scripts) if scripts is not None else None
            task = await self.call(self.service.submit_analyze, record, **fields)
        self.reply({"task": task.to_json()}, status=201)


class TaskHandler(DLNestHandler):
    @api
    async def get(self, task_id: str) -> None:
        task = await self.call(self.service.task, int(task_id))
        self.reply({"task": task.to_json()})

    @api
    async def delete(self, task_id: str) -> None:
        task = await self.call(self.service.delete, int(task_id))
        self.reply({"task": task.to_json()})


class TaskOutputHandler(DLNestHandler):
    @api
    async def get(self, task_id: str) -> None:
        offset = requests.offset_argument(self.get_query_argument("offset", None))
        end, text = await self.call(self.service.output, int(task_id), offset)
        self.reply({"offset": end, "text": text})


class ExperimentsHandler(DLNestHandler):
    @api
    async def post(self, task_id: str) -> None:
        fields = requests.experiment_fields(self.body())
        verbs = self.service.experiments
        if "name" in fields:
            experiment = await self.call(verbs.run_script, int(task_id), fields["name"])
        else:
            experiment = await self.call(verbs.run_code, int(task_id), fields["code"])
        self.reply({"experiment": experiment.to_json()}, status=201)


class ExperimentHandler(DLNestHandler):
    @api
    async def get(self, task_id: str, experiment_id: str) -> None:
        offset = requests.offset_argument(self.get_query_argument("offset", None))
        shown = requests.offset_argument(
            self.get_query_argument("display_offset", None), "display_offset"
        )
        wait_s = requests.wait_argument(self.get_query_argument("wait_s", None))
        verbs = self.service.experiments
        experiment = await self.call(verbs.get, int(task_id), int(experiment_id))
        if wait_s > 0:  # long polling: answer at the first change, or when wait_s is up
            change = asyncio.wrap_future(verbs.change(experiment, offset, shown))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(change, wait_s)
        self.reply({"experiment": experiment.to_json(offset, shown)})


class InterruptHandler(DLNestHandler):
    @api
    async def post(self, task_id: str) -> None:
        await self.call(self.service.experiments.interrupt, int(task_id))
        self.reply({"task": (await self.call(self.service.task, int(task_id))).to_json()})


class AttachHandler(DLNestHandler):
    @api
    async def get(self, task_id: str) -> None:
        self.reply({"attach": await self.call(self.service.experiments.attach, int(task_id))})


class DevicesHandler(DLNestHandler):
    @api
    async def get(self) -> None:
        self.reply({"devices": await self.call(self.service.devices)})


class SettingsHandler(DLNestHandler):
    @api
    async def get(self) -> None:
        self.reply((await self.call(self.service.settings)).to_json())

    @api
    async def put(self) -> None:
        changes = requests.validated(self.body(), requests.SETTINGS)
        self.reply((await self.call(self.service.update_settings, changes)).to_json())


class ProjectsHandler(DLNestHandler):
    @api
    async def post(self) -> None:
        fields = requests.validated(self.body(), requests.PROJECT)
        path = self.path_argument(fields["path"])
        created = await self.call(self.service.new_project, path, fields.get("template", "clean"))
        self.reply({"path": str(created)}, status=201)


class LogHandler(DLNestHandler):
    @api
    async def get(self) -> None:
        end, text = self.service.log.read(
            requests.offset_argument(self.get_query_argument("offset", None))
        )
        self.reply({"offset": end, "text": text})

    @api
    async def delete(self) -> None:
        self.service.log.clear()
        self.reply({"offset": self.service.log.read()[0], "text": ""})


ROUTES = [
    (r"/dlnest/api/tasks", TasksHandler),
    (r"/dlnest/api/tasks/(\d+)", TaskHandler),
    (r"/dlnest/api/tasks/(\d+)/output", TaskOutputHandler),
    (r"/dlnest/api/tasks/(\d+)/experiments", ExperimentsHandler),
    (r"/dlnest/api/tasks/(\d+)/experiments/(\d+)", ExperimentHandler),
    (r"/dlnest/api/tasks/(\d+)/interrupt", InterruptHandler),
    (r"/dlnest/api/tasks/(\d+)/attach", AttachHandler),
    (r"/dlnest/api/devices", DevicesHandler),
    (r"/dlnest/api/settings", SettingsHandler),
    (r"/dlnest/api/projects", ProjectsHandler),
    (r"/dlnest/api/log", LogHandler),
]
