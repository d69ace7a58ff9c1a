"""E-mail through the configured SMTP server (``CSMS_SMTP_*``): one way for the core and for
plugins to send a message."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Mapping

import aiosmtplib

from csms.settings import smtp_settings


class MailError(Exception):
    """The message was not sent; the text says why, in words an operator can act on."""


def mail_enabled() -> bool:
    return bool(smtp_settings().host)


async def send_mail(to: str, subject: str, text: str, *, headers: Mapping[str, str] | None = None) -> None:
    """Send a plain-text message; :class:`MailError` when e-mail is off or the server refuses it."""
    settings = smtp_settings()
    if not settings.host:
        raise MailError("e-mail is off: set CSMS_SMTP_HOST")
    message = EmailMessage()
    message["From"] = settings.from_
    message["To"] = to
    message["Subject"] = subject
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text)
    start_tls = {"starttls": True, "none": False, "tls": False}.get(settings.security)
    try:
        await aiosmtplib.send(
            message, hostname=settings.host, port=settings.port, username=settings.user or None,
            password=settings.password or None, use_tls=settings.security == "tls", start_tls=start_tls,
            timeout=settings.timeout)
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise MailError(f"{type(exc).__name__}: {exc}"[:500]) from None
