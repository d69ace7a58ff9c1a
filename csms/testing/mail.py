"""A real SMTP server for tests (aiosmtpd, from the ``test`` extra) that keeps what it gets, with
the CSMS's SMTP settings pointed at it: ``with smtp_server(monkeypatch) as mailbox: ...``."""

from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Iterator

import pytest

from csms.settings import smtp_settings
from csms.testing import free_port


class Mailbox:
    """aiosmtpd handler: keeps every message, with its envelope recipients in ``X-Envelope-To``."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        message["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address in m["X-Envelope-To"]]

    def subjects(self, address: str) -> list[str]:
        return [str(m["Subject"]) for m in self.to(address)]

    async def wait_for(self, address: str, *, timeout: float = 15.0) -> EmailMessage:
        """The newest message to ``address`` (waits for one)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.to(address):
                return self.to(address)[-1]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no mail to {address}")


@contextmanager
def smtp_server(monkeypatch: pytest.MonkeyPatch, box: Mailbox | None = None) -> Iterator[Mailbox]:
    """Run an SMTP server on a free loopback port for ``box`` (a new :class:`Mailbox` by default)
    and point the CSMS's SMTP settings at it (plain SMTP, sender ``csms@example.org``)."""
    from aiosmtpd.controller import Controller

    box = box or Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("CSMS_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CSMS_SMTP_PORT", str(port))
    monkeypatch.setenv("CSMS_SMTP_FROM", "csms@example.org")
    monkeypatch.setenv("CSMS_SMTP_SECURITY", "none")
    smtp_settings.cache_clear()
    try:
        yield box
    finally:
        controller.stop()
        smtp_settings.cache_clear()
