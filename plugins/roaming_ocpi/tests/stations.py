"""Sites and simulated stations for roaming tests."""

from __future__ import annotations

import asyncio
from typing import Any

from csms.testing import SimStation


async def site_with_stations(server, name: str, station_ids: list[str], *, version: str = "2.0.1",
                             lat: float = 52.370216, lon: float = 4.895168, evses: int = 1,
                             organization: int | None = None) -> tuple[dict, list]:
    """A published site with connected stations (of ``organization`` when given, else of none)."""
    r = await server.api.post("/sites", json={
        "name": name, "address": "Damrak 1", "city": "Amsterdam", "postal_code": "1012 LG", "country": "NLD",
        "latitude": lat, "longitude": lon, "timezone": "Europe/Amsterdam", "publish": True,
        "organization": organization})
    assert r.status_code in (200, 201), r.text
    site = r.json()
    stations = []
    for sid in station_ids:
        r = await server.api.post("/stations", json={"station_id": sid, "site": site["id"], "organization": organization})
        assert r.status_code in (200, 201), r.text
        st = SimStation(sid, server.ws_url(sid), version, evses=evses, heartbeat=False)
        await st.connect()
        assert await st.boot() == "Accepted"
        for e in range(1, evses + 1):
            await st.status(e, "Available")
        stations.append(st)
    return site, stations


async def eventually(check: Any, timeout: float = 15.0, interval: float = 0.1) -> Any:
    """Wait until ``check()`` (sync or async) returns something truthy; return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")
