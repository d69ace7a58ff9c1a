"""Web Push to drivers' browsers, end to end over HTTP: a driver's browser subscription posted to
the portal (with its CSRF header) hears of the driver's charging sessions through the push service
stand-in, which checks each request's VAPID token and decrypts it with the browser's keys; a 410
deletes the subscription; a hung push service holds up nothing else; a subscription that cannot
be used is a 400 that says why and stores nothing; a driver removes only their own devices; the
data export lists the devices and erasure deletes them."""

from __future__ import annotations

import json

import httpx
import pytest

from csms.testing import driver_client
from csms.testing.stations import station
from plugins.notifications import webpush
from plugins.notifications.tables import Delivery, Subscription, VapidKey
from plugins.notifications.tests.conftest import csrf_of, eventually
from plugins.notifications.tests.push_service import BrowserKeys, vapid_claims
from plugins.notifications.tests.test_sessions import make_driver, run_session_201

PHONE_UA = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Mobile Safari/537.36")


async def portal(srv, driver_id: int) -> tuple[httpx.AsyncClient, str, str]:
    """A driver's signed-in client, the CSRF token of their Notifications page and the VAPID
    public key the page hands the browser."""
    client = await driver_client(srv, driver_id)
    client.headers["user-agent"] = PHONE_UA
    page = await client.get("/driver/notifications")
    assert page.status_code == 200, page.text
    key = page.text.split('data-key="', 1)[1].split('"', 1)[0]
    return client, csrf_of(page.text), key


async def subscribe(client: httpx.AsyncClient, csrf: str, body: object) -> httpx.Response:
    return await client.post("/driver/notifications/push", content=json.dumps(body).encode(),
                             headers={"x-csrftoken": csrf, "content-type": "application/json"})


async def test_session_pushes_reach_the_phone_encrypted_and_signed(any_server, push_service, pricing):
    srv = any_server
    driver = await make_driver(srv, "Paula Push", "paula@example.org", "PUSHCARD")
    other = await make_driver(srv, "Otto Other", "otto@example.org", "OTTOCARD")
    client, csrf, public_key = await portal(srv, driver)
    phone = BrowserKeys()
    made = await subscribe(client, csrf, phone.subscription(push_service.endpoint("paula-phone")))
    assert made.status_code == 201, made.text
    assert made.json()["device"] == "Chrome on Android"
    # the same browser again (keys renewed): still one device
    phone = BrowserKeys()
    again = await subscribe(client, csrf, phone.subscription(push_service.endpoint("paula-phone")))
    assert again.status_code == 201
    assert await Subscription.count().where(Subscription.channel == "webpush") == 1
    # one key pair for the installation, kept in the database; the page shows only the public key
    stored = await VapidKey.select().first()
    assert stored["public_key"] == public_key and "PRIVATE KEY" in stored["private_key"]
    page = await client.get("/driver/notifications")
    assert "PRIVATE" not in page.text and "Chrome on Android" in page.text
    other_client, other_csrf, _ = await portal(srv, other)
    assert (await subscribe(other_client, other_csrf, BrowserKeys().subscription(
        push_service.endpoint("otto-phone")))).status_code == 201

    async with station(srv, "PUSH-CP", "2.0.1") as cp:
        await run_session_201(cp, "PUSHCARD", "tx-push")
        await eventually(lambda: len(push_service.to("paula-phone")) == 3, what="three pushes to Paula's phone")
    received = push_service.to("paula-phone")
    messages = [phone.decrypt(r["body"]) for r in received]
    assert [m["title"] for m in messages] == ["Charging started", "Charging complete", "Charging session ended"]
    session_id = (await srv.api.get("/sessions", params={"station_id": "PUSH-CP"})).json()["items"][0]["id"]
    assert {m["url"] for m in messages} == {f"/driver/sessions/{session_id}"}
    assert {m["tag"] for m in messages} == {f"session-{session_id}"}
    assert messages[0]["body"] == "At PUSH-CP."
    assert messages[1]["body"] == "At PUSH-CP: 10.00 kWh. Your car stopped drawing power."
    assert messages[2]["body"].startswith("At PUSH-CP: 10.00 kWh in ") and messages[2]["body"].endswith(
        "Cost: 4.84 EUR.")
    for r in received:
        assert r["headers"]["content-encoding"] == "aes128gcm"
        assert int(r["headers"]["ttl"]) == 3600
        claims = vapid_claims(r["headers"]["authorization"], public_key, push_service.origin)
        assert claims["sub"] == "mailto:csms@localhost"
    assert push_service.to("otto-phone") == []  # Otto hears of his own sessions only
    async def logged() -> bool:
        return await Delivery.count().where((Delivery.channel == "webpush") & (Delivery.status == "delivered")) == 3

    await eventually(logged, what="three deliveries logged")
    row = await Delivery.select().where(Delivery.channel == "webpush").first()
    assert row["response_status"] == 201 and row["target"] == push_service.endpoint("paula-phone")

    # in the driver's language: German as the browser asked when subscribing
    german = BrowserKeys()
    assert (await subscribe(client, csrf, {**german.subscription(push_service.endpoint("paula-de")),
                                           "language": "de"})).status_code == 201
    sub = await Subscription.select().where(Subscription.target == push_service.endpoint("paula-de")).first()
    assert sub["language"] == "de"
    test = await srv.api.post(f"/notifications/subscriptions/{sub['id']}/test")
    assert test.status_code == 202, test.text
    await eventually(lambda: len(push_service.to("paula-de")) == 1, what="the test push")
    assert german.decrypt(push_service.to("paula-de")[0]["body"])["title"] == "Test-Benachrichtigung"
    # the admin's API never shows a browser's auth secret
    listed = (await srv.api.get("/notifications/subscriptions", params={"driver": driver})).json()["items"]
    assert all(s["secret"].endswith("…") for s in listed if s["channel"] == "webpush")
    for c in (client, other_client):
        await c.aclose()


