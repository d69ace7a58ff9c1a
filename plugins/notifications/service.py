"""The notifier: domain events in, deliveries out.

The ``event_batch`` hook hands events to a queue (never blocking the core's dispatcher). A worker
builds each notification, shows it in the admin (browser hub) and writes one delivery per
matching subscription; a sender sends the deliveries that are due (webhooks, e-mail, Web Push to drivers' browsers), claiming each one first
(so that several nodes never send one twice) and retrying failures after the configured
delays until it gives up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader

from csms.plugin_api import (
    Scope, Station, events as ev, gettext, in_language, ngettext, recipient_language, scope_for, utcnow,
    wait_event,
)
from plugins.notifications.browser import BrowserHub
from plugins.notifications.channels import DeliveryFailed, SubscriptionGone, post_webhook, send_email
from plugins.notifications.config import notification_settings
from plugins.notifications.messages import DRIVER_EVENTS, Notification, NotificationBuilder, title_of
from plugins.notifications.tables import Delivery, Subscription
from plugins.notifications.webpush import send_push
from plugins.notifications.webpush import close as close_push, forget_keys

log = logging.getLogger("csms.notifications")

_EMAIL_TEMPLATES = Environment(loader=FileSystemLoader(str(Path(__file__).parent / "templates" / "notifications" /
                                                           "email")), autoescape=False, keep_trailing_newline=True,
                               extensions=["jinja2.ext.i18n"])
# the e-mails' texts in the current language (the recipient's, see Notifier._deliver)
_EMAIL_TEMPLATES.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
_IGNORED = (ev.MeterValuesReceived, ev.CommandAnswered)
STALE_CLAIM = timedelta(minutes=5)  # a delivery claimed longer ago than this was claimed by a node that stopped


def new_secret() -> str:
    return secrets.token_hex(32)


@dataclass
class StationFacts:
    """What subscriptions filter a notification's station by (None: no such station)."""

    site: int | None = None
    organization: int | None = None
    known: bool = False


def matches(sub: dict[str, Any], n: Notification, station: StationFacts, scope: Scope | None = None) -> bool:
    """Whether ``sub`` hears of ``n``; ``scope`` is what the subscription's organization sees
    (None: an installation-wide subscription)."""
    if not sub["enabled"]:
        return False
    patterns = sub["events"] if isinstance(sub["events"], list) else json.loads(sub["events"] or "[]")
    if not any(fnmatchcase(n.event, p) for p in patterns):
        return False
    if sub["driver"] is not None:  # a driver hears about their own sessions only
        return n.event in DRIVER_EVENTS and n.driver_id == sub["driver"]
    if scope is not None and not (station.known and scope.sees(station.organization)):
        return False  # an organization's subscription hears of its own stations only
    if sub["station_id"] and sub["station_id"] != n.station_id:
        return False
    return sub["site"] is None or station.site == sub["site"]


def email_subject(delivery: dict[str, Any]) -> str:
    """The e-mail's subject in the current language (the logged ``subject`` is English)."""
    payload = json.loads(delivery["payload"])
    return title_of(payload["event"], payload.get("station_id") or "", payload.get("data") or {})


def email_text(delivery: dict[str, Any]) -> str:
    """The e-mail's text in the current language."""
    payload = json.loads(delivery["payload"])
    try:
        template = _EMAIL_TEMPLATES.get_template(f"{payload['event']}.txt")
    except Exception:
        template = _EMAIL_TEMPLATES.get_template("default.txt")
    return template.render(**payload, title=email_subject(delivery), admin_url=notification_settings().admin_url)


async def enqueue(n: Notification, subscription: dict[str, Any], *, replay_of: int | None = None) -> int:
    with in_language("en"):  # the delivery log is one record for everybody (an e-mail is worded when sent)
        subject = n.title
    row = Delivery(subscription=subscription["id"], channel=subscription["channel"], target=subscription["target"],
                   event=n.event, notification_id=n.id, station_id=n.station_id, subject=subject, payload=n.body(),
                   replay_of=replay_of, next_attempt_at=utcnow())
    await row.save()
    return row.id


