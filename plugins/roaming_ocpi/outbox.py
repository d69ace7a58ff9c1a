"""The outbox: every push to a partner is a row of ``ocpi_outbox`` until the partner took it.

Delivery guarantees:

* **Retried until acknowledged.** A push the partner did not take for a reason that may pass
  (unreachable, timeout, HTTP 5xx, 408/429, OCPI 3xxx) is tried again with exponential backoff
  (``retry_delay`` doubling up to ``retry_max_delay``). Redirects are followed (307/308 keep the
  method and body) and the endpoint URL the partner advertised is used as given, trailing slash
  included. A refusal (HTTP 4xx, OCPI 2xxx) or an object that breaks the OCPI limits before it is
  sent (a string too long for its field, a missing field) is parked as ``failed`` with the
  reason; the operator resends it (REST ``POST /outbox/{id}/resend``, admin page) once it is fixed.
* **One queue per partner.** Each partner has its own delivery task and one request in flight at
  a time (its concurrency budget), so a partner that hangs until the timeout delays only its
  own pushes; a partner found unreachable is left alone until its next retry is due.
* **Ordering per object.** Pushes of one object (``object_key``: a Location with its EVSEs and
  connectors, a Session, a Tariff, a Token) go out in the order queued; a newer state of a
  Location, EVSE, connector, Tariff or Token replaces a queued older one that has not been sent
  yet (a PUT supersedes queued pushes of the object and its children, PATCHes merge; a push
  is taken for sending with the state it holds at that moment, and newer PATCHes queued while
  it is in flight fold into it when it fails and goes back to the queue), so the partner never
  gets an older state after a newer one, and a newer state is never lost behind an older one.
* **Idempotent.** PUT and PATCH carry the object's id. A CDR is created once per session and
  POSTed from its row, so a retry after a timeout sends the same CDR id again, never a new one;
  our eMSP side answers a repeated CDR as accepted.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta
from typing import Any

from piccolo.query.functions.aggregate import Count
from prometheus_client import Gauge

from csms.plugin_api import N_, Scope, TranslatedError, utcnow, wait_event
from plugins.roaming_ocpi import schema
from plugins.roaming_ocpi.client import PartnerError, call
from plugins.roaming_ocpi.config import ocpi_settings
from plugins.roaming_ocpi.parties import endpoint_url, partner_row, registered_partners, routable
from plugins.roaming_ocpi.tables import Cdr, Outbox
from plugins.roaming_ocpi.tenancy import Audience, partner_scope

log = logging.getLogger("csms.ocpi.outbox")

FAILED = ("failed", "rejected")  # ``rejected``: the name older versions gave ``failed``
COALESCED_MODULES = ("locations", "tariffs", "tokens")  # objects whose newest state is all that counts


class ResendRefused(TranslatedError):
    """A failed push cannot be queued again (unknown, not failed, or superseded); the reason is
    worded when read, in the reader's language (see ``TranslatedError``)."""


# -- waking the worker -------------------------------------------------------------------------------

_wakeup: asyncio.Event | None = None
_locks: dict[int, asyncio.Lock] = {}
_down_until: dict[int, datetime] = {}  # partners found unreachable: left alone until then


def reset() -> None:
    """Bind the worker's state to the running loop (called when the server starts)."""
    global _wakeup
    _wakeup = asyncio.Event()
    _locks.clear()
    _down_until.clear()


def kick() -> None:
    if _wakeup is not None:
        _wakeup.set()


def _lock(partner_id: int) -> asyncio.Lock:
    lock = _locks.get(partner_id)
    if lock is None:
        lock = _locks[partner_id] = asyncio.Lock()
    return lock


# -- queueing -----------------------------------------------------------------------------------------


