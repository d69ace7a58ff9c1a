"""Sending one delivery: a signed webhook POST or an e-mail through SMTP.

Webhooks carry the notification as JSON and these headers:

* ``X-CSMS-Event``: the event name; ``X-CSMS-Delivery``: the delivery id (a replay has its own);
  ``X-CSMS-Notification``: the notification id (the same on retries and replays: deduplicate on it);
* ``X-CSMS-Timestamp``: Unix seconds of this attempt;
* ``X-CSMS-Signature``: ``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the subscription's secret>``.

A receiver recomputes the HMAC over the raw body, compares in constant time and refuses
timestamps more than a few minutes old (replay protection).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import httpx

from csms.plugin_api import MailError, __version__, send_mail
from plugins.notifications.config import notification_settings


class DeliveryFailed(Exception):
    """This attempt failed; ``status`` is the receiver's HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class SubscriptionGone(DeliveryFailed):
    """The subscription no longer exists (deleted, or its push service answered 404 or 410):
    never retried, and nothing more of it is sent."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, header: str, *, tolerance_s: float = 300.0) -> bool:
    """What a receiver does (used by the tests and shown in the README)."""
    try:
        fresh = abs(time.time() - int(timestamp)) <= tolerance_s
    except ValueError:
        return False
    return fresh and hmac.compare_digest(signature(secret, timestamp, body), header)


async def post_webhook(delivery: dict[str, Any], secret: str) -> tuple[int, str]:
    body = delivery["payload"].encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json", "User-Agent": f"csms-webhooks/{__version__}",
        "X-CSMS-Event": delivery["event"], "X-CSMS-Delivery": str(delivery["id"]),
        "X-CSMS-Notification": delivery["notification_id"], "X-CSMS-Timestamp": timestamp,
        "X-CSMS-Signature": signature(secret, timestamp, body),
    }
    try:
        async with httpx.AsyncClient(timeout=notification_settings().webhook_timeout,
                                     follow_redirects=False) as client:
            response = await client.post(delivery["target"], content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}"[:500]) from None
    text = response.text[:500]
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"the receiver answered HTTP {response.status_code}", response.status_code, text)
    return response.status_code, text


async def send_email(delivery: dict[str, Any], text: str) -> None:
    try:
        await send_mail(delivery["target"], delivery["subject"], text, headers={
            "X-CSMS-Event": delivery["event"], "X-CSMS-Notification": delivery["notification_id"]})
    except MailError as exc:
        raise DeliveryFailed(str(exc)) from None
