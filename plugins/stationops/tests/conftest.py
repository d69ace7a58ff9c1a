from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Awaitable, Callable

import pytest

from csms.testing import running_server
from plugins.stationops.config import stationops_settings

os.environ.setdefault("CSMS_DATA_DIR", "/tmp/csms-test-default")


@pytest.fixture(autouse=True)
def fast_stationops(monkeypatch):
    """Short timers so that tests wait for behaviour, not for the clock."""
    monkeypatch.setenv("CSMS_STATIONOPS_CAMPAIGN_INTERVAL", "0.1")
    monkeypatch.setenv("CSMS_STATIONOPS_ALERT_INTERVAL", "0.1")
    stationops_settings.cache_clear()
    yield
    stationops_settings.cache_clear()


@pytest.fixture
async def server(tmp_path):
    """A CSMS on SQLite, unknown stations accepted."""
    async with running_server(tmp_path, unknown_stations="accept") as srv:
        yield srv


@pytest.fixture(params=["sqlite", "postgres"])
async def any_server(request, tmp_path):
    """The same tests on the embedded SQLite and on the real PostgreSQL."""
    async with running_server(tmp_path, backend=request.param, unknown_stations="accept") as srv:
        yield srv


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not reached; last value: {last!r}")