async def enqueue(partner_id: int, method: str, key: str, *, module: str = "", role: str = "RECEIVER",
                  path: str = "", url: str = "", body: Any = None, to: tuple[str, str] | None = None) -> None:
    """Queue a push; a newer state of a Location/Tariff/Token replaces a queued older one. ``to``
    names the party it is for (``OCPI-to-*``) when that is not the partner itself: a party
    behind a hub."""
    key = key[:100]
    if module in COALESCED_MODULES and await _coalesce(partner_id, key, method, path, body):
        kick()
        return
    to_cc, to_pid = ((to[0] or "").upper()[:2], (to[1] or "").upper()[:3]) if to else ("", "")
    await Outbox(partner=partner_id, method=method, module=module, interface_role=role, path=path, url=url,
                 body=body, object_key=key, to_country_code=to_cc, to_party_id=to_pid).save()
    kick()


async def _coalesce(partner_id: int, key: str, method: str, path: str, body: Any) -> bool:
    """Fold the push into the queued (not yet sent) ones of the object; True when it was merged."""
    queued = await Outbox.select().where(
        (Outbox.partner == partner_id) & (Outbox.object_key == key) & (Outbox.status == "pending")).order_by(
        Outbox.id).output(load_json=True)
    if not queued:
        return False
    if method in ("PUT", "DELETE"):  # the whole object: older queued pushes of it and its children go
        stale = [r["id"] for r in queued if r["path"] == path or r["path"].startswith(path.split("?")[0] + "/")]
        if stale:
            await Outbox.delete().where(Outbox.id.is_in(stale))
        return False
    last = queued[-1]
    if method == "PATCH" and last["path"] == path and last["method"] in ("PUT", "PATCH") and \
            isinstance(last["body"], dict) and isinstance(body, dict):
        # merged only while it is still queued: taken for sending (or folded) meanwhile, the
        # push gets a row of its own, or its state would be lost
        merged = await Outbox.update({Outbox.body: {**last["body"], **body}}).where(
            (Outbox.id == last["id"]) & (Outbox.status == "pending")).returning(Outbox.id)
        return bool(merged)
    return False


def _loaded(value: Any) -> Any:
    """A JSON column as read back by ``returning`` (text on some drivers)."""
    return json.loads(value) if isinstance(value, (str, bytes)) else value


async def _fold_newer(row: dict[str, Any]) -> Any:
    """The body of ``row`` (a push that was in flight and goes back to the queue) with the PATCHes
    of the same path queued right after it while it was in flight folded in (and their rows
    taken out), so one queued push holds the newest state, as if they had been merged into it.
    Only the pushes next in the object's queue are folded, so nothing else of the object passes
    them. Called while ``row`` is still ``sending``: no push merges into it meanwhile."""
    body = row["body"]
    if row["module"] not in COALESCED_MODULES or row["method"] not in ("PUT", "PATCH") or not isinstance(body, dict):
        return body
    later = await Outbox.select(Outbox.id, Outbox.method, Outbox.path).where(
        (Outbox.partner == row["partner"]) & (Outbox.object_key == row["object_key"]) & (Outbox.id > row["id"])
        & (Outbox.status == "pending")).order_by(Outbox.id)
    for newer in later:
        if newer["method"] != "PATCH" or newer["path"] != row["path"]:
            break
        # taken out with the body it has now: a merge into it lands before, or finds it gone
        taken = await Outbox.delete().where((Outbox.id == newer["id"]) & (Outbox.status == "pending")).returning(
            Outbox.body)
        if not taken:
            break
        patch = _loaded(taken[0]["body"])
        if not isinstance(patch, dict):
            break
        body = {**body, **patch}
    return body


async def enqueue_all(role: str, module: str, method: str, key: str, path: str, body: Any,
                      audience: Audience | None = None) -> None:
    """Queue a push for every registered partner in ``role`` (EMSP, CPO), or a hub (a Broadcast
    Push: addressed to the hub, which passes it on), that has the module's Receiver and is in
    the ``audience`` (the partners of the object's organization; None: every partner)."""
    scopes: dict[int | None, Scope] = {}
    for partner in await registered_partners(role, hubs=True):
        if not endpoint_url(partner, module, "RECEIVER"):
            continue
        if audience is not None:
            organization = partner["organization"]
            if organization not in scopes:
                scopes[organization] = await partner_scope(partner)
            if not audience.reaches(scopes[organization]):
                continue
        await enqueue(partner["id"], method, key, module=module, path=path, body=body)