async def test_gone_subscription_is_removed_and_a_hung_one_holds_up_nothing(server, push_service):
    driver = await make_driver(server, "Gina Gone", "gina@example.org", "GINACARD")
    client, csrf, _ = await portal(server, driver)
    gone, hung, fine = BrowserKeys(), BrowserKeys(), BrowserKeys()
    for keys, url in ((gone, f"{push_service.origin}/gone/old-phone"), (hung, f"{push_service.origin}/hang/tablet"),
                      (fine, push_service.endpoint("new-phone"))):
        assert (await subscribe(client, csrf, keys.subscription(url))).status_code == 201
    async with station(server, "GONE-CP", "2.0.1") as cp:
        await run_session_201(cp, "GINACARD", "tx-gone")
        await eventually(lambda: len(push_service.to("new-phone")) == 3, what="the working phone's three pushes")
    # the working phone got all three while the hung push service was still holding its requests
    assert push_service.hanging >= 1
    assert await Subscription.count().where(Subscription.target.like("%/gone/%")) == 0
    failed = await Delivery.select().where(Delivery.target.like("%/gone/%")).order_by(Delivery.id)
    assert failed and failed[0]["status"] == "failed" and failed[0]["response_status"] == 410
    assert failed[0]["attempts"] == 1 and "gone" in failed[0]["last_error"]
    # the first 410 ends it: no retry, and the session's later events, queued behind it, never go
    # (they are marked failed by the worker that got the 410, which may still be at it on a busy machine)
    async def all_failed() -> list[dict]:
        rows = await Delivery.select().where(Delivery.target.like("%/gone/%")).order_by(Delivery.id)
        return rows if all(d["status"] == "failed" and "gone" in d["last_error"] for d in rows) else []

    failed = await eventually(all_failed, what="every delivery to the gone subscription failed")
    assert len(push_service.to("/gone/")) == 1
    assert all(d["attempts"] == 0 for d in failed[1:])
    # the hung one times out (3 s) and is retried like any failed delivery
    await eventually(lambda: Delivery.count().where(Delivery.target.like("%/hang/%")
                                                    & (Delivery.attempts >= 1)).run(), what="the hung push timing out")
    row = await Delivery.select().where(Delivery.target.like("%/hang/%")).order_by(Delivery.attempts,
                                                                                   ascending=False).first()
    assert "Timeout" in row["last_error"], row
    assert await Subscription.count().where(Subscription.target.like("%/hang/%")) == 1
    await client.aclose()


