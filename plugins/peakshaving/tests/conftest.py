from __future__ import annotations

import os

import pytest

from csms.testing import running_server

os.environ.setdefault("CSMS_DATA_DIR", "/tmp/csms-test-default")


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
