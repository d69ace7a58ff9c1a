"""Fixtures of the driver portal tests: a real SMTP server (aiosmtpd) that keeps what it gets,
drivers with cards made over the REST API, and a driver signed in through the e-mail link."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from csms.testing import mail

LINK = re.compile(r"(https?://\S+/driver/link/[A-Za-z0-9_-]+)")


class Mailbox(mail.Mailbox):
    """The test SMTP server's mailbox, which also finds the sign-in link in a driver's mail."""

    async def link_for(self, address: str, *, timeout: float = 15.0) -> str:
        """The sign-in link of the newest message to ``address`` (waits for it)."""
        message = await self.wait_for(address, timeout=timeout)
        match = LINK.search(message.get_content())
        assert match, message.get_content()
        return match.group(1)


@pytest.fixture
def mailbox(monkeypatch):
    with mail.smtp_server(monkeypatch, Mailbox()) as box:
        yield box


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
