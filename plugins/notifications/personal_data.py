"""A driver's personal data in notifications (GDPR): the ``driver_data_export`` and
``driver_erased`` hooks.

What the plugin holds about a driver: their own subscriptions (``Subscription.driver``; a
``webpush`` one is a browser of theirs: its push endpoint, the device name and language, but
not its keys, which are the browser's secret), e-mail
subscriptions that send to their address without being linked to them (an operator added the
address by hand), the deliveries of both (the delivery log keeps the target address and the
notification's text), and their private settings link (``DriverLink``).

Erasure:

* the driver's own subscriptions and their private link are deleted;
* e-mail subscriptions to the driver's address are deleted too (they would keep mailing the
  person and keep the address), unless another driver still has that address;
* in the delivery log of those subscriptions, and in every e-mail delivery to the address, the
  target becomes ``"(erased)"``; one that was still waiting to go out (``pending``) is not sent
  any more: it is marked ``failed`` with the reason. Events, times and statuses stay.

The address is matched without regard to case. Erasing again (the core calls the hook again with
the anonymised row, whose ``email`` is empty) finds nothing left and changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from piccolo.columns.combination import Or, WhereRaw

from csms.plugin_api import Driver
from plugins.notifications.tables import Delivery, DriverLink, Subscription

ERASED = "(erased)"
NOT_SENT = "not sent: the recipient's personal data was erased"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _address(driver: dict[str, Any]) -> str:
    return (driver.get("email") or "").strip().lower()


def _to(address: str) -> WhereRaw:
    """Rows whose ``target`` is ``address`` in any case (SQL ``lower``: both databases)."""
    return WhereRaw("lower(trim(target)) = {}", address)


async def _address_subscriptions(address: str) -> list[dict[str, Any]]:
    """Unlinked e-mail subscriptions to ``address`` (any case)."""
    if not address:
        return []
    return await Subscription.select(Subscription.id, Subscription.target).where(
        (Subscription.channel == "email") & Subscription.driver.is_null() & _to(address))


async def _address_deliveries(address: str) -> list[int]:
    if not address:
        return []
    return [r["id"] for r in await Delivery.select(Delivery.id).where((Delivery.channel == "email") & _to(address))]


async def driver_export(driver: dict[str, Any]) -> dict[str, Any] | None:
    """The driver's subscriptions (own and to their address), their deliveries and whether a
    private link exists; None when there is nothing."""
    address = _address(driver)
    own = await Subscription.select().where(Subscription.driver == driver["id"]).order_by(
        Subscription.id).output(load_json=True)
    by_address = [s["id"] for s in await _address_subscriptions(address)]
    subscriptions = own + (await Subscription.select().where(Subscription.id.is_in(by_address)).order_by(
        Subscription.id).output(load_json=True) if by_address else [])
    conditions = []
    if subscriptions:
        conditions.append(Delivery.subscription.is_in([s["id"] for s in subscriptions]))
    to_address = await _address_deliveries(address)
    if to_address:
        conditions.append(Delivery.id.is_in(to_address))
    deliveries: list[dict[str, Any]] = []
    if conditions:
        where = conditions[0] if len(conditions) == 1 else Or(conditions[0], conditions[1])
        deliveries = await Delivery.select(
            Delivery.id, Delivery.subscription, Delivery.channel, Delivery.target, Delivery.event,
            Delivery.station_id, Delivery.subject, Delivery.status, Delivery.attempts, Delivery.created_at,
            Delivery.delivered_at).where(where).order_by(Delivery.id)
    link = await DriverLink.exists().where(DriverLink.driver == driver["id"])
    if not subscriptions and not deliveries and not link:
        return None
    return {
        "subscriptions": [{
            "id": s["id"], "name": s["name"], "channel": s["channel"], "target": s["target"], "events": s["events"],
            "station_id": s["station_id"], "site": s["site"], "enabled": s["enabled"],
            "yours": s["driver"] == driver["id"], "created_at": _iso(s["created_at"]),
            **({"device": s["device"], "language": s["language"]} if s["channel"] == "webpush" else {}),
        } for s in subscriptions],
        "deliveries": [{
            "id": d["id"], "subscription": d["subscription"], "channel": d["channel"], "target": d["target"],
            "event": d["event"], "station_id": d["station_id"], "subject": d["subject"], "status": d["status"],
            "attempts": d["attempts"], "created_at": _iso(d["created_at"]), "delivered_at": _iso(d["delivered_at"]),
        } for d in deliveries],
        "private_settings_link": link,
    }


async def driver_erase(driver: dict[str, Any]) -> dict[str, int]:
    """Delete the driver's subscriptions and link, scrub their address from the delivery log (see
    the module docstring); returns what changed."""
    address = _address(driver)
    shared = bool(address) and await Driver.exists().where(
        (Driver.id != driver["id"]) & WhereRaw("lower(trim(email)) = {}", address))
    own = [r["id"] for r in await Subscription.select(Subscription.id).where(Subscription.driver == driver["id"])]
    by_address = [] if shared else [s["id"] for s in await _address_subscriptions(address)]
    gone = own + by_address
    scrub = set(await _address_deliveries(address)) if not shared else set()
    if gone:
        scrub |= {r["id"] for r in await Delivery.select(Delivery.id).where(
            Delivery.subscription.is_in(gone) & (Delivery.target != ERASED))}
    ids = sorted(scrub)
    if ids:
        await Delivery.update({Delivery.status: "failed", Delivery.last_error: NOT_SENT}).where(
            Delivery.id.is_in(ids) & (Delivery.status == "pending"))
        await Delivery.update({Delivery.target: ERASED}).where(Delivery.id.is_in(ids))
    if gone:
        await Subscription.delete().where(Subscription.id.is_in(gone))
    links = await DriverLink.delete().where(DriverLink.driver == driver["id"]).returning(DriverLink.id)
    return {"subscriptions": len(gone), "deliveries": len(ids), "links": len(links)}
