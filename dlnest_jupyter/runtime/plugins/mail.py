"""Sending one mail for MailsNote: bounded in time, encrypted when the server can, never silent.

DLNest logged in without TLS, always, and swallowed every failure at debug level; a mail host
that did not answer held the end of training for as long as the OS let a connection hang. Here:
SMTPS on port 465, STARTTLS whenever the server offers it, a login only when a user name is
given, every network step (connect, each command, the data) bounded by `timeout_s`, and a
failure returned for the run's output.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

SMTPS_PORT = 465
FROM_TITLE = "DLNest Mail Plugin"


@dataclass(frozen=True)
class MailSettings:
    host: str
    port: int
    username: str
    password: str
    to: str
    timeout_s: float

    @classmethod
    def from_config(cls, get: Any) -> MailSettings:
        """From a plugin's config (`get(key, default)`): the password may come from the
        environment variable `password_env` names, so it need not be written in a config."""
        password = get("password", "") or ""
        variable = get("password_env", "") or ""
        if variable:
            password = os.environ.get(variable, password)
        username = get("username", "") or ""
        return cls(
            host=get("host", "localhost"),
            port=int(get("port", 25)),
            username=username,
            password=password,
            to=get("to", "") or username,
            timeout_s=float(get("timeout_s", 10)),
        )


def send(settings: MailSettings, subject: str, text: str) -> str | None:
    """Send `text` to the configured address; returns why it was not sent, or None."""
    if not settings.to:
        return "no recipient: set MailsNote's username (or to) in plugins_config"
    message = EmailMessage()
    message["From"] = f"{FROM_TITLE} <{settings.username or settings.to}>"
    message["To"] = settings.to
    message["Subject"] = subject
    message.set_content(text)
    # The certificate is checked when a password is about to cross; without a login, STARTTLS
    # is taken where offered even from a relay with a self-signed certificate (a local
    # postfix's default): better than DLNest's plain text, and no worse for the mail.
    context = ssl.create_default_context()
    if not settings.username:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        if settings.port == SMTPS_PORT:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout_s, context=context
            )
        else:
            smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s)
        with smtp:
            smtp.ehlo()
            if settings.port != SMTPS_PORT and smtp.has_extn("starttls"):
                smtp.starttls(context=context)
                smtp.ehlo()
            if settings.username:
                smtp.login(settings.username, settings.password)
            smtp.send_message(message)
    except (TimeoutError, OSError, smtplib.SMTPException) as error:
        return f"{type(error).__name__}: {error}"
    return None
