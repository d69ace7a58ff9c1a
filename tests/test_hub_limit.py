"""A hub has at most 20 stations, whichever path puts a station into it (REST, admin forms,
the station service), also when two requests add stations at the same time; on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio

from csms.core.services import hubs
from csms.core.services.hubs import HUB_STATION_LIMIT
from csms.core.tables import Hub, Station
from csms.testing import admin_client

FULL = f"already has {HUB_STATION_LIMIT} stations, the most a hub can have"


async def hub_with(server, name: str, members: int, *, max_stations: int | None = None) -> int:
    body = {"name": name} | ({"max_stations": max_stations} if max_stations is not None else {})
    created = await server.api.post("/hubs", json=body)
    assert created.status_code == 201, created.text
    hub_id = created.json()["id"]
    if members:
        await Station.insert(*[Station(station_id=f"{name}-{i:02}", hub=hub_id) for i in range(members)])
    return hub_id


async def members(hub_id: int) -> int:
    return await Station.count().where(Station.hub == hub_id)


async def test_rest_refuses_a_21st_station(any_server):
    api = any_server.api
    hub_id = await hub_with(any_server, "H1", HUB_STATION_LIMIT - 1)
    assert (await api.post("/stations", json={"station_id": "LAST", "hub": hub_id})).status_code == 201

    refused = await api.post("/stations", json={"station_id": "ONE-TOO-MANY", "hub": hub_id})
    assert refused.status_code == 409
    assert FULL in refused.json()["detail"] and "'H1'" in refused.json()["detail"]
    assert refused.json()["extra"] == {"error": "HubFull", "hub": hub_id, "stations": 20, "limit": 20}
    assert not await Station.exists().where(Station.station_id == "ONE-TOO-MANY")

    assert (await api.post("/stations", json={"station_id": "OUTSIDE"})).status_code == 201
    moved = await api.patch("/stations/OUTSIDE", json={"hub": hub_id, "description": "moved"})
    assert moved.status_code == 409 and FULL in moved.json()["detail"]
    row = await Station.select(Station.hub, Station.description).where(Station.station_id == "OUTSIDE").first()
    assert row == {"hub": None, "description": ""}  # nothing of the refused change is written

    # a station already in the hub may be saved again, and one leaving makes room
    assert (await api.patch("/stations/LAST", json={"hub": hub_id, "description": "x"})).status_code == 200
    assert (await api.delete("/stations/LAST")).status_code == 204
    assert (await api.patch("/stations/OUTSIDE", json={"hub": hub_id})).status_code == 200
    assert await members(hub_id) == HUB_STATION_LIMIT


async def test_hub_maximum_is_at_most_20_and_not_below_its_stations(any_server):
    api = any_server.api
    too_big = await api.post("/hubs", json={"name": "big", "max_stations": 21})
    assert too_big.status_code == 400 and "at most 20 stations" in too_big.json()["detail"]
    assert not await Hub.exists().where(Hub.name == "big")

    hub_id = await hub_with(any_server, "H2", 5, max_stations=6)
    assert (await api.patch(f"/hubs/{hub_id}", json={"max_stations": 25})).status_code == 400
    lowered = await api.patch(f"/hubs/{hub_id}", json={"max_stations": 4})
    assert lowered.status_code == 409 and "has 5 stations" in lowered.json()["detail"]
    assert (await Hub.select(Hub.max_stations).where(Hub.id == hub_id).first())["max_stations"] == 6

    assert (await api.post("/stations", json={"station_id": "SIXTH", "hub": hub_id})).status_code == 201
    refused = await api.post("/stations", json={"station_id": "SEVENTH", "hub": hub_id})
    assert refused.status_code == 409
    assert "already has 6 stations, the most it can have (its maximum is 6)" in refused.json()["detail"]
    assert (await api.patch(f"/hubs/{hub_id}", json={"max_stations": 6, "name": "H2b"})).status_code == 200


async def test_a_hub_moved_to_another_site_takes_its_stations_along(any_server):
    api = any_server.api
    first = (await api.post("/sites", json={"name": "First"})).json()["id"]
    second = (await api.post("/sites", json={"name": "Second"})).json()["id"]
    hub_id = (await api.post("/hubs", json={"name": "H4", "site": first})).json()["id"]
    for n in range(3):
        assert (await api.post("/stations", json={"station_id": f"H4-{n}", "hub": hub_id, "site": first})).status_code == 201
    assert (await api.post("/stations", json={"station_id": "ALONE", "site": first})).status_code == 201
    assert (await api.patch(f"/hubs/{hub_id}", json={"site": second})).status_code == 200
    sites = {r["station_id"]: r["site"] for r in await Station.select(Station.station_id, Station.site)}
    assert sites == {"H4-0": second, "H4-1": second, "H4-2": second, "ALONE": first}
    audit = (await api.get("/audit", params={"object_type": "hub", "limit": 10})).json()["items"]
    assert any(e["action"] == "update" and e["after"]["site"] == second for e in audit)


async def test_simultaneous_adds_never_make_21(any_server):
    api = any_server.api
    hub_id = await hub_with(any_server, "H3", HUB_STATION_LIMIT - 2)
    await Station.insert(*[Station(station_id=f"FREE-{i}") for i in range(8)])
    answers = await asyncio.gather(
        *[api.patch(f"/stations/FREE-{i}", json={"hub": hub_id}) for i in range(4)],
        *[api.post("/stations", json={"station_id": f"NEW-{i}", "hub": hub_id}) for i in range(4)],
        *[hubs.update_stations(Station.station_id == f"FREE-{i}", {Station.hub: hub_id}) for i in range(4, 8)],
        return_exceptions=True)
    ok = [a for a in answers if not isinstance(a, BaseException) and (a is None or a.status_code in (200, 201))]
    refused = [a for a in answers if isinstance(a, hubs.HubFull)
               or (not isinstance(a, BaseException) and a is not None and a.status_code == 409)]
    assert len(ok) == 2 and len(refused) == 10, answers
    assert await members(hub_id) == HUB_STATION_LIMIT


async def test_admin_forms_show_the_limit(any_server):
    hub_id = await hub_with(any_server, "H4", HUB_STATION_LIMIT)
    await Station.insert(Station(station_id="LONER"))
    client = await admin_client(any_server, "operator", csrf_header=True)
    try:
        page = await client.post("/admin/stations/LONER/assign", data={"hub": str(hub_id), "site": ""})
        assert page.status_code == 409
        assert f"hub &#39;H4&#39; {FULL}" in page.text or f"hub 'H4' {FULL}" in page.text
        assert (await Station.select(Station.hub).where(Station.station_id == "LONER").first())["hub"] is None

        current = [f"H4-{i:02}" for i in range(HUB_STATION_LIMIT)]
        form = {"name": "H4", "site": "", "device_id": "", "max_stations": "20", "stations": [*current, "LONER"]}
        page = await client.post(f"/admin/hubs/{hub_id}/edit", data=form)
        assert page.status_code == 422 and "at most 20 stations; 21 are selected" in page.text
        page = await client.post(f"/admin/hubs/{hub_id}/edit", data={**form, "max_stations": "30"})
        assert page.status_code == 422
        assert await members(hub_id) == HUB_STATION_LIMIT

        # swapping one member for another within the limit is fine
        form["stations"] = [*current[1:], "LONER"]
        page = await client.post(f"/admin/hubs/{hub_id}/edit", data=form)
        assert page.status_code == 303, page.text
        assert await Station.select(Station.hub).where(Station.station_id == "LONER").first() == {"hub": hub_id}
        assert await members(hub_id) == HUB_STATION_LIMIT
    finally:
        await client.aclose()
