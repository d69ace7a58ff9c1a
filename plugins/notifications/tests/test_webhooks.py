"""Webhook deliveries: retries with backoff, the delivery log, replay, test sends, filters."""

from __future__ import annotations

import json

from csms.plugin_api import utcnow
from plugins.notifications.channels import verify
from plugins.notifications.tests.conftest import eventually
from csms.testing.stations import station


async def test_failed_delivery_is_retried_logged_and_replayed(any_server, receiver):
    server = any_server
    receiver.statuses = [500, 503]  # the receiver fails twice, then takes it
    sub = (await server.api.post("/notifications/subscriptions", json={
        "channel": "webhook", "target": receiver.url, "events": ["station.online"], "station_id": "HOOK1"})).json()
    async with station(server, "OTHER", "1.6"):
        pass
    async with station(server, "HOOK1", "1.6"):
        pass

    async def delivered():
        items = (await server.api.get("/notifications/deliveries", params={"subscription": sub["id"]})).json()
        return items["items"] if items["items"] and items["items"][0]["status"] == "delivered" else None

    (delivery,) = await eventually(delivered, what="delivered after retries")
    assert delivery["attempts"] == 3 and delivery["response_status"] == 200
    assert delivery["event"] == "station.online" and delivery["station_id"] == "HOOK1"
    assert len(receiver.requests) == 3  # OTHER's event did not match the station filter
    bodies = {r["body"] for r in receiver.requests}
    assert len(bodies) == 1  # the same bytes on every attempt
    for r in receiver.requests:
        h = r["headers"]
        assert verify(sub["secret"], h["x-csms-timestamp"], r["body"], h["x-csms-signature"])
        assert h["x-csms-delivery"] == str(delivery["id"])

    replay = await server.api.post(f"/notifications/deliveries/{delivery['id']}/replay")
    assert replay.status_code == 202, replay.text
    new_id = replay.json()["delivery_id"]
    await eventually(lambda: len(receiver.requests) == 4, what="the replay")
    again = receiver.requests[-1]
    assert again["body"] == receiver.requests[0]["body"]
    assert again["headers"]["x-csms-delivery"] == str(new_id)
    assert again["headers"]["x-csms-notification"] == json.loads(again["body"])["id"]
    log = (await server.api.get(f"/notifications/deliveries/{new_id}")).json()
    assert log["replay_of"] == delivery["id"] and log["status"] in ("delivered", "sending")


async def test_delivery_gives_up_after_the_last_retry_and_test_sends(server, receiver):
    receiver.statuses = [500] * 10
    sub = (await server.api.post("/notifications/subscriptions", json={
        "channel": "webhook", "target": receiver.url})).json()
    queued = await server.api.post(f"/notifications/subscriptions/{sub['id']}/test")
    assert queued.status_code == 202

    async def failed():
        row = (await server.api.get(f"/notifications/deliveries/{queued.json()['delivery_id']}")).json()
        return row if row["status"] == "failed" else None

    row = await eventually(failed, what="given up")
    assert row["attempts"] == 4  # the first try and three retries
    assert row["last_error"] == "the receiver answered HTTP 500" and row["response_body"] == "try again"
    assert receiver.requests[0]["headers"]["x-csms-event"] == "notification.test"


async def test_subscriptions_are_validated(server):
    bad = await server.api.post("/notifications/subscriptions", json={"channel": "webhook", "target": "ftp://x"})
    assert bad.status_code == 400 and "http(s) URL" in bad.json()["detail"]
    bad_mail = await server.api.post("/notifications/subscriptions", json={"channel": "email", "target": "nobody"})
    assert bad_mail.status_code == 400
    no_channel = await server.api.post("/notifications/subscriptions", json={"channel": "pigeon", "target": "x"})
    assert no_channel.status_code == 400


async def test_a_subscription_removed_while_a_notification_is_queued_costs_the_others_nothing(server, receiver,
                                                                                               monkeypatch):
    """The subscriptions are read, then one is removed (as a push service's 410 removes one)
    before its delivery is queued: its delivery fails on the foreign key, the next one's is queued
    all the same (it used to end the loop, and the working device missed the notification)."""
    from plugins.notifications import service
    from plugins.notifications.messages import Notification
    from plugins.notifications.tables import Delivery, Subscription

    subs = [(await server.api.post("/notifications/subscriptions", json={
        "channel": "webhook", "target": f"{receiver.url}?n={n}", "events": ["station.online"]})).json()
        for n in range(2)]
    real_enqueue = service.enqueue

    async def enqueue_after_removal(n, sub, **kwargs):
        if sub["id"] == subs[0]["id"]:
            await Subscription.delete().where(Subscription.id == sub["id"])
        return await real_enqueue(n, sub, **kwargs)

    monkeypatch.setattr(service, "enqueue", enqueue_after_removal)
    notification = Notification(event="station.online", station_id="RACE", data={}, at=utcnow())
    assert await service.notifier().publish(notification) == 1
    queued = await Delivery.select(Delivery.subscription).where(Delivery.notification_id == notification.id)
    assert [d["subscription"] for d in queued] == [subs[1]["id"]]


async def test_a_claim_that_waited_too_long_for_a_free_slot_is_sent_once(any_server, receiver):
    """A delivery is claimed, then waits for one of the sender's slots (all busy with slow
    receivers) longer than STALE_CLAIM; meanwhile a pass takes it as a dead node's claim and
    claims it again. When the slots free up, the receiver must get it once, not from both tasks."""
    import asyncio

    from plugins.notifications import service
    from plugins.notifications.tables import Delivery

    server = any_server
    notifier = service.notifier()
    slots = asyncio.Semaphore(1)
    await slots.acquire()  # every slot busy
    notifier._limit = slots
    sub = (await server.api.post("/notifications/subscriptions", json={
        "channel": "webhook", "target": receiver.url, "events": ["notification.test"]})).json()
    queued = await server.api.post(f"/notifications/subscriptions/{sub['id']}/test")
    delivery_id = queued.json()["delivery_id"]

    async def sending():
        row = await Delivery.select(Delivery.status).where(Delivery.id == delivery_id).first()
        return row["status"] == "sending"

    await eventually(sending, what="claimed")
    # the claim ages past STALE_CLAIM while its task waits for a slot; a pass claims it again
    await Delivery.update({Delivery.last_attempt_at: utcnow() - service.STALE_CLAIM * 2}).where(
        Delivery.id == delivery_id)
    await notifier.send_due()  # (or the sender's own pass did: either way it is claimed twice now)
    slots.release()

    async def delivered():
        row = await Delivery.select(Delivery.status, Delivery.attempts).where(Delivery.id == delivery_id).first()
        return row if row["status"] == "delivered" else None

    row = await eventually(delivered, what="delivered")
    await asyncio.sleep(0.5)  # a second sender would have posted by now
    assert len(receiver.requests) == 1, [r["headers"]["x-csms-delivery"] for r in receiver.requests]
    assert row["attempts"] == 1
