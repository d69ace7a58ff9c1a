"""Push notifications on a driver's phone, in Debian's Chromium (desktop and phone viewport).

What is real here: the portal page and its script, the service worker (registered with scope
``/driver/``), ``pushManager.subscribe`` with the installation's VAPID key (the browser makes its
own key pair and auth secret; the two Google services it asks offline are ``fake_gcm``), the POST
of the subscription with the portal's CSRF header, the server's encrypted and VAPID-signed push
requests (pywebpush) and the service worker showing what it is pushed.

What stands in, because there is no network: the push service. The browser's endpoint is on
Google's staging push service; the test points the stored endpoint at the local stand-in, which
checks the VAPID token and the aes128gcm framing of what the server sends for the browser's own
keys (only the browser can decrypt those). To read a message, a second subscription with keys the
test made (as a browser makes them) gets the same notifications; the stand-in decrypts them and
the test hands the plaintext to the browser's service worker through the DevTools protocol
(``ServiceWorker.deliverPushMessage``, what the browser does after decrypting) and reads what the
worker showed. Headless Chromium has no notification server, and what it displays does not
reliably stay listed in ``registration.getNotifications()`` (it did in some runs, not in others),
so the test records the worker's ``showNotification`` calls once each has resolved. A tap on a
notification is a system event headless Chromium cannot make: the ``notificationclick`` handler
is not exercised here.

Screenshots: driver-push-desktop.png, driver-push-phone.png (and -off) in test-artifacts/screenshots/.
"""

from __future__ import annotations

import json
import shutil

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.async_api import async_playwright, expect

from csms.testing import CHROMIUM_ARGS, asgi_server, driver_cookie, screenshot
from csms.testing.stations import station
from plugins.notifications.tables import Subscription
from plugins.notifications.tests.conftest import eventually
from plugins.notifications.tests.fake_gcm import FakeGcm
from plugins.notifications.tests.push_service import BrowserKeys, unb64, vapid_claims
from plugins.notifications.tests.test_sessions import make_driver, run_session_201

VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture
async def fake_gcm():
    gcm = FakeGcm()
    async with asgi_server(gcm, gcm.port):
        yield gcm


