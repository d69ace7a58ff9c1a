"""Subscriptions of an organization hear of its own stations only; its users see and manage
its own subscriptions and deliveries only (another organization's are a 404)."""

from __future__ import annotations

import asyncio

import httpx

from csms.testing import admin_client
from csms.testing.stations import station
from plugins.notifications.tests.conftest import eventually


async def _org_with_station(srv, name: str) -> int:
    org = (await srv.api.post("/organizations", json={"name": name})).json()["id"]
    made = await srv.api.post("/stations", json={"station_id": f"{name}-ST", "organization": org})
    assert made.status_code == 201, made.text
    return org


async def test_an_organizations_webhook_hears_of_its_own_stations_only(any_server, receiver):
    srv = any_server
    alpha = await _org_with_station(srv, "ALPHA")
    bravo = await _org_with_station(srv, "BRAVO")
    made = await srv.api.post("/api-keys", json={"name": "alpha operator", "role": "operator", "organization": alpha})
    key = made.json()["key"]
    async with httpx.AsyncClient(base_url=f"{srv.base_url}/api/v1", timeout=30,
                                 headers={"Authorization": f"Bearer {key}"}) as a:
        # ALPHA's operator makes a subscription: it lands in ALPHA
        mine = await a.post("/notifications/subscriptions", json={
            "channel": "webhook", "target": f"{receiver.url}/alpha", "events": ["station.online"]})
        assert mine.status_code == 201, mine.text
        assert mine.json()["organization"] == alpha
        # naming BRAVO's organization, station or an unknown one is refused, nothing stored
        for body in ({"organization": bravo}, {"station_id": "BRAVO-ST"}, {"organization": 999999}):
            refused = await a.post("/notifications/subscriptions", json={
                "channel": "webhook", "target": receiver.url, **body})
            assert refused.status_code in (400, 404, 422) and refused.json()["detail"], (body, refused.text)
        # the installation's own (global) subscription hears everything
        everything = await srv.api.post("/notifications/subscriptions", json={
            "channel": "webhook", "target": f"{receiver.url}/all", "events": ["station.online"]})
        theirs = await srv.api.post("/notifications/subscriptions", json={
            "channel": "webhook", "target": f"{receiver.url}/bravo", "events": ["station.online"],
            "organization": bravo})
        assert everything.json()["organization"] is None and theirs.json()["organization"] == bravo

        async with station(srv, "BRAVO-ST", "1.6"):
            pass
        async with station(srv, "ALPHA-ST", "1.6"):
            pass
        await eventually(lambda: len(receiver.of("station.online")) >= 4, what="four deliveries")
        await asyncio.sleep(0.5)  # nothing else arrives late
        heard = sorted((r["path"], r["body"].count(b"ALPHA-ST") > 0) for r in receiver.of("station.online"))
        assert heard == [("/hook/all", False), ("/hook/all", True), ("/hook/alpha", True), ("/hook/bravo", False)]

        # ALPHA sees its own subscription and deliveries only; BRAVO's are a 404
        assert [s["id"] for s in (await a.get("/notifications/subscriptions")).json()["items"]] == [mine.json()["id"]]
        deliveries = (await a.get("/notifications/deliveries")).json()["items"]
        assert deliveries and {d["subscription"] for d in deliveries} == {mine.json()["id"]}
        bravo_delivery = (await srv.api.get("/notifications/deliveries", params={
            "subscription": theirs.json()["id"]})).json()["items"][0]["id"]
        for method, url in (("GET", f"/notifications/subscriptions/{theirs.json()['id']}"),
                            ("PATCH", f"/notifications/subscriptions/{theirs.json()['id']}"),
                            ("DELETE", f"/notifications/subscriptions/{everything.json()['id']}"),
                            ("GET", f"/notifications/deliveries/{bravo_delivery}"),
                            ("POST", f"/notifications/deliveries/{bravo_delivery}/replay")):
            answer = await a.request(method, url, json={} if method in ("PATCH", "POST") else None)
            assert answer.status_code == 404, (method, url, answer.text)
        # and cannot move its own subscription to BRAVO
        moved = await a.patch(f"/notifications/subscriptions/{mine.json()['id']}", json={"organization": bravo})
        assert moved.status_code in (400, 404, 422), moved.text
    assert (await srv.api.get(f"/notifications/subscriptions/{theirs.json()['id']}")).status_code == 200


async def test_an_organizations_admin_page_and_live_stream(server):
    srv = server
    alpha = await _org_with_station(srv, "ALPHA")
    bravo = await _org_with_station(srv, "BRAVO")
    await srv.api.post("/notifications/subscriptions", json={
        "channel": "webhook", "target": "https://bravo.example.org/BRAVOHOOK", "organization": bravo})
    viewer = await admin_client(srv, "viewer", organization=alpha, csrf_header=True)
    try:
        page = await viewer.get("/admin/notifications")
        assert page.status_code == 200 and "BRAVOHOOK" not in page.text and "BRAVO-ST" not in page.text
        seen: list[str] = []

        async def listen() -> None:
            async with viewer.stream("GET", "/admin/notifications/stream") as stream:
                async for line in stream.aiter_lines():
                    seen.append(line)
                    if "ALPHA-ST" in line:
                        return

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.5)
        async with station(srv, "BRAVO-ST", "1.6"):
            await asyncio.sleep(1.0)
            async with station(srv, "ALPHA-ST", "1.6"):
                await asyncio.wait_for(listener, 15)
        assert not any("BRAVO-ST" in line for line in seen), seen
        home = await viewer.get("/")
        assert "BRAVO-ST" not in home.text
    finally:
        await viewer.aclose()
