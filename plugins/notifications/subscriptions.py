"""Subscriptions: validation and the JSON form shared by the REST API and the admin."""

from __future__ import annotations

import re
import secrets
from typing import Any

from csms.plugin_api import (
    GLOBAL, N_, Driver, Scope, Site, Station, TranslatedError, check_assignable, jsonable, owner_by, owner_for_new,
    register_kind,
)
from plugins.notifications.messages import DRIVER_EVENTS
from plugins.notifications.service import new_secret
from plugins.notifications.tables import Delivery, DriverLink, Subscription

CHANNELS = ("webhook", "email")  # what an operator creates; a driver's browser adds "webpush" itself

# Route rules name these kinds: another organization's subscription or delivery is a 404.
register_kind("subscription", owner_by(Subscription.id, Subscription.organization))
register_kind("delivery", owner_by(Delivery.id, Delivery.subscription.organization))
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class SubscriptionError(TranslatedError, ValueError):
    """A subscription refused; ``status`` is the HTTP status to answer with. The message is
    worded when read, in the reader's language (see ``TranslatedError``)."""

    def __init__(self, text: str, status: int = 400, **params: Any) -> None:
        super().__init__(text, **params)
        self.status = status


async def check(values: dict[str, Any], scope: Scope = GLOBAL, *, new: bool = False) -> dict[str, Any]:
    """Validate a whole subscription (``values`` holds every field) as ``scope`` may write it;
    fill defaults. A new subscription belongs to the organization asked for (one the caller
    manages) or the caller's own; a driver's belongs to the driver's organization. The driver,
    site and station it names must be ones the caller sees (else the same 404 as for none)."""
    channel = values.get("channel")
    if channel not in CHANNELS and not (channel == "webpush" and not new):
        raise SubscriptionError(N_("channel must be one of %(channels)s"), channels=", ".join(CHANNELS))
    driver = values.get("driver")
    target = str(values.get("target") or "").strip()
    organization = values.get("organization")
    if new:
        organization = await owner_for_new(scope, organization, what="a subscription")
    elif organization is not None or not scope.is_global:
        await check_assignable(scope, organization, what="a subscription")
    if driver is not None:
        row = await Driver.select(Driver.email, Driver.organization).where(Driver.id == driver).first()
        if row is None or not scope.sees(row["organization"]):
            raise SubscriptionError(N_("no driver %(driver)s"), 404, driver=driver)
        if channel == "email" and not target:
            target = row["email"] or ""
        organization = row["organization"]
    if channel == "webhook" and not target.lower().startswith(("http://", "https://")):
        raise SubscriptionError(N_("a webhook target is an http(s) URL"))
    if channel == "email" and not _EMAIL.match(target):
        raise SubscriptionError(N_("an e-mail target is an address like name@example.org"))
    events = values.get("events") or (list(DRIVER_EVENTS) if driver is not None else ["*"])
    if isinstance(events, str):
        events = [e.strip() for e in events.split(",") if e.strip()]
    if not isinstance(events, list) or not events or not all(isinstance(e, str) and 0 < len(e) <= 64 for e in events):
        raise SubscriptionError(N_("events is a list of event names or patterns (session.*, alert.opened, *)"))
    site = values.get("site")
    if site is not None:
        row = await Site.select(Site.organization).where(Site.id == site).first()
        if row is None or not scope.sees(row["organization"]):
            raise SubscriptionError(N_("no site %(site)s"), 404, site=site)
    station_id = str(values.get("station_id") or "")[:64]
    if station_id and not scope.is_global:
        row = await Station.select(Station.organization).where(Station.station_id == station_id).first()
        if row is None or not scope.sees(row["organization"]):
            raise SubscriptionError(N_("no station %(station)s"), 404, station=repr(station_id))
    secret = str(values.get("secret") or "")
    if channel == "webhook" and not secret:
        secret = new_secret()
    if channel == "email":
        secret = ""
    if channel == "webpush" and driver is None:
        raise SubscriptionError("a push subscription belongs to a driver")
    return {"name": str(values.get("name") or "")[:200], "channel": channel, "target": target[:512],
            "secret": secret[:128], "events": events, "station_id": station_id,
            "site": site, "driver": driver, "enabled": bool(values.get("enabled", True)),
            "organization": organization}


async def create(values: dict[str, Any], scope: Scope = GLOBAL) -> dict[str, Any]:
    row = Subscription(**await check(values, scope, new=True))
    await row.save()
    return await subscription_row(row.id)


async def update(subscription_id: int, values: dict[str, Any], scope: Scope = GLOBAL) -> dict[str, Any]:
    row = await subscription_row(subscription_id, scope)
    merged = await check({**row, **values}, scope)
    await Subscription.update({getattr(Subscription, k): v for k, v in merged.items()}).where(
        Subscription.id == subscription_id)
    return await subscription_row(subscription_id)


async def subscription_row(subscription_id: int, scope: Scope = GLOBAL) -> dict[str, Any]:
    row = await Subscription.select().where(Subscription.id == subscription_id).output(load_json=True).first()
    if row is None or not scope.sees(row["organization"]):
        raise SubscriptionError(N_("no subscription %(subscription)s"), 404, subscription=subscription_id)
    return row


def subscription_json(row: dict[str, Any], *, show_secret: bool) -> dict[str, Any]:
    out = jsonable(row)
    if (not show_secret or out.get("channel") == "webpush") and out.get("secret"):  # a browser's auth: never
        out["secret"] = out["secret"][:4] + "…"
    return out


async def driver_link(driver_id: int, scope: Scope = GLOBAL) -> str:
    """The driver's private token (made on first use)."""
    row = await Driver.select(Driver.organization).where(Driver.id == driver_id).first()
    if row is None or not scope.sees(row["organization"]):
        raise SubscriptionError(N_("no driver %(driver)s"), 404, driver=driver_id)
    row = await DriverLink.select(DriverLink.token).where(DriverLink.driver == driver_id).first()
    if row is not None:
        return row["token"]
    token = secrets.token_urlsafe(32)
    await DriverLink(driver=driver_id, token=token).save()
    return token


async def driver_of_token(token: str) -> int | None:
    row = await DriverLink.select(DriverLink.driver).where(DriverLink.token == token).first()
    return row["driver"] if row else None


async def save_push(driver_id: int, push: dict[str, str], *, device: str, language: str) -> dict[str, Any]:
    """A driver's browser subscribed (``push`` from :func:`webpush.check_subscription`): store it
    as the driver's ``webpush`` subscription to their session events. The same endpoint again
    (the browser renewed its keys, or another driver signed in on that browser) replaces the
    earlier one: a browser's notifications go to the driver signed in last."""
    row = await Driver.select(Driver.organization).where(Driver.id == driver_id).first()
    if row is None:
        raise SubscriptionError(f"no driver {driver_id}", 404)
    await Subscription.delete().where((Subscription.channel == "webpush") & (Subscription.target == push["endpoint"]))
    sub = Subscription(name=f"driver {driver_id} webpush", channel="webpush", target=push["endpoint"],
                       secret=push["auth"], p256dh=push["p256dh"], events=list(DRIVER_EVENTS), driver=driver_id,
                       organization=row["organization"], device=device[:200], language=language[:8])
    await sub.save()
    return await subscription_row(sub.id)


async def push_subscriptions(driver_id: int) -> list[dict[str, Any]]:
    """The driver's subscribed browsers, newest first."""
    return await Subscription.select(Subscription.id, Subscription.target, Subscription.device,
                                     Subscription.created_at).where(
        (Subscription.channel == "webpush") & (Subscription.driver == driver_id)).order_by(
        Subscription.id, ascending=False)