def aes128gcm_keyid(body: bytes) -> bytes:
    """The sender's public key in an aes128gcm body's header (salt 16, rs 4, idlen 1, keyid)."""
    assert int.from_bytes(body[16:20], "big") == 4096 and body[20] == 65, body[:21]
    return body[21:86]


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
async def test_driver_turns_push_on_gets_notified_and_turns_it_off(server, push_service, fake_gcm, tmp_path,
                                                                   viewport):
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    driver = await make_driver(server, "Phoebe Phone", "phoebe@example.org", "PHONECARD")
    cookie = await driver_cookie(driver)
    async with async_playwright() as p:
        # a profile on disk: Chromium offers no push messaging in an incognito-like context
        context = await p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=executable, args=[*CHROMIUM_ARGS, *fake_gcm.chromium_args()],
            base_url=server.base_url, viewport=VIEWPORTS[viewport], locale="en-US")
        try:
            await context.grant_permissions(["notifications"], origin=server.base_url)
            await context.add_cookies([{**cookie, "url": f"{server.base_url}/driver"}])
            page = await context.new_page()
            page.set_default_timeout(20_000)
            await page.goto("/driver/cards")
            await page.get_by_role("navigation", name="Driver").get_by_role("link", name="Notifications").click()
            await expect(page.get_by_role("heading", name="Push notifications on this device")).to_be_visible()
            await expect(page.locator("#push-state")).to_have_text("This device gets no push notifications.")
            await expect(page.get_by_text("No device gets push notifications yet.")).to_be_visible()

            await page.get_by_role("button", name="Turn on notifications on this device").click()
            await expect(page.get_by_role("status").first).to_have_text("Push notifications are on for this device.")
            await expect(page.locator("#push-state")).to_have_text("This device gets push notifications.")
            device = page.locator("li.device")
            await expect(device).to_have_count(1)
            await expect(device.locator(".this-device")).to_be_visible()
            await expect(device).to_contain_text("Chrome on Linux")
            # what the server stored is the browser's real subscription
            browser_sub = json.loads(await page.evaluate(
                "navigator.serviceWorker.ready.then(r => r.pushManager.getSubscription()).then(s => JSON.stringify(s))"))
            assert browser_sub["endpoint"] == f"https://jmt17.google.com/fcm/send/{fake_gcm.tokens[-1]}"
            row = await Subscription.select().where(Subscription.channel == "webpush").first()
            assert (row["target"], row["p256dh"], row["secret"], row["driver"], row["language"]) == (
                browser_sub["endpoint"], browser_sub["keys"]["p256dh"], browser_sub["keys"]["auth"], driver, "en")
            public_key = await page.locator("#push").get_attribute("data-key")
            # Chromium subscribed with the installation's VAPID key (the registration names it as sender)
            assert fake_gcm.registrations[-1]["sender"] == public_key
            assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            await screenshot(page, f"driver-push-{viewport}")

            # the push service is offline: its stand-in takes the browser's pushes
            await Subscription.update({Subscription.target: push_service.endpoint("real-browser")}).where(
                Subscription.id == row["id"])
            reader = BrowserKeys()  # a second device whose messages the test can read
            posted = await page.evaluate("""async (sub) => {
                const box = document.getElementById("push");
                const r = await fetch("/driver/notifications/push", {method: "POST", body: JSON.stringify(sub),
                    headers: {"Content-Type": "application/json", "x-csrftoken": box.dataset.csrf}});
                return r.status;
            }""", reader.subscription(push_service.endpoint("reader")))
            assert posted == 201

            async with station(server, f"PUSH-{viewport.upper()}", "2.0.1") as cp:
                await run_session_201(cp, "PHONECARD", f"tx-{viewport}")
                await eventually(lambda: len(push_service.to("real-browser")) == 3 and len(push_service.to("reader")) == 3,
                                 what="three pushes to each device")
            for r in push_service.to("real-browser"):
                assert r["headers"]["content-encoding"] == "aes128gcm"
                vapid_claims(r["headers"]["authorization"], public_key, push_service.origin)
                ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), aes128gcm_keyid(r["body"]))
                assert unb64(browser_sub["keys"]["auth"]) not in r["body"]
            messages = [reader.decrypt(r["body"]) for r in push_service.to("reader")]
            assert [m["title"] for m in messages] == ["Charging started", "Charging complete",
                                                       "Charging session ended"]

            # the browser's service worker shows what it is pushed
            cdp = await context.new_cdp_session(page)
            registrations: list[dict] = []
            versions: list[dict] = []
            cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"]))
            cdp.on("ServiceWorker.workerVersionUpdated", lambda e: versions.extend(e["versions"]))
            await cdp.send("ServiceWorker.enable")
            await eventually(lambda: any(r["scopeURL"] == f"{server.base_url}/driver/" for r in registrations),
                             what="the service worker's registration")
            registration = next(r for r in registrations if r["scopeURL"] == f"{server.base_url}/driver/")
            # a service worker idle for a while is stopped: start it, as a push from the network would
            await cdp.send("ServiceWorker.startWorker", {"scopeURL": registration["scopeURL"]})
            await eventually(lambda: any(v["registrationId"] == registration["registrationId"]
                                         and v["runningStatus"] == "running" and v["status"] == "activated"
                                         for v in versions), what="the service worker running")
            worker = next(w for w in context.service_workers if w.url == f"{server.base_url}/driver/push-sw.js")
            assert await worker.evaluate("self.registration.scope") == f"{server.base_url}/driver/"
            # Headless Chromium has no notification server: what it displays does not always stay
            # listed in getNotifications(). So the worker's showNotification calls are recorded
            # (after each one resolved) and read back through Playwright.
            await worker.evaluate("""() => {
                self.shownLog = [];
                const show = ServiceWorkerRegistration.prototype.showNotification;
                ServiceWorkerRegistration.prototype.showNotification = function (title, options) {
                    return show.call(this, title, options).then(() => { self.shownLog.push({title, ...options}); });
                };
            }""")
            # one at a time, as the push service delivers them
            for number, m in enumerate(messages, start=1):
                await cdp.send("ServiceWorker.deliverPushMessage", {
                    "origin": server.base_url, "registrationId": registration["registrationId"],
                    "data": json.dumps(m)})

                async def shown(count: int = number) -> list[dict] | None:
                    log = await worker.evaluate("self.shownLog")
                    return log if len(log) >= count else None

                note = (await eventually(shown, what=f"the notification {m['title']!r}"))[-1]
                assert (note["title"], note["body"], note["tag"], note["renotify"]) == (
                    m["title"], m["body"], f"session-{session_id(messages)}", True)
                assert note["data"] == {"url": m["url"], "event": m["event"]}

            # turned off: the browser unsubscribes and the server forgets the device (not the reader)
            await Subscription.update({Subscription.target: browser_sub["endpoint"]}).where(
                Subscription.id == row["id"])
            await page.reload()
            await page.get_by_role("button", name="Turn off on this device").click()
            await expect(page.get_by_role("status").first).to_have_text("Push notifications are off for this device.")
            await expect(page.locator("#push-state")).to_have_text("This device gets no push notifications.")
            assert not await Subscription.exists().where(Subscription.id == row["id"])
            assert await page.evaluate(
                "navigator.serviceWorker.ready.then(r => r.pushManager.getSubscription()).then(s => s === null)")
            await expect(page.locator("li.device")).to_have_count(1)  # the reader device, removable here
            await page.get_by_role("button", name="Remove Chrome on Linux").click()
            await expect(page.get_by_role("status").first).to_contain_text("The device was removed")
            await expect(page.get_by_text("No device gets push notifications yet.")).to_be_visible()
            await screenshot(page, f"driver-push-{viewport}-off")
        finally:
            await context.close()


def session_id(messages: list[dict]) -> int:
    return int(messages[0]["url"].rsplit("/", 1)[1])
