"""Web Push: notifications to a driver's phone (or computer) browser, even with the portal closed.

The browser subscribes with the installation's VAPID public key (the driver portal's
Notifications page and its service worker, ``static/push-sw.js``) and hands the CSMS its push
subscription: the push service's endpoint, its public key ``p256dh`` and its ``auth`` secret.
That becomes a subscription of channel ``webpush`` (``target`` the endpoint, ``secret`` the auth
secret) hearing of the driver's own session events, delivered, logged and retried like e-mail
and webhooks.

Sending uses ``pywebpush``: the message is encrypted for the browser (RFC 8291, ``aes128gcm``)
and the request carries a VAPID token (RFC 8292) signed with the installation's private key. The
library is synchronous, so every push runs in this module's own worker threads, never on the
event loop (a hung push service holds one thread until ``push_timeout``, nothing else). A push
service answering 404 or 410 says the subscription is gone (the driver turned notifications off,
the browser dropped it): the subscription is deleted and the delivery is not retried.

The VAPID key pair is ``CSMS_NOTIFICATIONS_VAPID_PRIVATE_KEY`` if set, else made once for the
installation and kept in ``notifications_vapid_key`` (every node uses the same pair; the first
to make it wins). The private key is never shown anywhere.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02 as Vapid
from pywebpush import WebPushException, webpush

from csms.plugin_api import gettext, in_language, smtp_settings
from plugins.notifications.channels import DeliveryFailed, SubscriptionGone
from plugins.notifications.config import notification_settings
from plugins.notifications.tables import VapidKey

log = logging.getLogger("csms.notifications")

MAX_ENDPOINT = 512
_KEY_NAME = "default"
_keys: tuple[Vapid, str] | None = None
_pool: ThreadPoolExecutor | None = None
_public_url = ""


class PushSubscriptionError(ValueError):
    """A push subscription the browser sent that cannot be used; the message says why."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def use_public_url(url: str) -> None:
    """The core's ``public_url`` (a VAPID subject when no other is configured)."""
    global _public_url
    _public_url = url


def _public_key_text(key: Vapid) -> str:
    return b64url(key.public_key.public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint))


def _from_setting(text: str) -> Vapid:
    text = text.strip()
    if "BEGIN" in text:
        return Vapid.from_pem(text.encode())
    try:
        return Vapid.from_raw(text.encode())  # the 32-byte private number (web-push's form)
    except Exception:
        return Vapid.from_string(text)  # base64 DER


async def vapid_keys() -> tuple[Vapid, str]:
    """The installation's VAPID key and its public key as base64url (what browsers subscribe with)."""
    global _keys
    if _keys is not None:
        return _keys
    configured = notification_settings().vapid_private_key
    if configured:
        key = _from_setting(configured)
    else:
        row = await VapidKey.select().where(VapidKey.name == _KEY_NAME).first()
        if row is None:
            made = Vapid()
            made.generate_keys()
            pem = made.private_pem().decode()
            try:
                await VapidKey(name=_KEY_NAME, private_key=pem, public_key=_public_key_text(made)).save()
            except Exception:  # another node made the pair first: use theirs
                log.info("the VAPID key pair was made by another node")
            row = await VapidKey.select().where(VapidKey.name == _KEY_NAME).first()
            if row is None:
                raise RuntimeError("the VAPID key pair could not be stored")
        key = Vapid.from_pem(row["private_key"].encode())
    _keys = (key, _public_key_text(key))
    return _keys


def forget_keys() -> None:
    """Read the key pair again next time (tests, a changed setting)."""
    global _keys
    _keys = None


def vapid_subject() -> str:
    """Whom the push services may contact: the setting, else the public URL (https), else
    ``mailto:`` the SMTP sender."""
    configured = notification_settings().vapid_subject.strip()
    if configured:
        return configured
    if _public_url.startswith("https://"):
        return _public_url.rstrip("/")
    sender = smtp_settings().from_.split("<")[-1].strip(" >")
    return f"mailto:{sender or 'csms@localhost'}"


# -- a browser's subscription -------------------------------------------------------------------