async def resend(outbox_id: int) -> dict[str, Any]:
    """Queue a failed push again (due now); refused when a newer push of the object exists."""
    row = await Outbox.select().where(Outbox.id == outbox_id).output(load_json=True).first()
    if row is None:
        raise ResendRefused(N_("no push %(push)s"), push=outbox_id)
    if row["status"] not in FAILED:
        raise ResendRefused(N_("push %(push)s is %(state)s, not failed"), push=outbox_id, state=row["status"])
    if row["module"] in COALESCED_MODULES and await Outbox.exists().where(
            (Outbox.partner == row["partner"]) & (Outbox.object_key == row["object_key"]) & (Outbox.id > outbox_id)
            & Outbox.status.is_in(["pending", "sending", "done"])):
        raise ResendRefused(N_("push %(push)s is superseded by a newer push of %(object)s; sending it would "
                               "replace the newer state"), push=outbox_id, object=row["object_key"])
    await Outbox.update({Outbox.status: "pending", Outbox.next_attempt_at: utcnow(), Outbox.done_at: None}).where(
        Outbox.id == outbox_id)
    _down_until.pop(row["partner"], None)
    kick()
    return {**row, "status": "pending"}


# -- delivering ------------------------------------------------------------------------------------------


# served at /metrics with the core's series (prometheus-client's default registry), by the node
# that delivers (the leader of ``ocpi-outbox``); refreshed every few seconds from the table
DEPTH = Gauge("csms_ocpi_outbox", "Pushes to roaming partners not delivered yet, by partner and status "
              "(pending: waiting or being retried; failed: parked until resent).", ["partner", "status"])
DEPTH_EVERY = 5.0  # seconds between refreshes of DEPTH


async def refresh_depth() -> None:
    """Count the outbox per partner and status into :data:`DEPTH` (a partner with nothing left reads 0)."""
    rows = await Outbox.select(Outbox.partner, Outbox.status, Count(Outbox.id, alias="n")).where(
        Outbox.status.is_in(["pending", "sending", "failed"])).group_by(Outbox.partner, Outbox.status)
    counts: dict[tuple[str, str], float] = {}
    for r in rows:
        key = (str(r["partner"]), "failed" if r["status"] == "failed" else "pending")
        counts[key] = counts.get(key, 0) + r["n"]
    partners = {partner for partner, _ in counts} | {
        sample.labels["partner"] for metric in DEPTH.collect() for sample in metric.samples}
    for partner in partners:  # both series of every partner counted before: an emptied one reads 0
        for status in ("pending", "failed"):
            counts.setdefault((partner, status), 0)
    for (partner, status), n in counts.items():
        DEPTH.labels(partner, status).set(n)


async def due_partners() -> list[int]:
    rows = await Outbox.select(Outbox.partner).where(
        (Outbox.status == "pending") & (Outbox.next_attempt_at <= utcnow())).distinct()
    return sorted({r["partner"] for r in rows})


async def deliver_due() -> int:
    """One pass for every partner with pushes due, partners side by side; a partner whose pass is
    already running (possibly waiting on a slow answer) is not waited for. Returns how many
    pushes were delivered."""
    results = await asyncio.gather(*(deliver_partner(p) for p in await due_partners()))
    return sum(results)


async def deliver_partner(partner_id: int) -> int:
    """Deliver what is due for one partner, oldest first, one request at a time."""
    lock = _lock(partner_id)
    if lock.locked():
        return 0
    async with lock:
        return await _partner_pass(partner_id)


