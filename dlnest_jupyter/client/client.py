"""One client of the REST API (DESIGN.md section 6), over one of two transports.

`HttpTransport` talks to a Jupyter server's `/dlnest/api/` on kept-alive connections;
`InProcessTransport` hands the same request to the API dispatcher of a service in this process
(embedded mode: no server, no sockets). Both carry the same JSON bytes to the same dispatcher
(`service/api/dispatcher.py`), so replies and errors are the same in both: an error arrives as
`ClientError` with the API's status, type and message. The magics and the dashboard use only this.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from ..core.errors import DLNestError
from .transport import KeepAliveTransport

__all__ = ["Client", "ClientError", "HttpTransport", "InProcessTransport"]

if TYPE_CHECKING:  # for annotations only: a client over HTTP never loads the service's API
    from ..service.api import Api


class ClientError(DLNestError):
    """A request the scheduler refused, with its reason."""

    def __init__(self, message: str, status: int | None = None, kind: str | None = None) -> None:
        self.status, self.kind = status, kind
        super().__init__(message)


class Transport(Protocol):
    @property
    def description(self) -> str: ...

    def request(self, method: str, target: str, body: bytes | None) -> tuple[int, bytes | str]:
        """Send `method target` (a path under /dlnest/api/ with its query); (status, JSON)."""

    def close(self) -> None: ...


class HttpTransport:
    def __init__(self, base_url: str, token: str, connections: KeepAliveTransport | None = None):
        """`base_url`: the server's, e.g. http://127.0.0.1:8888/ (a missing slash is added)."""
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.token = token
        self.connections = connections or KeepAliveTransport()

    @property
    def description(self) -> str:
        return f"the Jupyter server at {self.base_url}"

    def request(self, method: str, target: str, body: bytes | None) -> tuple[int, bytes | str]:
        url = urllib.parse.urljoin(self.base_url, "dlnest/api/" + target)
        headers = {"Authorization": f"token {self.token}", "Content-Type": "application/json"}
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""  # Tornado wants a body on these
        try:
            return self.connections(method, url, headers, body)
        except ConnectionRefusedError as refused:
            raise ClientError(f"cannot reach the Jupyter server at {url}: {refused}") from refused
        except OSError as lost:  # a reset connection, a timeout mid-reply, a name not found
            raise ClientError(f"lost the Jupyter server at {url}: {lost}") from lost

    def close(self) -> None:
        """Close this thread's kept connection (they also close when their thread ends)."""
        self.connections.close()


class InProcessTransport:
    def __init__(self, api: Api) -> None:
        self.api = api

    @property
    def description(self) -> str:
        return f"an in-process scheduler (queue: {self.api.service.store.path})"

    def request(self, method: str, target: str, body: bytes | None) -> tuple[int, bytes | str]:
        reply = self.api.call(method, target, body)
        return reply.status, reply.text

    def close(self) -> None:
        pass