class Notifier:
    def __init__(self) -> None:
        self.settings = notification_settings()
        self.builder = NotificationBuilder()
        # the charging state of the last SessionUpdated queued per session (see on_event)
        self._queued_state: dict[int, str] = {}
        self.browser = BrowserHub(self.settings.browser_events)
        self.queue: asyncio.Queue[ev.Event] = asyncio.Queue(maxsize=100_000)
        self.wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._limit = asyncio.Semaphore(10)

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(), name="notifications-events"),
                       asyncio.create_task(self._send_loop(), name="notifications-sender")]

    async def stop(self) -> None:
        # sends under way are cancelled too (a hung receiver must not hold up a shutdown); their
        # deliveries stay claimed and are due again after STALE_CLAIM, on whichever node runs then
        for task in [*self._tasks, *self._sending]:
            task.cancel()
        for task in [*self._tasks, *self._sending]:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self.browser.close()
        close_push()

    def on_event(self, event: ev.Event) -> None:
        if isinstance(event, _IGNORED):
            return
        if isinstance(event, ev.SessionUpdated):
            # One comes with every MeterValues; only a change of the charging state can make a
            # notification (NotificationBuilder._completion), so one that repeats the state queued
            # last for its session (or has none) is not queued: the builder would do nothing with it.
            if not event.charging_state or self._queued_state.get(event.session_id) == event.charging_state:
                return
            self._queued_state[event.session_id] = event.charging_state
        elif isinstance(event, ev.SessionStopped):
            self._queued_state.pop(event.session_id, None)
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("notification queue full; dropping %s", event.name)

    async def _work(self) -> None:
        while True:
            event = await self.queue.get()
            try:
                for n in await self.builder.build(event):
                    await self.publish(n)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notification of %s failed", event.name)

    async def publish(self, n: Notification) -> int:
        """Show ``n`` in the admin and queue a delivery for every matching subscription."""
        self.browser.publish(n)
        subs = await Subscription.select().where(Subscription.enabled == True).output(load_json=True)  # noqa: E712
        if not subs:
            return 0
        station = StationFacts()
        if n.station_id:
            row = await Station.select(Station.site, Station.organization).where(
                Station.station_id == n.station_id).first()
            if row is not None:
                station = StationFacts(row["site"], row["organization"], True)
        scopes: dict[int, Scope] = {}
        for org in {s["organization"] for s in subs if s["organization"] is not None}:
            scopes[org] = await scope_for(org)
        count = 0
        for sub in subs:
            if not matches(sub, n, station, scopes.get(sub["organization"])):
                continue
            try:
                await enqueue(n, sub)
            except Exception:
                # one subscription's delivery failing must not cost the others theirs; the usual
                # cause: the subscription was removed since it was read (a push service's 410)
                if await Subscription.exists().where(Subscription.id == sub["id"]):
                    log.exception("queueing %s for subscription %s failed", n.event, sub["id"])
                continue
            count += 1
        if count:
            self.wake.set()
        return count

    # -- sending ----------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        while True:
            try:
                await self.send_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sending notifications failed")
            await wait_event(self.wake, self._next_wait())
            self.wake.clear()

    def _next_wait(self) -> float:
        delays = self.settings.delays()
        return max(0.05, min([self.settings.send_interval, *delays]))

    async def send_due(self) -> int:
        """Claim and send the deliveries that are due, one at a time per subscription: a
        subscription's next delivery waits until the one being sent is answered (a phone shows
        a session's notifications in order, one replacing the other; after a push service's
        410 nothing more goes to it). A claim older than :data:`STALE_CLAIM` (its node died
        mid-send) holds nothing up and is due again."""
        now = utcnow()
        stale = now - STALE_CLAIM
        await Delivery.update({Delivery.status: "pending"}).where(
            (Delivery.status == "sending") & (Delivery.last_attempt_at < stale))
        due = await Delivery.select(Delivery.id, Delivery.subscription).where(
            (Delivery.status == "pending") & (Delivery.next_attempt_at <= now)
        ).order_by(Delivery.next_attempt_at).order_by(Delivery.id).limit(100)
        busy = {r["subscription"] for r in await Delivery.select(Delivery.subscription).where(
            (Delivery.status == "sending") & Delivery.subscription.is_not_null())}
        claimed = 0
        for d in due:
            sub = d["subscription"]
            if sub is not None and sub in busy:
                continue  # its subscription's previous delivery is still on its way
            free = (Delivery.id == d["id"]) & (Delivery.status == "pending")
            if sub is not None:  # no other node is sending to this subscription either
                free &= Delivery.subscription.not_in(Delivery.select(Delivery.subscription).where(
                    (Delivery.subscription == sub) & (Delivery.status == "sending")))
            got = await Delivery.update({Delivery.status: "sending", Delivery.last_attempt_at: now}).where(
                free).returning(Delivery.id)
            if sub is not None:
                busy.add(sub)
            if not got:
                continue  # another node took it
            claimed += 1
            task = asyncio.create_task(self._send_one(d["id"], now))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        return claimed

    async def _send_one(self, delivery_id: int, claimed_at: datetime) -> None:
        try:
            await self._send_claimed(delivery_id, claimed_at)
        finally:
            self.wake.set()  # the subscription's next delivery may go now

    async def _send_claimed(self, delivery_id: int, claimed_at: datetime) -> None:
        async with self._limit:
            # Still this claim? One that waited for a free slot longer than STALE_CLAIM was taken
            # for a dead node's and claimed again (by a pass here or on another node): that one
            # sends it. Else the claim is renewed: it counts from the start of the send.
            if not await Delivery.update({Delivery.last_attempt_at: utcnow()}).where(
                    (Delivery.id == delivery_id) & (Delivery.status == "sending")
                    & (Delivery.last_attempt_at == claimed_at)).returning(Delivery.id):
                return
            row = await Delivery.select().where(Delivery.id == delivery_id).first()
            if row is None:
                return
            attempts = row["attempts"] + 1
            try:
                status, body = await self._deliver(row)
            except SubscriptionGone as exc:  # the subscription ended: delete it, no retry, nothing more to it
                if exc.status is None:  # deleted before this try (by another worker's 410): nothing was sent
                    attempts = row["attempts"]
                await Delivery.update({Delivery.status: "failed", Delivery.attempts: attempts,
                                       Delivery.last_error: str(exc)[:500], Delivery.response_status: exc.status,
                                       Delivery.response_body: exc.body}).where(Delivery.id == delivery_id)
                if row["subscription"] is not None:
                    await Delivery.update({Delivery.status: "failed", Delivery.last_error: str(exc)[:500]}).where(
                        (Delivery.subscription == row["subscription"]) & (Delivery.status == "pending"))
                    await Subscription.delete().where(Subscription.id == row["subscription"])
                    log.info("push subscription %s removed: %s", row["subscription"], exc)
                return
            except DeliveryFailed as exc:
                delays = self.settings.delays()
                values: dict[Any, Any] = {Delivery.attempts: attempts, Delivery.last_error: str(exc)[:500],
                                          Delivery.response_status: exc.status, Delivery.response_body: exc.body}
                if attempts <= len(delays):
                    values[Delivery.status] = "pending"
                    values[Delivery.next_attempt_at] = utcnow() + timedelta(seconds=delays[attempts - 1])
                else:
                    values[Delivery.status] = "failed"
                await Delivery.update(values).where(Delivery.id == delivery_id)
                return
            except Exception as exc:  # a bug must not leave the delivery claimed for ever
                log.exception("delivery %s failed unexpectedly", delivery_id)
                await Delivery.update({Delivery.status: "failed", Delivery.attempts: attempts,
                                       Delivery.last_error: repr(exc)[:500]}).where(Delivery.id == delivery_id)
                return
            await Delivery.update({Delivery.status: "delivered", Delivery.attempts: attempts,
                                   Delivery.delivered_at: utcnow(), Delivery.response_status: status,
                                   Delivery.response_body: body, Delivery.last_error: ""}).where(
                Delivery.id == delivery_id)

    async def _deliver(self, row: dict[str, Any]) -> tuple[int | None, str]:
        if row["channel"] == "webhook":
            sub = None
            if row["subscription"] is not None:
                sub = await Subscription.select(Subscription.secret).where(
                    Subscription.id == row["subscription"]).first()
            if sub is None:
                raise SubscriptionGone("the subscription is gone: it was deleted (its secret with it)")
            return await post_webhook(row, sub["secret"])
        if row["channel"] == "email":  # in its recipient's language (an admin user's choice, else the installation's)
            with in_language(await recipient_language(row["target"])):
                await send_email({**row, "subject": email_subject(row)}, email_text(row))
            return None, ""
        if row["channel"] == "webpush":
            push = None
            if row["subscription"] is not None:
                push = await Subscription.select(Subscription.p256dh, Subscription.secret, Subscription.language).where(
                    Subscription.id == row["subscription"]).first()
            if push is None:
                raise SubscriptionGone("the push subscription is gone: it was deleted (its keys with it)")
            return await send_push(row, push)
        raise DeliveryFailed(f"unknown channel {row['channel']!r}")


