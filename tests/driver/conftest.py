"""Fixtures of the driver portal tests: a real SMTP server (aiosmtpd) that keeps what it gets,
drivers with cards made over the REST API, and a driver signed in through the e-mail link."""

from __future__ import annotations

import asyncio
import re
import time
from email import message_from_bytes, policy
from email.message import Message
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from csms.settings import smtp_settings
from csms.testing import free_port

LINK = re.compile(r"(https?://\S+/driver/link/[A-Za-z0-9_-]+)")


class Mailbox:
    """aiosmtpd handler: keeps every message."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        message["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if address in m["X-Envelope-To"]]

    async def link_for(self, address: str, *, timeout: float = 15.0) -> str:
        """The sign-in link of the newest message to ``address`` (waits for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.to(address):
                match = LINK.search(self.to(address)[-1].get_content())
                assert match, self.to(address)[-1].get_content()
                return match.group(1)
            await asyncio.sleep(0.05)
        raise AssertionError(f"no mail to {address}")


@pytest.fixture
def mailbox(monkeypatch):
    box = Mailbox()
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


async def make_driver(srv: Any, name: str, email: str, *cards: str) -> tuple[int, list[int]]:
    """A driver with ``cards`` (their row ids returned too), made over the REST API."""
    driver = (await srv.api.post("/drivers", json={"name": name, "email": email})).json()
    pks = []
    for card in cards:
        token = await srv.api.post("/tokens", json={"id_token": card, "driver": driver["id"]})
        assert token.status_code == 201, token.text
        pks.append(token.json()["id"])
    return driver["id"], pks


def csrf_of(html: str) -> str:
    match = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def ask_link(client: httpx.AsyncClient, email: str) -> httpx.Response:
    page = await client.get("/driver")
    return await client.post("/driver/link", data={"email": email, "_csrf_token": csrf_of(page.text)})


async def open_link(client: httpx.AsyncClient, url: str) -> httpx.Response:
    page = await client.get(url)
    assert page.status_code == 200, page.text
    return await client.post(url, data={"_csrf_token": csrf_of(page.text)})


async def signed_in_driver(srv: Any, mailbox: Mailbox, email: str) -> httpx.AsyncClient:
    """An HTTP client signed in to the portal as the driver of ``email``, through the mailed link."""
    client = httpx.AsyncClient(base_url=srv.base_url, timeout=30)
    mailbox.messages[:] = [m for m in mailbox.messages if email not in m["X-Envelope-To"]]
    assert (await ask_link(client, email)).status_code == 200
    done = await open_link(client, await mailbox.link_for(email))
    assert done.status_code == 303 and done.headers["location"] == "/driver/cards", done.text
    return client
