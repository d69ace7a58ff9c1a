"""A station going silent opens an alert, delivered as a signed webhook and an e-mail; coming
back closes it, delivered the same way."""

from __future__ import annotations

import json

from plugins.notifications.channels import verify
from plugins.notifications.tests.conftest import eventually
from csms.testing.stations import station


async def offline_rule(srv) -> dict:
    rules = (await srv.api.get("/alert-rules")).json()["items"]
    rule = next(r for r in rules if r["kind"] == "station_offline")
    changed = await srv.api.patch(f"/alert-rules/{rule['id']}", json={"minutes": 0})
    assert changed.status_code == 200, changed.text
    return changed.json()


async def test_silent_station_alert_webhook_and_email(any_server, receiver, mailbox):
    server = any_server
    await offline_rule(server)
    hook = (await server.api.post("/notifications/subscriptions", json={
        "channel": "webhook", "target": receiver.url, "events": ["alert.opened", "alert.closed"],
        "name": "ops webhook"})).json()
    mail = await server.api.post("/notifications/subscriptions", json={
        "channel": "email", "target": "ops@example.org", "events": ["alert.*"]})
    assert mail.status_code == 201, mail.text
    secret = hook["secret"]
    assert len(secret) == 64

    async with station(server, "QUIET", "1.6") as cp:
        await eventually(lambda: server.core.connections.get("QUIET") is not None, what="connected")
        cp._connection.transport.pause_reading()  # the station goes silent: no pong, no frames
        opened = await eventually(lambda: receiver.of("alert.opened"), what="alert.opened webhook")

    request = opened[0]
    headers, body = request["headers"], request["body"]
    assert headers["x-csms-signature"].startswith("sha256=")
    assert verify(secret, headers["x-csms-timestamp"], body, headers["x-csms-signature"])
    assert not verify("another secret", headers["x-csms-timestamp"], body, headers["x-csms-signature"])
    payload = json.loads(body)
    assert payload["event"] == "alert.opened" and payload["station_id"] == "QUIET"
    assert payload["data"]["kind"] == "station_offline" and payload["data"]["severity"] == "critical"
    assert headers["x-csms-notification"] == payload["id"]

    await eventually(lambda: mailbox.subjects("ops@example.org"), what="alert e-mail")
    (message,) = mailbox.to("ops@example.org")
    assert message["Subject"] == f"Alert: {payload['data']['summary']}"
    assert message["From"] == "csms@example.org"
    assert "QUIET offline since" in message.get_payload(decode=True).decode()

    alerts = (await server.api.get("/alerts", params={"status": "open", "station_id": "QUIET"})).json()["items"]
    assert [a["kind"] for a in alerts] == ["station_offline"]

    async with station(server, "QUIET", "1.6"):  # back
        closed = await eventually(lambda: receiver.of("alert.closed"), what="alert.closed webhook")
    closed_payload = json.loads(closed[0]["body"])
    assert closed_payload["data"]["alert_id"] == payload["data"]["alert_id"]
    assert verify(secret, closed[0]["headers"]["x-csms-timestamp"], closed[0]["body"],
                  closed[0]["headers"]["x-csms-signature"])
    # (the station leaves again at the end of the block, so a new alert may open and mail too)
    resolved = await eventually(lambda: [s for s in mailbox.subjects("ops@example.org") if s.startswith("Resolved: ")],
                                what="the resolved e-mail")
    assert len(resolved) == 1
    after = (await server.api.get("/alerts", params={"station_id": "QUIET"})).json()["items"]
    first = next(a for a in after if a["id"] == payload["data"]["alert_id"])
    assert first["status"] == "closed" and first["closed_at"]

    log = (await server.api.get("/notifications/deliveries", params={"status": "delivered"})).json()["items"]
    assert {(d["channel"], d["event"]) for d in log} >= {("webhook", "alert.opened"), ("webhook", "alert.closed"),
                                                          ("email", "alert.opened"), ("email", "alert.closed")}


async def test_acknowledged_alert_stays_open_until_it_clears(server, receiver):
    await offline_rule(server)
    await server.api.post("/notifications/subscriptions", json={
        "channel": "webhook", "target": receiver.url, "events": ["alert.acknowledged"]})
    async with station(server, "ACK1", "2.0.1"):
        pass  # connected, then gone
    alert = await eventually(lambda: _open_alert(server, "ACK1"), what="open alert")
    acked = await server.api.post(f"/alerts/{alert['id']}/acknowledge")
    assert acked.status_code == 200 and acked.json()["acknowledged"] is True
    assert acked.json()["acknowledged_by"] == "api_key:tests"
    assert (await _open_alert(server, "ACK1"))["id"] == alert["id"]
    await eventually(lambda: receiver.of("alert.acknowledged"), what="acknowledged webhook")
    async with station(server, "ACK1", "2.0.1"):
        await eventually(lambda: _no_open_alert(server, "ACK1"), what="alert closed")


async def _open_alert(srv, station_id: str):
    items = (await srv.api.get("/alerts", params={"status": "open", "station_id": station_id})).json()["items"]
    return next((a for a in items if a["kind"] == "station_offline"), None)


async def _no_open_alert(srv, station_id: str) -> bool:
    return await _open_alert(srv, station_id) is None