async def replay(delivery_id: int) -> int:
    """Send a logged notification again, as a new delivery (same notification id and body)."""
    row = await Delivery.select().where(Delivery.id == delivery_id).first()
    if row is None:
        raise LookupError(f"no delivery {delivery_id}")
    copy = Delivery(subscription=row["subscription"], channel=row["channel"], target=row["target"],
                    event=row["event"], notification_id=row["notification_id"], station_id=row["station_id"],
                    subject=row["subject"], payload=row["payload"], replay_of=delivery_id, next_attempt_at=utcnow())
    await copy.save()
    wake()
    return copy.id


async def send_test(subscription_id: int) -> int:
    sub = await Subscription.select().where(Subscription.id == subscription_id).first()
    if sub is None:
        raise LookupError(f"no subscription {subscription_id}")
    n = Notification("notification.test", sub["station_id"], {"subscription_id": subscription_id,
                                                              "message": "This is a test."}, utcnow())
    delivery_id = await enqueue(n, sub)
    wake()
    return delivery_id


_notifier: Notifier | None = None


def notifier() -> Notifier | None:
    return _notifier


def wake() -> None:
    if _notifier is not None:
        _notifier.wake.set()


async def start() -> None:
    global _notifier
    forget_keys()  # this database's VAPID pair (or the configured one), read when first needed
    _notifier = Notifier()
    await _notifier.start()


async def stop() -> None:
    global _notifier
    if _notifier is not None:
        await _notifier.stop()
        _notifier = None

