"""Mail servers on this machine for DLNest's MailsNote plugin: one that takes mail (aiosmtpd,
with a login), and one that accepts connections and never answers."""

from __future__ import annotations

import socket
import threading
from email import message_from_string
from typing import Any

from .dlnest_project import PASSWORD

USER = "dlnest@localhost"


class Mailbox:
    """An SMTP server (aiosmtpd) that takes mail only from USER with PASSWORD."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.mails: list[Any] = []

        def authenticate(*args: Any) -> AuthResult:
            data = args[-1]
            return AuthResult(
                success=(data.login, data.password) == (USER.encode(), PASSWORD.encode())
            )

        self.port = free_port()
        self.controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=authenticate,
            auth_required=True,
            auth_require_tls=False,
        )
        self.controller.start()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(message_from_string(envelope.content.decode()))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SilentServer:
    """Accepts connections and never answers: a mail host that hangs."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.socket.getsockname()[1])
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.socket.accept()[0])
            except OSError:
                return


def text_of(mail: Any) -> str:
    return str(mail.get_payload(decode=True).decode()).replace("\r\n", "\n")