class Client:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    @classmethod
    def over_http(cls, base_url: str, token: str) -> Client:
        return cls(HttpTransport(base_url, token))

    @property
    def description(self) -> str:
        return self.transport.description

    @property
    def in_process(self) -> bool:
        """True when the scheduler runs in this process (no Jupyter server lists its kernels)."""
        return isinstance(self.transport, InProcessTransport)

    def close(self) -> None:
        self.transport.close()

    # -- the verbs --------------------------------------------------------------------------
    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.submit_warned(body)[0]

    def submit_warned(self, body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The queued task, and what the submission warned of (a freq key the config lacks)."""
        reply = self.call("POST", "tasks", body)
        return cast(dict[str, Any], reply["task"]), list(reply.get("warnings") or [])

    def tasks(self) -> list[dict[str, Any]]:
        return self._list("tasks", "tasks")

    def tasks_since(self, version: int | None) -> dict[str, Any]:
        """`{"version", "tasks"}`: the tasks changed after `version` and the running ones (all
        of them when `version` is None); pass the returned version next time."""
        return self.call("GET", "tasks" if version is None else f"tasks?since={version}")

    def task(self, task_id: int) -> dict[str, Any]:
        return self._get("GET", f"tasks/{task_id}", "task")

    def delete(self, task_id: int) -> dict[str, Any]:
        return self._get("DELETE", f"tasks/{task_id}", "task")

    def submit_sweep(self, body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The new sweep (its first trials queued), and what its request was warned of."""
        reply = self.call("POST", "sweeps", body)
        return cast(dict[str, Any], reply["sweep"]), list(reply.get("warnings") or [])

    def sweeps(self) -> list[dict[str, Any]]:
        return self._list("sweeps", "sweeps")

    def sweep(self, sweep_id: int) -> dict[str, Any]:
        return self._get("GET", f"sweeps/{sweep_id}", "sweep")

    def stop_sweep(self, sweep_id: int) -> dict[str, Any]:
        return self._get("DELETE", f"sweeps/{sweep_id}", "sweep")

    def output(self, task_id: int, offset: int = 0) -> dict[str, Any]:
        return self.call("GET", f"tasks/{task_id}/output?offset={offset}")

    def metrics(self, task_id: int, offset: int = 0) -> dict[str, Any]:
        """`{"offset", "rows", "skipped"}`: the task's metric rows after byte `offset`."""
        return self.call("GET", f"tasks/{task_id}/metrics?offset={offset}")

    def steps(self, task_id: int, offset: int = 0) -> dict[str, Any]:
        """`{"offset", "rows", "skipped"}`: per epoch, each logged list's values step by step
        (`{"epoch", "_branch", "values": {key: [...]}, "counts": {key: n}}`)."""
        return self.call("GET", f"tasks/{task_id}/steps?offset={offset}")

    def checkpoints(self, task_id: int) -> dict[str, Any]:
        """`{"head", "checkpoints": [{"id", "epoch", "branch", "parent"}...], "branches"}` of
        the task's package (core/package_state.checkpoints_json)."""
        return self.call("GET", f"tasks/{task_id}/checkpoints")

    def forget_memory(self, task_id: int) -> dict[str, Any]:
        """Forget what earlier runs of the task's job used: `{"fingerprint", "forgotten_runs"}`."""
        return self.call("DELETE", f"tasks/{task_id}/memory")

    def scripts(self, task_id: int) -> list[str]:
        """The script names analyzer `task_id` can run (`runExp NAME`)."""
        return cast(list[str], self.call("GET", f"tasks/{task_id}/scripts")["scripts"])

    def devices(self) -> list[dict[str, Any]]:
        return self._list("devices", "devices")

    def scheduler(self) -> dict[str, Any]:
        """Which service schedules the queue (`leader`), and this one (`this_service`)."""
        return self._get("GET", "scheduler", "scheduler")

    def settings(self) -> dict[str, Any]:
        return self.call("GET", "settings")

    def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        return self.call("PUT", "settings", changes)

    def new_project(self, path: str, template: str, plugins: Sequence[str] = ()) -> dict[str, Any]:
        """`{"path", "plugins"}`; `plugins`: what `new -p` added (null without plugins)."""
        body: dict[str, Any] = {"path": path, "template": template}
        if plugins:  # left out, not [], which the server refuses as naming no plugin
            body["plugins"] = list(plugins)
        return self.call("POST", "projects", body)

    def add_plugins(self, path: str, plugins: Sequence[str], full: bool = False) -> dict[str, Any]:
        """addP: `{"path", "plugins": {"file", "added", "already"}}`."""
        body = {"path": path, "plugins": list(plugins), "full": full}
        return self.call("POST", "projects/plugins", body)

    def log(self, offset: int = 0) -> dict[str, Any]:
        return self.call("GET", f"log?offset={offset}")

    def clear_log(self) -> dict[str, Any]:
        return self.call("DELETE", "log")

    def run_experiment(self, task_id: int, fields: dict[str, str]) -> dict[str, Any]:
        return self._get("POST", f"tasks/{task_id}/experiments", "experiment", fields)

    def experiment(
        self, task_id: int, experiment_id: int, offset: int, display_offset: int, wait_s: float
    ) -> dict[str, Any]:
        query = urllib.parse.urlencode(
            {"offset": offset, "display_offset": display_offset, "wait_s": wait_s}
        )
        return self._get(
            "GET", f"tasks/{task_id}/experiments/{experiment_id}?{query}", "experiment"
        )

    def interrupt(self, task_id: int, experiment_id: int | None = None) -> bool:
        """Interrupt what the analyzer runs, or only `experiment_id` while it runs; returns
        whether anything was interrupted."""
        body = {} if experiment_id is None else {"experiment": experiment_id}
        return bool(self.call("POST", f"tasks/{task_id}/interrupt", body)["interrupted"])

    def attach(self, task_id: int) -> dict[str, Any]:
        return self._get("GET", f"tasks/{task_id}/attach", "attach")

    # -- plumbing ---------------------------------------------------------------------------
    def call(self, method: str, target: str, body: Any = None) -> dict[str, Any]:
        """Any request: its JSON reply, or ClientError with the API's status, type and message."""
        data = json.dumps(body).encode() if body is not None else None
        status, raw = self.transport.request(method, target, data)
        try:
            reply = json.loads(raw) if raw else {}
        except ValueError:
            reply = {}
        if status >= 400:
            error = reply.get("error") if isinstance(reply, dict) else None
            error = error if isinstance(error, dict) else {}
            message = error.get("message") or f"the server answered {status} to {method} {target}"
            raise ClientError(message, status, error.get("type"))
        return reply if isinstance(reply, dict) else {}

    def _get(self, method: str, target: str, key: str, body: Any = None) -> dict[str, Any]:
        return cast(dict[str, Any], self.call(method, target, body)[key])

    def _list(self, target: str, key: str) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self.call("GET", target)[key])


def scheduled_by(scheduler: dict[str, Any]) -> str:
    """Who places this queue's tasks (several servers may share one queue), in a sentence."""
    leader, this = scheduler.get("leader"), scheduler["this_service"]
    if this["leading"]:
        return f"this queue is scheduled here, by the {this['label']}"
    if leader is None:
        return "no service schedules this queue right now; the next one to look takes it over"
    return f"this queue is scheduled by the {leader['label']}; tasks sent here join its queue"
