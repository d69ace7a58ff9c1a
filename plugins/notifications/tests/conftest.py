"""Fixtures of the notification tests: a real webhook receiver (an ASGI app under uvicorn), a
real SMTP server (aiosmtpd), a CSMS with short timers, and logged-in admin clients."""

from __future__ import annotations

import asyncio
import os
import re
import time
from typing import Any, Awaitable, Callable

import httpx
import pytest

from csms.testing import admin_client, asgi_server, free_port, running_server  # noqa: F401 (admin_client: used by the tests)
from csms.testing.mail import smtp_server
from plugins.notifications.config import notification_settings, smtp_settings
from plugins.stationops.config import stationops_settings

os.environ.setdefault("CSMS_DATA_DIR", "/tmp/csms-test-default")
PASSWORD = "correct-horse-battery-staple"


class Receiver:
    """An HTTP server that records every request and answers with the statuses it is given."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append({"path": scope["path"], "headers": headers, "body": body})
        status = self.statuses.pop(0) if self.statuses else 200
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"thanks" if status < 300 else b"try again"})

    def of(self, event: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["headers"].get("x-csms-event") == event]


@pytest.fixture
async def receiver():
    rec = Receiver()
    async with asgi_server(rec, rec.port):
        yield rec


@pytest.fixture
async def push_service(monkeypatch):
    """The push service stand-in (``tests/push_service.py``) on a free port; the plugin accepts
    its ``http://`` endpoints and gives it 3 s to answer."""
    from plugins.notifications.tests.push_service import PushService

    monkeypatch.setenv("CSMS_NOTIFICATIONS_PUSH_INSECURE_ENDPOINTS", "true")
    monkeypatch.setenv("CSMS_NOTIFICATIONS_PUSH_TIMEOUT", "3")
    notification_settings.cache_clear()
    service = PushService()
    async with asgi_server(service, service.port):
        yield service


@pytest.fixture
def mailbox(monkeypatch):
    with smtp_server(monkeypatch) as box:
        yield box


@pytest.fixture(autouse=True)
def fast_timers(monkeypatch):
    monkeypatch.setenv("CSMS_NOTIFICATIONS_RETRY_DELAYS", "0.2,0.2,0.2")
    monkeypatch.setenv("CSMS_NOTIFICATIONS_SEND_INTERVAL", "0.2")
    monkeypatch.setenv("CSMS_STATIONOPS_ALERT_INTERVAL", "0.2")
    monkeypatch.setenv("CSMS_STATIONOPS_CAMPAIGN_INTERVAL", "0.2")
    for settings in (notification_settings, smtp_settings, stationops_settings):
        settings.cache_clear()
    yield
    for settings in (notification_settings, smtp_settings, stationops_settings):
        settings.cache_clear()


@pytest.fixture
async def server(tmp_path):
    """A CSMS on SQLite that notices a silent station within a second (pings every 0.3 s)."""
    async with running_server(tmp_path, unknown_stations="accept", ping_interval=0.3, ping_timeout=0.3) as srv:
        yield srv


@pytest.fixture(params=["sqlite", "postgres"])
async def any_server(request, tmp_path):
    """The same, on the embedded SQLite and on the real PostgreSQL."""
    async with running_server(tmp_path, backend=request.param, unknown_stations="accept", ping_interval=0.3,
                              ping_timeout=0.3) as srv:
        yield srv


async def eventually(check: Callable[[], Awaitable[Any] | Any], *, timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not reached; last value: {last!r}")


def csrf_of(html: str) -> str:
    return re.search(r'name="_csrf_token" value="([^"]+)"', html).group(1)
