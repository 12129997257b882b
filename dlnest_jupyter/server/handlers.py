"""The one handler under /dlnest/api/: authenticate, authorise, and hand the request to the API.

It is `@tornado.web.authenticated` (outside) and `@authorized` (inside), so a request needs the
server's token, or a cookie plus XSRF, or the kernel key (below). Everything else (routes,
checks, verbs, errors, statuses) is the dispatcher's (`service/api/dispatcher.py`), which in-process clients
call directly; so every path under /dlnest/api/ answers JSON, an unknown one included.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from jupyter_server.auth import User
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import url_path_join
from tornado import web

from ..service.api import Api

API_PREFIX = "dlnest/api"
KERNEL_USER = User(username="dlnest-kernel", name="a kernel of this server")


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

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """What Tornado or the server refuses before the API sees it (no token, a form body it
        cannot parse) answers in the API's error shape too."""
        error = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(error, "log_message", None) or self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": {"type": "HTTPError", "message": message}}))

    def compute_etag(self) -> str | None:
        return None  # live replies: nobody revalidates them, and hashing each costs time

    async def _dispatch(self) -> None:
        api: Api = self.settings["dlnest_api"]
        # The raw path, still percent-encoded: the dispatcher unquotes, as for in-process calls.
        prefix = url_path_join(self.base_url, API_PREFIX)
        target = self.request.path[len(prefix) :].lstrip("/")
        if self.request.query:
            target += "?" + self.request.query
        reply = await api.call_async(self.request.method or "GET", target, self.request.body)
        if self.request.headers.get("Authorization"):
            # A token-authenticated request gets jupyter_server's login cookie (about 450 bytes)
            # on every reply, since API clients send none back; it would be a third of a
            # dashboard refresh on the wire. Browsers authenticate by cookie and get none anyway.
            getattr(self, "_new_cookie", {}).clear()
        self.set_status(reply.status)
        self.set_header("Content-Type", "application/json")
        self.finish(reply.text)

    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self._dispatch()

    @web.authenticated
    @authorized
    async def post(self) -> None:
        await self._dispatch()

    @web.authenticated
    @authorized
    async def put(self) -> None:
        await self._dispatch()

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        await self._dispatch()

    @web.authenticated
    @authorized
    async def patch(self) -> None:
        await self._dispatch()


# Nothing captured: Tornado would decode a captured part and refuse bad UTF-8 with an HTML page.
ROUTES = [(r"/dlnest/api(?:/.*)?", DLNestHandler)]
