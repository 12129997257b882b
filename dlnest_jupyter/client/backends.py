"""Two ways to reach the scheduler, one interface: REST to a Jupyter server, or an in-process service.

Both return the REST contract's JSON shapes (DESIGN.md section 6), so the magics and the dashboard
format one thing. Errors arrive as `ClientError` with the server's message.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..core.errors import DLNestError
from ..service.service import DLNestService
from .transport import KeepAliveTransport

Transport = Callable[[str, str, dict[str, str], bytes | None], tuple[int, bytes]]


class ClientError(DLNestError):
    """A request the scheduler refused, with its reason."""

    def __init__(self, message: str, status: int | None = None, kind: str | None = None) -> None:
        self.status, self.kind = status, kind
        super().__init__(message)


class Backend(Protocol):
    @property
    def description(self) -> str: ...

    def submit(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def tasks(self) -> list[dict[str, Any]]: ...
    def task(self, task_id: int) -> dict[str, Any]: ...
    def delete(self, task_id: int) -> dict[str, Any]: ...
    def output(self, task_id: int, offset: int = 0) -> dict[str, Any]: ...
    def devices(self) -> list[dict[str, Any]]: ...
    def settings(self) -> dict[str, Any]: ...
    def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]: ...
    def new_project(self, path: str, template: str) -> dict[str, Any]: ...
    def log(self, offset: int = 0) -> dict[str, Any]: ...
    def clear_log(self) -> dict[str, Any]: ...
    def run_experiment(self, task_id: int, fields: dict[str, str]) -> dict[str, Any]: ...
    def experiment(
        self, task_id: int, experiment_id: int, offset: int, display_offset: int, wait_s: float
    ) -> dict[str, Any]: ...
    def interrupt(self, task_id: int) -> dict[str, Any]: ...
    def attach(self, task_id: int) -> dict[str, Any]: ...


@dataclass
class RestBackend:
    base_url: str  # ends with "/", e.g. http://127.0.0.1:8888/
    token: str
    transport: Transport = field(default_factory=KeepAliveTransport)

    @property
    def description(self) -> str:
        return f"the Jupyter server at {self.base_url}"

    def close(self) -> None:
        """Close this thread's kept connection (they also close when their thread ends)."""
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "tasks", body)["task"]  # type: ignore[no-any-return]

    def tasks(self) -> list[dict[str, Any]]:
        return self._call("GET", "tasks")["tasks"]  # type: ignore[no-any-return]

    def task(self, task_id: int) -> dict[str, Any]:
        return self._call("GET", f"tasks/{task_id}")["task"]  # type: ignore[no-any-return]

    def delete(self, task_id: int) -> dict[str, Any]:
        return self._call("DELETE", f"tasks/{task_id}")["task"]  # type: ignore[no-any-return]

    def output(self, task_id: int, offset: int = 0) -> dict[str, Any]:
        return self._call("GET", f"tasks/{task_id}/output?offset={offset}")

    def devices(self) -> list[dict[str, Any]]:
        return self._call("GET", "devices")["devices"]  # type: ignore[no-any-return]

    def settings(self) -> dict[str, Any]:
        return self._call("GET", "settings")

    def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        return self._call("PUT", "settings", changes)

    def new_project(self, path: str, template: str) -> dict[str, Any]:
        return self._call("POST", "projects", {"path": path, "template": template})

    def log(self, offset: int = 0) -> dict[str, Any]:
        return self._call("GET", f"log?offset={offset}")

    def clear_log(self) -> dict[str, Any]:
        return self._call("DELETE", "log")

    def run_experiment(self, task_id: int, fields: dict[str, str]) -> dict[str, Any]:
        return self._call("POST", f"tasks/{task_id}/experiments", fields)["experiment"]  # type: ignore[no-any-return]

    def experiment(
        self, task_id: int, experiment_id: int, offset: int, display_offset: int, wait_s: float
    ) -> dict[str, Any]:
        query = f"offset={offset}&display_offset={display_offset}&wait_s={wait_s}"
        return self._call("GET", f"tasks/{task_id}/experiments/{experiment_id}?{query}")[  # type: ignore[no-any-return]
            "experiment"
        ]

    def interrupt(self, task_id: int) -> dict[str, Any]:
        return self._call("POST", f"tasks/{task_id}/interrupt")["task"]  # type: ignore[no-any-return]

    def attach(self, task_id: int) -> dict[str, Any]:
        return self._call("GET", f"tasks/{task_id}/attach")["attach"]  # type: ignore[no-any-return]

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        data = (
            json.dumps(body).encode()
            if body is not None
            else (b"" if method in ("POST", "PUT") else None)
        )
        headers = {"Authorization": f"token {self.token}", "Content-Type": "application/json"}
        url = urllib.parse.urljoin(self.base_url, f"dlnest/api/{path}")
        try:
            status, raw = self.transport(method, url, headers, data)
        except ConnectionRefusedError as refused:
            raise ClientError(f"cannot reach the Jupyter server at {url}: {refused}") from refused
        except OSError as lost:  # a reset connection, a timeout mid-reply, a name not found
            raise ClientError(f"lost the Jupyter server at {url}: {lost}") from lost
        try:
            reply = json.loads(raw) if raw else {}
        except ValueError:
            reply = {}
        if status >= 400:
            error = reply.get("error", {}) if isinstance(reply, dict) else {}
            message = error.get("message") or f"the server answered {status} to {method} {path}"
            raise ClientError(message, status, error.get("type"))
        return reply