@pytest.mark.parametrize("body, reason", [
    ("not json", "The body is not JSON."),
    ([1, 2], "The push subscription must be a JSON object."),
    ({"keys": {}}, "The push subscription has no endpoint."),
    ({"endpoint": "ftp://push.example.org/x", "keys": {}}, "The push endpoint must be an https:// address."),
    ({"endpoint": "https://push.example.org/" + "x" * 600, "keys": {}}, "longer than 512 characters"),
    ({"endpoint": "https://push.example.org/x"}, "has no keys (p256dh and auth)"),
    ({"endpoint": "https://push.example.org/x", "keys": {"p256dh": "bm90IGEga2V5", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}},
     "The key p256dh is not a P-256 public key in base64url."),
    ({"endpoint": "https://push.example.org/x", "keys": {"p256dh": BrowserKeys().p256dh, "auth": "c2hvcnQ"}},
     "The auth secret is not 16 bytes in base64url."),
])
async def test_a_subscription_that_cannot_be_used_is_refused_with_the_reason(server, body, reason):
    driver = await make_driver(server, "Bad Body", "bad@example.org", "BADCARD")
    client, csrf, _ = await portal(server, driver)
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    answer = await client.post("/driver/notifications/push", content=content,
                               headers={"x-csrftoken": csrf, "content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert reason in answer.json()["detail"]
    assert await Subscription.count() == 0
    await client.aclose()


async def test_http_endpoints_only_when_allowed_and_csrf_required(server):
    driver = await make_driver(server, "Hal Http", "hal@example.org", "HALCARD")
    client, csrf, _ = await portal(server, driver)
    keys = BrowserKeys()
    answer = await subscribe(client, csrf, keys.subscription("http://127.0.0.1:9/push/x"))
    assert answer.status_code == 400 and "https://" in answer.json()["detail"]
    forged = await client.post("/driver/notifications/push", json=keys.subscription("https://push.example.org/x"))
    assert forged.status_code == 403
    assert await Subscription.count() == 0
    await client.aclose()


async def test_devices_listed_removed_exported_and_erased(server, push_service):
    ann = await make_driver(server, "Ann Android", "ann@example.org", "ANNCARD")
    bob = await make_driver(server, "Bob Browser", "bob@example.org", "BOBCARD")
    ann_client, ann_csrf, _ = await portal(server, ann)
    bob_client, bob_csrf, _ = await portal(server, bob)
    for name in ("ann-phone", "ann-laptop"):
        assert (await subscribe(ann_client, ann_csrf, BrowserKeys().subscription(
            push_service.endpoint(name)))).status_code == 201
    assert (await subscribe(bob_client, bob_csrf, BrowserKeys().subscription(
        push_service.endpoint("bob-phone")))).status_code == 201
    ann_subs = await Subscription.select().where(Subscription.driver == ann).order_by(Subscription.id)
    bob_sub = await Subscription.select().where(Subscription.driver == bob).first()
    # Bob cannot remove Ann's device: the same 404 as for none
    refused = await bob_client.post(f"/driver/notifications/push/{ann_subs[0]['id']}/delete",
                                    data={"_csrf_token": bob_csrf})
    assert refused.status_code == 404
    removed = await ann_client.post(f"/driver/notifications/push/{ann_subs[0]['id']}/delete",
                                    data={"_csrf_token": ann_csrf})
    assert removed.status_code == 303 and removed.headers["location"] == "/driver/notifications?done=removed"
    page = await ann_client.get("/driver/notifications?done=removed")
    assert "The device was removed" in page.text and page.text.count('data-endpoint=') == 1
    # turning it off in the browser tells the server
    off = await ann_client.post("/driver/notifications/push/unsubscribe", json={
        "endpoint": push_service.endpoint("ann-laptop")}, headers={"x-csrftoken": ann_csrf})
    assert off.status_code == 200 and off.json() == {"removed": 1}
    assert (await subscribe(ann_client, ann_csrf, BrowserKeys().subscription(
        push_service.endpoint("ann-phone")))).status_code == 201

    # saving the private-link page (e-mail and webhook) leaves the browsers alone
    link = (await server.api.post(f"/notifications/drivers/{ann}/link")).json()["url"]
    async with httpx.AsyncClient() as anyone:
        form = await anyone.get(link)
        saved = await anyone.post(link, data={"_csrf_token": csrf_of(form.text), "email": "ann@example.org",
                                              "email:session.stopped": "on"})
        assert saved.status_code == 303, saved.text
    assert await Subscription.count().where((Subscription.driver == ann) & (Subscription.channel == "webpush")) == 1
    assert await Subscription.count().where((Subscription.driver == ann) & (Subscription.channel == "email")) == 1

    export = await ann_client.get("/driver/account/export")
    assert export.status_code == 200
    mine = export.json()["plugins"]["notifications"]["subscriptions"]
    pushed = [s for s in mine if s["channel"] == "webpush"]
    assert [(s["target"], s["device"], s["language"]) for s in pushed] == [
        (push_service.endpoint("ann-phone"), "Chrome on Android", "en")]
    assert "auth" not in json.dumps(mine) and all(s.get("secret") is None for s in mine)
    erased = await server.api.post(f"/drivers/{ann}/erase")
    assert erased.status_code == 200 and erased.json()["failed_plugins"] == [], erased.text
    assert await Subscription.count().where(Subscription.driver == ann) == 0
    assert await Subscription.exists().where(Subscription.id == bob_sub["id"])
    for c in (ann_client, bob_client):
        await c.aclose()


async def test_a_configured_vapid_key_is_used(tmp_path, monkeypatch):
    made = webpush.Vapid()
    made.generate_keys()
    monkeypatch.setenv("CSMS_NOTIFICATIONS_VAPID_PRIVATE_KEY", made.private_pem().decode())
    from plugins.notifications.config import notification_settings
    from csms.testing import running_server

    notification_settings.cache_clear()
    async with running_server(tmp_path) as srv:
        driver = await make_driver(srv, "Kim Key", "kim@example.org", "KIMCARD")
        client, _, key = await portal(srv, driver)
        assert key == webpush._public_key_text(made)
        assert await VapidKey.count() == 0
        await client.aclose()


@pytest.fixture
def pricing():
    from plugins.notifications.tests.test_sessions import FlatPricing
    from csms.testing import pm

    plugin = FlatPricing()
    pm.register(plugin, name="test-flat-pricing")
    yield plugin
    pm.unregister(name="test-flat-pricing")


def test_device_names():
    assert webpush.device_name(PHONE_UA) == "Chrome on Android"
    assert webpush.device_name("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
                               "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1") == "Safari on iPhone"
    assert webpush.device_name("") == "A browser"


