"""A driver's personal data in notifications (GDPR), end to end: a driver with their own e-mail
subscription, an operator's subscription to their address and a private settings link gets
session mails; their data export lists subscriptions and deliveries; erasing them over the REST
API deletes their subscriptions and link, scrubs their address from the delivery log and stops a
delivery still waiting; other subscriptions stay; a second erasure changes nothing."""

from __future__ import annotations

from datetime import timedelta

from csms.plugin_api import utcnow
from csms.testing.stations import station
from plugins.notifications.personal_data import driver_erase
from plugins.notifications.tables import Delivery, DriverLink, Subscription
from plugins.notifications.tests.conftest import eventually
from plugins.notifications.tests.test_sessions import make_driver, run_session_201


async def deliveries() -> list[dict]:
    return await Delivery.select(Delivery.id, Delivery.subscription, Delivery.target, Delivery.status,
                                 Delivery.event, Delivery.last_error).order_by(Delivery.id)


async def test_subscriptions_exported_and_erased_with_the_address(any_server, mailbox):
    server = any_server
    nia = await make_driver(server, "Nia Notify", "nia@example.org", "NIACARD")
    own = await server.api.post(f"/notifications/drivers/{nia}/subscriptions", json={"channel": "email"})
    assert own.status_code == 201 and own.json()["target"] == "nia@example.org", own.text
    by_hand = await server.api.post("/notifications/subscriptions", json={
        "channel": "email", "target": "NIA@example.org", "name": "Nia's alerts", "events": ["session.stopped"]})
    ops = await server.api.post("/notifications/subscriptions", json={
        "channel": "email", "target": "ops@example.org", "events": ["session.stopped"]})
    assert by_hand.status_code == 201 and ops.status_code == 201
    link = await server.api.post(f"/notifications/drivers/{nia}/link")
    assert link.status_code == 200, link.text

    async with station(server, "NOTIFY-GDPR", "2.0.1") as cp:
        await run_session_201(cp, "NIACARD", "tx-nia")
        await eventually(lambda: len(mailbox.to("nia@example.org")) == 3, what="three mails to Nia's subscription")
        await eventually(lambda: len(mailbox.to("NIA@example.org")) + len(mailbox.to("nia@example.org")) == 4,
                         what="and one to the address subscription")
        await eventually(lambda: len(mailbox.to("ops@example.org")) == 1, what="one to the operators")
    await eventually(lambda: Delivery.count().where(Delivery.status == "delivered").run(), what="logged")
    # a mail to Nia still waiting for its retry
    waiting = Delivery(subscription=own.json()["id"], channel="email", target="nia@example.org",
                       event="session.stopped", notification_id="n-waiting", station_id="NOTIFY-GDPR",
                       subject="Session ended", payload="{}", status="pending",
                       next_attempt_at=utcnow() + timedelta(hours=1))
    await waiting.save()
    log_before = await deliveries()
    nia_ids = {d["id"] for d in log_before if d["target"].lower() == "nia@example.org"}
    assert len(nia_ids) == 5

    exported = (await server.api.get(f"/drivers/{nia}/export")).json()["plugins"]["notifications"]
    assert [(s["target"], s["yours"]) for s in exported["subscriptions"]] == [
        ("nia@example.org", True), ("NIA@example.org", False)]
    assert exported["subscriptions"][0]["events"] == ["session.started", "session.charging_complete",
                                                      "session.stopped"]
    assert {d["id"] for d in exported["deliveries"]} == nia_ids
    assert {d["status"] for d in exported["deliveries"]} == {"delivered", "pending"}
    assert exported["private_settings_link"] is True
    assert "ops@example.org" not in str(exported) and "secret" not in exported["subscriptions"][0]

    erased = await server.api.post(f"/drivers/{nia}/erase")
    assert erased.status_code == 200 and erased.json()["failed_plugins"] == [], erased.text

    remaining = await Subscription.select(Subscription.id, Subscription.target)
    assert remaining == [{"id": ops.json()["id"], "target": "ops@example.org"}]  # only the operators' stays
    assert not await DriverLink.exists().where(DriverLink.driver == nia)
    log_after = await deliveries()
    assert [d["id"] for d in log_after] == [d["id"] for d in log_before]  # the log keeps every entry
    for before, after in zip(log_before, log_after):
        if before["id"] in nia_ids:
            assert after["target"] == "(erased)" and after["subscription"] is None
            assert after["event"] == before["event"]
            expected = "failed" if before["id"] == waiting.id else before["status"]
            assert after["status"] == expected
        else:
            assert after == before  # the operators' delivery is untouched
    assert next(d for d in log_after if d["id"] == waiting.id)["last_error"].startswith("not sent")
    assert not any("nia@" in d["target"].lower() for d in log_after)
    assert "notifications" not in (await server.api.get(f"/drivers/{nia}/export")).json()["plugins"]

    again = await server.api.post(f"/drivers/{nia}/erase")
    assert again.status_code == 200 and again.json()["already_erased"] is True
    assert again.json()["failed_plugins"] == []
    assert await deliveries() == log_after
    # called again with the row as it was (e.g. a retry after a failure): nothing left to change
    assert await driver_erase({"id": nia, "email": "nia@example.org"}) == {"subscriptions": 0, "deliveries": 0,
                                                                           "links": 0}


async def test_an_address_another_driver_still_has_is_kept(server, mailbox):
    one = await make_driver(server, "Pat One", "family@example.org", "PATCARD")
    two = await make_driver(server, "Pat Two", "family@example.org", "PATCARD2")
    mine = await server.api.post(f"/notifications/drivers/{one}/subscriptions", json={"channel": "email"})
    theirs = await server.api.post(f"/notifications/drivers/{two}/subscriptions", json={"channel": "email"})
    shared = await server.api.post("/notifications/subscriptions", json={
        "channel": "email", "target": "family@example.org", "events": ["session.stopped"]})
    assert mine.status_code == theirs.status_code == shared.status_code == 201
    assert (await server.api.post(f"/drivers/{one}/erase")).status_code == 200
    left = {r["id"] for r in await Subscription.select(Subscription.id)}
    assert left == {theirs.json()["id"], shared.json()["id"]}  # Pat Two still has that address