async def _partner_pass(partner_id: int) -> int:
    now = utcnow()
    if _down_until.get(partner_id, now) > now:
        return 0
    rows = await Outbox.select().where((Outbox.partner == partner_id) & (Outbox.status == "pending")).order_by(
        Outbox.id).limit(500).output(load_json=True)
    blocked: set[str] = set()
    delivered = 0
    for row in rows:
        if row["object_key"] in blocked:
            continue
        blocked.add(row["object_key"])  # later pushes of the object wait for this one
        if row["next_attempt_at"] > now:
            continue
        fresh = await Outbox.select(Outbox.status, Outbox.body).where(Outbox.id == row["id"]).output(
            load_json=True).first()
        if fresh is None or fresh["status"] != "pending":  # superseded meanwhile
            continue
        row["body"] = fresh["body"]
        held = await _held(row)
        if held:  # the hub says the party cannot be reached: wait until it is CONNECTED again
            await Outbox.update({Outbox.last_error: held, Outbox.next_attempt_at: utcnow() + timedelta(
                seconds=ocpi_settings().retry_max_delay)}).where(Outbox.id == row["id"])
            continue
        outcome = await _deliver(row)
        if outcome == "done":
            delivered += 1
        elif outcome == "retry":  # the partner is unreachable or failing: leave it until the retry is due
            _down_until[partner_id] = utcnow() + timedelta(seconds=ocpi_settings().backoff(row["attempts"] + 1))
            break
    return delivered


async def _held(row: dict[str, Any]) -> str:
    """Why a push for a party behind a hub waits (the party is not CONNECTED), else ""."""
    if not row.get("to_country_code"):
        return ""
    partner = await partner_row(row["partner"])
    if partner is None:
        return ""
    return await routable(partner, row["to_country_code"], row["to_party_id"]) or ""


async def release(partner_id: int, country_code: str, party_id: str) -> None:
    """A party behind hub ``partner_id`` is CONNECTED (again): its held pushes are due now."""
    await Outbox.update({Outbox.next_attempt_at: utcnow(), Outbox.last_error: ""}).where(
        (Outbox.partner == partner_id) & (Outbox.status == "pending")
        & (Outbox.to_country_code == country_code.upper()) & (Outbox.to_party_id == party_id.upper()))
    _down_until.pop(partner_id, None)
    kick()


def push_url(partner: dict[str, Any], row: dict[str, Any]) -> str:
    """Where a push goes: the partner's endpoint URL as advertised (a trailing slash kept) plus
    the object's path, or the absolute URL of a command result."""
    if not row["module"]:
        return row["url"]
    base = endpoint_url(partner, row["module"], row["interface_role"]) or ""
    if not base or not row["path"]:
        return base
    return base.rstrip("/") + row["path"]


def outgoing_problems(row: dict[str, Any]) -> list[str]:
    """What breaks the OCPI 2.2.1 limits in a push's body (string lengths, enums, required fields)."""
    body, module, method = row["body"], row["module"], row["method"]
    if body is None or method == "DELETE":
        return []
    partial = method == "PATCH"
    if module == "locations":
        depth = len(row["path"].split("?")[0].strip("/").split("/"))
        spec, what = {3: (schema.LOCATION, "Location"), 4: (schema.EVSE, "EVSE")}.get(
            depth, (schema.CONNECTOR, "Connector"))
    else:
        spec, what = {"sessions": (schema.SESSION, "Session"), "cdrs": (schema.CDR, "CDR"),
                      "tariffs": (schema.TARIFF, "Tariff"), "tokens": (schema.TOKEN, "Token")}.get(module, (None, ""))
    if spec is None:
        return []
    return [f"{what}.{p}" for p in schema.problems(body, spec, partial=partial)]


async def _breaks_limits(row: dict[str, Any]) -> bool:
    """Park a push whose body breaks the OCPI limits (True), with the reason."""
    found = outgoing_problems(row)
    if not found:
        return False
    more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
    message = "not sent, the object breaks the OCPI limits: " + "; ".join(found[:3]) + more
    log.warning("push %s to partner %s: %s", row["id"], row["partner"], message)
    await _finish(row, "failed", message)
    return True


