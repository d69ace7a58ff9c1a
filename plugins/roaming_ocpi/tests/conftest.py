from __future__ import annotations

import os
from contextlib import asynccontextmanager, contextmanager
from typing import Any, AsyncIterator, Iterator

import pytest_asyncio

from csms.testing import running_server
from plugins.roaming_ocpi.config import ocpi_settings

os.environ.setdefault("CSMS_DATA_DIR", "/tmp/csms-test-default")

CPO_ENV = {
    "CSMS_OCPI_COUNTRY_CODE": "NL", "CSMS_OCPI_PARTY_ID": "CPO", "CSMS_OCPI_BUSINESS_NAME": "Test CPO",
    "CSMS_OCPI_ROLES": "CPO,EMSP", "CSMS_OCPI_SYNC_INTERVAL": "0", "CSMS_OCPI_RETRY_DELAY": "0.2", "CSMS_OCPI_RETRY_MAX_DELAY": "1",
    "CSMS_OCPI_SESSION_UPDATE_INTERVAL": "0", "CSMS_OCPI_PAGE_LIMIT": "2",
}


@contextmanager
def ocpi_env(env: dict[str, str]) -> Iterator[None]:
    """The roaming settings with the variables ``env`` (restored afterwards)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    ocpi_settings.cache_clear()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        ocpi_settings.cache_clear()


@asynccontextmanager
async def ocpi_server(tmp_path, env: dict[str, str], **overrides: Any) -> AsyncIterator[Any]:
    """A CSMS in this process with the roaming settings ``env`` (restored afterwards)."""
    with ocpi_env(env):
        async with running_server(tmp_path, unknown_stations="accept", **overrides) as srv:
            yield srv


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgres"])
async def server(request, tmp_path_factory):
    """One CSMS per test module and database (starting one takes seconds), on the embedded SQLite
    and on the real PostgreSQL; our identity NL/CPO, CPO and eMSP."""
    async with ocpi_server(tmp_path_factory.mktemp("cpo"), CPO_ENV, backend=request.param) as srv:
        yield srv
