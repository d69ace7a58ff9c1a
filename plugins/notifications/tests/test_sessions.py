"""Session notifications with energy and cost; drivers hear about their own sessions only."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import httpx
import pytest
from ocpp.v201 import call as call201

from csms.plugin_api import SessionCost, hookimpl
from csms.testing import pm
from plugins.notifications.tests.conftest import csrf_of, eventually
from csms.testing.stations import now_iso, station


class FlatPricing:
    """A throwaway pricing plugin: 0.40 per kWh plus 21 % VAT."""

    @hookimpl(tryfirst=True)
    def price_session(self, session, final):
        kwh = Decimal(str(session["energy_wh"] or 0)) / 1000
        net = (kwh * Decimal("0.40")).quantize(Decimal("0.01"))
        return SessionCost("EUR", net, (net * Decimal("1.21")).quantize(Decimal("0.01")), final=final)


@pytest.fixture
def pricing():
    plugin = FlatPricing()
    pm.register(plugin, name="test-flat-pricing")
    yield plugin
    pm.unregister(name="test-flat-pricing")


async def make_driver(srv, name: str, email: str, card: str) -> int:
    driver = (await srv.api.post("/drivers", json={"name": name, "email": email})).json()
    token = await srv.api.post("/tokens", json={"id_token": card, "driver": driver["id"]})
    assert token.status_code == 201, token.text
    return driver["id"]


async def run_session_201(cp, card: str, tx: str) -> None:
    await cp.call(call201.TransactionEvent(
        event_type="Started", timestamp=now_iso(), trigger_reason="Authorized", seq_no=0,
        transaction_info={"transactionId": tx, "chargingState": "Charging"},
        id_token={"idToken": card, "type": "ISO14443"}, evse={"id": 1, "connectorId": 1},
        meter_value=[{"timestamp": now_iso(), "sampledValue": [{"value": 10000.0}]}]))
    await cp.call(call201.TransactionEvent(
        event_type="Updated", timestamp=now_iso(), trigger_reason="ChargingStateChanged", seq_no=1,
        transaction_info={"transactionId": tx, "chargingState": "SuspendedEV"},
        meter_value=[{"timestamp": now_iso(), "sampledValue": [{"value": 20000.0}]}]))
    await cp.call(call201.TransactionEvent(
        event_type="Ended", timestamp=now_iso(), trigger_reason="EVDeparted", seq_no=2,
        transaction_info={"transactionId": tx, "stoppedReason": "EVDisconnected"},
        meter_value=[{"timestamp": now_iso(), "sampledValue": [{"value": 20000.0}]}]))


async def test_driver_gets_own_session_mails_with_cost(any_server, mailbox, receiver, pricing):
    server = any_server
    ann = await make_driver(server, "Ann", "ann@example.org", "ANNCARD")
    await make_driver(server, "Bob", "bob@example.org", "BOBCARD")
    sub = await server.api.post(f"/notifications/drivers/{ann}/subscriptions", json={"channel": "email"})
    assert sub.status_code == 201, sub.text
    assert sub.json()["target"] == "ann@example.org"
    assert sub.json()["events"] == ["session.started", "session.charging_complete", "session.stopped"]
    ops = (await server.api.post("/notifications/subscriptions", json={
        "channel": "webhook", "target": receiver.url, "events": ["session.stopped"]})).json()

    async with station(server, "DRV1", "2.0.1") as cp:
        await run_session_201(cp, "BOBCARD", "tx-bob")
        await run_session_201(cp, "ANNCARD", "tx-ann")
        await eventually(lambda: len(mailbox.to("ann@example.org")) == 3, what="three mails to Ann")
        await eventually(lambda: len(receiver.of("session.stopped")) == 2, what="two session webhooks")

    assert mailbox.to("bob@example.org") == []  # Bob subscribed to nothing; Ann hears nothing of Bob
    subjects = mailbox.subjects("ann@example.org")
    assert subjects == ["Charging started at DRV1", "Charging complete at DRV1 (10.00 kWh)",
                        "Session ended at DRV1: 10.00 kWh, 4.84 EUR"]
    text = mailbox.to("ann@example.org")[2].get_payload(decode=True).decode()
    assert "Energy:    10.00 kWh" in text and "4.84 EUR incl. VAT (4.00 excl. VAT)" in text
    import json

    stopped = [json.loads(r["body"]) for r in receiver.of("session.stopped")]
    ann_stop = next(p for p in stopped if p["data"]["id_token"] == "ANNCARD")
    assert ann_stop["data"]["energy_wh"] == 10000.0 and ann_stop["data"]["driver_id"] == ann
    assert ann_stop["data"]["cost"] == {"currency": "EUR", "total_excl_vat": "4.00", "total_incl_vat": "4.84",
                                        "tariff_id": None}
    assert ops["events"] == ["session.stopped"]


async def test_driver_manages_own_subscriptions_on_private_page(server, mailbox):
    cid = await make_driver(server, "Cem", "cem@example.org", "CEMCARD")
    link = (await server.api.post(f"/notifications/drivers/{cid}/link")).json()["url"]
    assert re.search(r"/notifications/driver/[\w-]{20,}$", link)
    async with httpx.AsyncClient() as client:
        page = await client.get(link)
        assert page.status_code == 200 and "Hello Cem" in page.text
        saved = await client.post(link, data={"_csrf_token": csrf_of(page.text), "email": "cem@example.org",
                                              "email:session.stopped": "on"})
        assert saved.status_code == 303
        bad = await client.get(link.rsplit("/", 1)[0] + "/not-a-token")
        assert bad.status_code == 404
    subs = (await server.api.get(f"/notifications/drivers/{cid}/subscriptions")).json()["items"]
    assert [(s["channel"], s["target"], s["events"]) for s in subs] == [
        ("email", "cem@example.org", ["session.stopped"])]
    async with station(server, "DRV2", "2.0.1") as cp:
        await run_session_201(cp, "CEMCARD", "tx-cem")
        await eventually(lambda: mailbox.to("cem@example.org"), what="Cem's mail")
    assert mailbox.subjects("cem@example.org") == ["Session ended at DRV2: 10.00 kWh"]


async def test_a_connector_freed_under_an_open_session_is_notified(server, receiver):
    """The core reports a connector that turns Available while its session is still open (a
    transaction the station may have lost): operators hear of it as ``session.outlived_connector``."""
    from ocpp.v16 import call as call16

    sub = await server.api.post("/notifications/subscriptions", json={
        "channel": "webhook", "target": receiver.url, "events": ["session.outlived_connector"]})
    assert sub.status_code == 201, sub.text
    assert (await server.api.post("/tokens", json={"id_token": "LOSTCARD", "type": "ISO14443"})).status_code == 201
    async with station(server, "LOST16", "1.6") as cp:
        tx = await cp.start_session("LOSTCARD")
        await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
        await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
        await eventually(lambda: len(receiver.of("session.outlived_connector")) == 1, what="the webhook")
    body = json.loads(receiver.of("session.outlived_connector")[0]["body"])
    assert body["station_id"] == "LOST16" and body["data"]["transaction_id"] == str(tx)
    assert body["data"]["previous"] == "Charging" and body["data"]["session_id"]
