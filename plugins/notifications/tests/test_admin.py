"""The admin: live notifications over SSE, and the pages of both plugins render for a user."""

from __future__ import annotations

import asyncio

from plugins.notifications.tests.conftest import admin_client, csrf_of, eventually
from csms.testing.stations import station


async def test_live_notifications_stream_to_the_admin(server):
    client = await admin_client(server, "viewer")
    received: list[str] = []

    async def listen() -> None:
        async with client.stream("GET", "/admin/notifications/stream") as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                received.append(line)

    task = asyncio.create_task(listen())
    try:
        await eventually(lambda: any(line.startswith("event: hello") for line in received), what="stream open")
        async with station(server, "LIVE1", "1.6"):
            await eventually(lambda: any("LIVE1 is online" in line for line in received), what="live notification")
    finally:
        task.cancel()
    assert "event: notification" in received
    dashboard = await client.get("/")
    assert dashboard.status_code == 200
    assert "Live notifications" in dashboard.text and "LIVE1 is online" in dashboard.text
    assert "Open alerts" in dashboard.text
    anonymous = await server.api.get(server.base_url + "/admin/notifications/stream", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    await client.aclose()


async def test_admin_pages_of_both_plugins(server, receiver):
    client = await admin_client(server, "operator")
    for path in ("/admin/firmware", "/admin/health", "/admin/alerts", "/admin/diagnostics",
                 "/admin/notifications", "/admin/notifications/deliveries"):
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text[:500])
    page = await client.get("/admin/notifications")
    added = await client.post("/admin/notifications/subscriptions", data={
        "_csrf_token": csrf_of(page.text), "channel": "webhook", "target": receiver.url, "events": "station.*",
        "name": "from the admin"})
    assert added.status_code == 303 and added.headers["location"].endswith("?m=subscription_added")
    assert "Subscription added." in (await client.get(added.headers["location"])).text
    async with station(server, "ADM1", "2.0.1"):
        await eventually(lambda: receiver.of("station.online"), what="webhook from the admin's subscription")
        station_page = await client.get("/admin/stations/ADM1")
        assert station_page.status_code == 200 and "Request diagnostics" in station_page.text
        health = await client.get("/admin/health/stations/ADM1")
        assert health.status_code == 200 and "Health of ADM1" in health.text
    firmware = (await server.api.post("/firmware", json={"version": "9.9", "url": "https://fw.example.org/9.9.bin"})).json()
    campaign = (await server.api.post("/campaigns", json={
        "name": "admin view", "firmware_id": firmware["id"], "selection": {"stations": ["ADM1"]}})).json()
    for path in (f"/admin/firmware/campaigns/{campaign['id']}", f"/admin/firmware/campaigns/{campaign['id']}?fragment=1",
                 "/admin/firmware", "/admin/health?period=7d"):
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        assert "ADM1" in response.text or path == "/admin/firmware"
    started = await client.post(f"/admin/firmware/campaigns/{campaign['id']}/start",
                                data={"_csrf_token": csrf_of(page.text)})
    assert started.status_code == 303
    assert (await server.api.get(f"/campaigns/{campaign['id']}")).json()["status"] in ("running", "completed")
    log = await client.get("/admin/notifications/deliveries")
    assert "station.online" in log.text
    alerts = await client.get("/admin/alerts")
    rule_form = await client.post("/admin/alerts/rules", data={
        "_csrf_token": csrf_of(alerts.text), "kind": "repeated_reboots", "minutes": "10", "occurrences": "2"})
    assert rule_form.status_code == 303 and "error" not in rule_form.headers["location"]
    rules = (await server.api.get("/alert-rules")).json()["items"]
    assert any(r["name"] == "2 or more boots within 10 min" for r in rules)
    await client.aclose()