def check_subscription(data: Any) -> dict[str, str]:
    """``endpoint``, ``p256dh`` and ``auth`` of a browser's ``PushSubscription.toJSON()``, checked;
    :class:`PushSubscriptionError` says what is wrong."""
    if not isinstance(data, dict):
        raise PushSubscriptionError(gettext("The push subscription must be a JSON object."))
    endpoint = data.get("endpoint")
    keys = data.get("keys")
    if not isinstance(endpoint, str) or not endpoint:
        raise PushSubscriptionError(gettext("The push subscription has no endpoint."))
    parts = urlsplit(endpoint)
    schemes = ("https", "http") if notification_settings().push_insecure_endpoints else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        raise PushSubscriptionError(gettext("The push endpoint must be an https:// address."))
    if len(endpoint) > MAX_ENDPOINT:
        raise PushSubscriptionError(gettext("The push endpoint is longer than %(n)s characters.", n=MAX_ENDPOINT))
    if not isinstance(keys, dict) or not isinstance(keys.get("p256dh"), str) or not isinstance(keys.get("auth"), str):
        raise PushSubscriptionError(gettext("The push subscription has no keys (p256dh and auth)."))
    try:
        point = unb64url(keys["p256dh"])
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except (ValueError, binascii.Error):
        raise PushSubscriptionError(gettext("The key p256dh is not a P-256 public key in base64url.")) from None
    try:
        auth = unb64url(keys["auth"])
    except (ValueError, binascii.Error):
        auth = b""
    if len(auth) != 16:
        raise PushSubscriptionError(gettext("The auth secret is not 16 bytes in base64url."))
    return {"endpoint": endpoint, "p256dh": b64url(point), "auth": b64url(auth)}


def device_name(user_agent: str) -> str:
    """A short name of the browser a subscription came from ("Chrome on Android")."""
    ua = user_agent or ""
    system = next((name for token, name in (("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"),
                                            ("Windows", "Windows"), ("Mac OS", "macOS"), ("CrOS", "ChromeOS"),
                                            ("Linux", "Linux")) if token in ua), "")
    browser = next((name for token, name in (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"),
                                             ("SamsungBrowser", "Samsung Internet"), ("Chrome/", "Chrome"),
                                             ("Chromium/", "Chromium"), ("Safari/", "Safari")) if token in ua), "")
    if browser and system:
        return gettext("%(browser)s on %(system)s", browser=browser, system=system)[:200]
    return (browser or system or gettext("A browser"))[:200]


# -- what a push says ---------------------------------------------------------------------------


def message(delivery: dict[str, Any]) -> dict[str, Any]:
    """The JSON the service worker shows: title, body, the page a tap opens, a tag (one
    notification per session, replaced as it goes on). In the current language."""
    payload = json.loads(delivery["payload"])
    data = payload.get("data") or {}
    event = payload.get("event", "")
    station = payload.get("station_id") or ""
    kwh = f"{float(data.get('energy_wh') or 0) / 1000:.2f}"
    session = data.get("session_id")
    url = f"/driver/sessions/{session}" if session else "/driver/notifications"
    if event == "session.started":
        title, body = gettext("Charging started"), gettext("At %(station)s.", station=station)
    elif event == "session.charging_complete":
        title = gettext("Charging complete")
        body = gettext("At %(station)s: %(kwh)s kWh. Your car stopped drawing power.", station=station, kwh=kwh)
    elif event == "session.stopped":
        title = gettext("Charging session ended")
        minutes = round(float(data.get("duration_s") or 0) / 60)
        body = gettext("At %(station)s: %(kwh)s kWh in %(minutes)s min.", station=station, kwh=kwh, minutes=minutes)
        cost = data.get("cost")
        if cost:
            body += " " + gettext("Cost: %(amount)s %(currency)s.", amount=cost.get("total_incl_vat"),
                                  currency=cost.get("currency"))
    elif event == "notification.test":
        title, body = gettext("Test notification"), gettext("Push notifications reach this device.")
    else:
        title, body = delivery.get("subject") or event, ""
    return {"title": title, "body": body, "url": url, "tag": f"session-{session}" if session else event,
            "event": event, "id": payload.get("id")}


# -- sending ------------------------------------------------------------------------------------


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="webpush")
    return _pool


def close() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None


def _send(info: dict[str, Any], data: bytes, key: Vapid, subject: str) -> tuple[int, str]:
    """One push request (in a worker thread)."""
    settings = notification_settings()
    try:
        response = webpush(info, data, vapid_private_key=key, vapid_claims={"sub": subject},
                           content_encoding="aes128gcm", ttl=settings.push_ttl, timeout=settings.push_timeout)
    except WebPushException as exc:
        status = exc.response.status_code if exc.response is not None else None
        body = (exc.response.text if exc.response is not None else "")[:500]
        if status in (404, 410):
            raise SubscriptionGone(f"the push service answered HTTP {status}: the subscription is gone", status,
                                   body) from None
        raise DeliveryFailed(f"the push service answered HTTP {status}" if status else str(exc)[:500],
                             status, body) from None
    except Exception as exc:  # refused connection, timeout, TLS...
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}"[:500]) from None
    return response.status_code, response.text[:500]


async def send_push(delivery: dict[str, Any], sub: dict[str, Any]) -> tuple[int, str]:
    """Send one delivery to the browser of ``sub`` (encrypted, VAPID-signed), off the event loop."""
    key, _ = await vapid_keys()
    info = {"endpoint": delivery["target"], "keys": {"p256dh": sub["p256dh"], "auth": sub["secret"]}}
    with in_language(sub.get("language") or ""):  # the language the driver subscribed in
        data = json.dumps(message(delivery), separators=(",", ":")).encode()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), _send, info, data, key, vapid_subject())