async def _deliver(row: dict[str, Any]) -> str:
    """Send one push: ``done``, ``failed`` (parked), ``retry`` or ``skipped`` (superseded meanwhile)."""
    partner = await partner_row(row["partner"])
    if partner is None or partner["status"] == "unregistered":
        await _finish(row, "failed", "the partner is not registered any more")
        return "failed"
    if await _breaks_limits(row):
        return "failed"
    url = push_url(partner, row)
    if partner["status"] != "registered" or not url:
        error = "the partner is not registered" if partner["status"] != "registered" else \
            f"the partner has no {row['module']} {row['interface_role'].lower()} endpoint"
        await _retry(row, error)
        return "retry"
    # taken for sending with the body it holds now: a newer state merged into the row since it
    # was read goes out with it (once ``sending``, newer states queue behind it instead)
    taken = await Outbox.update({Outbox.status: "sending"}).where(
        (Outbox.id == row["id"]) & (Outbox.status == "pending")).returning(Outbox.body)
    if not taken:  # superseded meanwhile
        return "skipped"
    body = _loaded(taken[0]["body"])
    if body != row["body"]:
        row["body"] = body
        if await _breaks_limits(row):
            return "failed"
    try:
        to = (row["to_country_code"], row["to_party_id"]) if row.get("to_country_code") else None
        answer = await call(partner, row["method"], url, body=row["body"], to=to)
    except PartnerError as exc:
        if not exc.retryable:
            log.warning("partner %s refused %s %s: %s", row["partner"], row["method"], url, exc.message)
            await _finish(row, "failed", exc.message)
            return "failed"
        await _retry(row, exc.message, fold=True)
        return "retry"
    except BaseException:
        await Outbox.update({Outbox.status: "pending"}).where(Outbox.id == row["id"])
        raise
    await _finish(row, "done", "")
    if row["module"] == "cdrs" and row["method"] == "POST":
        await Cdr.update({Cdr.location_url: (answer.headers.get("location") or "")[:255]}).where(
            Cdr.cdr_id == row["object_key"].removeprefix("cdr:"))
    return "done"


async def _retry(row: dict[str, Any], error: str, *, fold: bool = False) -> None:
    """Back to the queue, due after the backoff; ``fold``: the push was in flight (``sending``),
    newer PATCHes of it queued meanwhile are folded into it (:func:`_fold_newer`)."""
    attempts = row["attempts"] + 1
    delay = ocpi_settings().backoff(attempts)
    values: dict[Any, Any] = {Outbox.status: "pending", Outbox.attempts: attempts, Outbox.last_error: error[:2000],
                              Outbox.next_attempt_at: utcnow() + timedelta(seconds=delay)}
    if fold:
        body = await _fold_newer(row)
        if body is not row["body"]:
            values[Outbox.body] = body
    await Outbox.update(values).where(Outbox.id == row["id"])


async def _finish(row: dict[str, Any], status: str, error: str) -> None:
    await Outbox.update({Outbox.status: status, Outbox.attempts: row["attempts"] + 1, Outbox.last_error: error[:2000],
                         Outbox.done_at: utcnow()}).where(Outbox.id == row["id"])


# -- the delivery loop -------------------------------------------------------------------------------------


class Dispatcher:
    """Starts one delivery task per partner with pushes due; never waits for a partner's answer."""

    def __init__(self) -> None:
        self._running: dict[int, asyncio.Task[Any]] = {}

    async def run(self) -> None:
        assert _wakeup is not None
        await Outbox.update({Outbox.status: "pending"}).where(Outbox.status == "sending")  # after a crash
        counted_at = 0.0
        while True:
            _wakeup.clear()
            if asyncio.get_running_loop().time() - counted_at >= DEPTH_EVERY:
                counted_at = asyncio.get_running_loop().time()
                try:
                    await refresh_depth()
                except Exception:
                    log.exception("counting the OCPI outbox failed")
            try:
                for partner_id in await due_partners():
                    task = self._running.get(partner_id)
                    if task is None or task.done():
                        self._running[partner_id] = asyncio.create_task(self._partner(partner_id),
                                                                        name=f"ocpi-outbox-{partner_id}")
            except Exception:
                log.exception("OCPI outbox pass failed")
            await wait_event(_wakeup, 0.5)

    async def _partner(self, partner_id: int) -> None:
        try:
            await deliver_partner(partner_id)
        except Exception:
            log.exception("OCPI delivery to partner %s failed", partner_id)

    async def stop(self) -> None:
        tasks = [t for t in self._running.values() if not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._running.clear()