class EmbeddedBackend:
    """The scheduler inside this process (no Jupyter server found): same verbs, same shapes."""

    def __init__(self, service: DLNestService) -> None:
        self.service = service

    @property
    def description(self) -> str:
        return f"an in-process scheduler (queue: {self.service.store.path})"

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        fields = dict(body)
        kind = fields.pop("kind")
        if kind == "train":
            return self.service.submit_train(fields.pop("config_path"), **fields).to_json()
        if kind == "analyze":
            return self.service.submit_analyze(fields.pop("record_path"), **fields).to_json()
        return self.service.submit_continue(fields.pop("record_path"), **fields).to_json()

    def tasks(self) -> list[dict[str, Any]]:
        return [t.to_json() for t in self.service.tasks()]

    def task(self, task_id: int) -> dict[str, Any]:
        return self.service.task(task_id).to_json()

    def delete(self, task_id: int) -> dict[str, Any]:
        return self.service.delete(task_id).to_json()

    def output(self, task_id: int, offset: int = 0) -> dict[str, Any]:
        end, text = self.service.output(task_id, offset)
        return {"offset": end, "text": text}

    def devices(self) -> list[dict[str, Any]]:
        return self.service.devices()

    def settings(self) -> dict[str, Any]:
        return self.service.settings().to_json()

    def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        return self.service.update_settings(changes).to_json()

    def new_project(self, path: str, template: str) -> dict[str, Any]:
        return {"path": str(self.service.new_project(Path(path), template))}

    def log(self, offset: int = 0) -> dict[str, Any]:
        end, text = self.service.log.read(offset)
        return {"offset": end, "text": text}

    def clear_log(self) -> dict[str, Any]:
        self.service.log.clear()
        return {"offset": self.service.log.read()[0], "text": ""}

    def run_experiment(self, task_id: int, fields: dict[str, str]) -> dict[str, Any]:
        verbs = self.service.experiments
        if "name" in fields:
            return verbs.run_script(task_id, fields["name"]).to_json()
        return verbs.run_code(task_id, fields["code"]).to_json()

    def experiment(
        self, task_id: int, experiment_id: int, offset: int, display_offset: int, wait_s: float
    ) -> dict[str, Any]:
        verbs = self.service.experiments
        experiment = verbs.get(task_id, experiment_id)
        if wait_s > 0:
            with contextlib.suppress(concurrent.futures.TimeoutError):
                verbs.change(experiment, offset, display_offset).result(wait_s)
        return experiment.to_json(offset, display_offset)

    def interrupt(self, task_id: int) -> dict[str, Any]:
        self.service.experiments.interrupt(task_id)
        return self.service.task(task_id).to_json()

    def attach(self, task_id: int) -> dict[str, Any]:
        return self.service.experiments.attach(task_id)
