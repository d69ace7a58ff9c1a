"""What we publish and how it reaches partners.

*Snapshots* keep the last published form of each of our Locations, EVSEs, connectors, Tariffs and
Tokens with the moment it last changed (their ``last_updated``). A refresh compares the live data
with them and queues the pushes the change calls for: a new or changed Location is PUT, an EVSE
whose status changed is PATCHed, a vanished EVSE PATCHed as ``REMOVED``, a changed Tariff PUT and
a withdrawn one DELETEd, a changed Token PUT (a deleted card as ``valid: false``).

Pushes go through the outbox (:mod:`plugins.roaming_ocpi.outbox`: retries, one queue per
partner, ordering per object). The pushes of a Location's EVSEs share the Location's object key,
so an EVSE PATCH never overtakes (or is overtaken by) a queued PUT of its Location.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from piccolo.engine.postgres import PostgresEngine

from csms.plugin_api import GLOBAL, LeaderJob, Scope, run_as_leader, utcnow
from plugins.roaming_ocpi import client, objects, outbox
from plugins.roaming_ocpi.config import ocpi_settings
from plugins.roaming_ocpi.outbox import deliver_due, enqueue, enqueue_all  # noqa: F401 (callers use sync.*)
from plugins.roaming_ocpi.parties import endpoint_url, partner_roles, partner_row, users_of
from plugins.roaming_ocpi.tables import RequestLog, Snapshot
from plugins.roaming_ocpi.tenancy import Audience, partner_scope, shown
from plugins.roaming_ocpi.transport import ocpi_ts

log = logging.getLogger("csms.ocpi.sync")


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


# -- snapshots --------------------------------------------------------------------------------------------

_lock = asyncio.Lock()
# the PostgreSQL advisory lock that makes refreshes take turns across nodes (any fixed number)
_ADVISORY_KEY = 0x0C91_5E4C


@asynccontextmanager
async def _publishing() -> AsyncIterator[None]:
    """One refresh at a time, from reading the live data to queueing its pushes. A refresh that
    starts while another runs reads data at least as new and queues after it, so a partner never
    gets an older state last (a status event's refresh and a partner's pull overlapping, or two
    nodes' refreshes). In this process an asyncio lock; on PostgreSQL, where nodes share the
    database, also a transaction holding an advisory lock, the snapshots and the queued pushes
    committed together. SQLite serves one node: the asyncio lock suffices, and a long write
    transaction there would hold up the station traffic's commits."""
    async with _lock:
        db = Snapshot._meta.db
        if not isinstance(db, PostgresEngine):
            yield
            return
        async with db.transaction():
            await Snapshot.raw("SELECT pg_advisory_xact_lock({})", _ADVISORY_KEY)
            yield
        outbox.kick()  # the pushes are committed now: a delivery pass woken before saw none of them


async def _snapshots(kinds: tuple[str, ...]) -> dict[tuple[str, str], dict[str, Any]]:
    rows = await Snapshot.select().where(Snapshot.kind.is_in(list(kinds))).output(load_json=True)
    return {(r["kind"], r["key"]): r for r in rows}


async def _save(old: dict[str, Any] | None, kind: str, key: str, dig: str, payload: Any, last_updated: Any, *,
                parent: str = "", removed: bool = False, organization: int | None = None) -> None:
    if old is None:
        await Snapshot(kind=kind, key=key, parent=parent, digest=dig, payload=payload, removed=removed,
                       last_updated=last_updated, organization=organization).save()
    elif old["digest"] != dig or old["payload"] != payload or old["removed"] != removed or \
            old["organization"] != organization:
        await Snapshot.update({Snapshot.digest: dig, Snapshot.payload: payload, Snapshot.removed: removed,
                               Snapshot.last_updated: last_updated, Snapshot.parent: parent,
                               Snapshot.organization: organization}).where(Snapshot.id == old["id"])


def _moved(old: dict[str, Any] | None, organization: int | None) -> bool:
    """Whether a published object now belongs to another organization than when last published."""
    return old is not None and not old["removed"] and old["organization"] != organization


def _stamp(old: dict[str, Any] | None, dig: str, now: Any) -> Any:
    """``last_updated``: unchanged while the digest is, now when it changed (or is new/was removed)."""
    return old["last_updated"] if old is not None and old["digest"] == dig and not old["removed"] else now


async def refresh_locations(site_ids: list[int] | None = None,
                            overrides: dict[tuple[str, int, int], str] | None = None) -> None:
    """Compare our Locations with their snapshots; store the changes and queue their pushes."""
    if "CPO" not in ocpi_settings().role_set:
        return
    async with _publishing():
        pushes = await _refresh_locations(site_ids, overrides)
        for method, key, path, body, audience in pushes:
            await enqueue_all("EMSP", "locations", method, key, path, body, audience)


Push = tuple[str, str, str, Any, Audience]  # method, object key, path, body, who gets it


async def _refresh_locations(site_ids: list[int] | None,
                             overrides: dict[tuple[str, int, int], str] | None) -> list[Push]:
    s = ocpi_settings()
    current = await objects.current_locations(site_ids, overrides)
    snaps = await _snapshots(("location", "evse", "connector"))
    now = utcnow()
    scope = set(current) | ({k for (kind, k) in snaps if kind == "location"} if site_ids is None
                            else {str(i) for i in site_ids})
    prefix = f"/{s.country_code}/{s.party_id}"
    owners = await objects.site_organizations([int(k) for k in scope if k.isdigit()])
    pushes: list[Push] = []
    for loc_id in sorted(scope, key=lambda k: (len(k), k)):
        loc = current.get(loc_id)
        old_loc = snaps.get(("location", loc_id))
        if loc is None and (old_loc is None or old_loc["removed"]):
            continue
        # whose the Location is now, and whose it was when last published (a site given to
        # another organization: its old organization's partners see its EVSEs REMOVED)
        organization = owners.get(loc_id, old_loc["organization"] if old_loc else None)
        before = old_loc["organization"] if old_loc is not None and not old_loc["removed"] else organization
        moved = loc is not None and _moved(old_loc, organization)
        owner = organization if loc is not None else before
        audience = Audience(owner)
        if moved:
            leaving = Audience(before, moved=True, moved_to=organization)
            for e in old_loc["payload"].get("evses", []):
                if e.get("status") != "REMOVED":
                    pushes.append(("PATCH", f"location:{loc_id}", f"{prefix}/{loc_id}/{e['uid']}",
                                   {"status": "REMOVED", "last_updated": ocpi_ts(now)}, leaving))
        evses_now = {e["uid"]: e for e in (loc or {}).get("evses", [])}
        evses_old = {k.split("/", 1)[1]: r for (kind, k), r in snaps.items() if kind == "evse" and r["parent"] == loc_id}
        published: list[dict[str, Any]] = []
        evse_pushes: list[Push] = []
        for uid in list(evses_now) + [u for u in evses_old if u not in evses_now]:
            old = evses_old.get(uid)
            key = f"{loc_id}/{uid}"
            evse = evses_now.get(uid)
            if evse is None:  # vanished: REMOVED (kept, so a pull shows it too)
                if old["removed"]:
                    published.append(old["payload"])
                    continue
                gone = {**old["payload"], "status": "REMOVED", "last_updated": ocpi_ts(now)}
                await _save(old, "evse", key, old["digest"], gone, now, parent=loc_id, removed=True,
                            organization=owner)
                published.append(gone)
                evse_pushes.append(("PATCH", f"location:{loc_id}", f"{prefix}/{loc_id}/{uid}",
                                    {"status": "REMOVED", "last_updated": ocpi_ts(now)}, audience))
                continue
            conn_changed = False
            latest = None
            for conn in evse["connectors"]:
                ckey = f"{key}/{conn['id']}"
                cold = snaps.get(("connector", ckey))
                cdig = digest(conn)
                stamp = _stamp(cold, cdig, now)
                conn_changed |= cold is None or cold["digest"] != cdig
                conn["last_updated"] = ocpi_ts(stamp)
                await _save(cold, "connector", ckey, cdig, {}, stamp, parent=key, organization=owner)
                latest = stamp if latest is None or stamp > latest else latest
            own = {k: v for k, v in evse.items() if k != "connectors"}
            dig = digest(own)
            stamp = _stamp(old, dig, now)
            if latest is not None and latest > stamp:
                stamp = latest
            evse["last_updated"] = ocpi_ts(stamp)
            changed_own = old is None or old["removed"] or old["digest"] != dig
            if changed_own or conn_changed:
                only_status = (old is not None and not old["removed"] and not conn_changed
                               and {k: v for k, v in old["payload"].items() if k not in ("status", "last_updated",
                                                                                        "connectors")}
                               == {k: v for k, v in own.items() if k != "status"})
                if only_status:
                    evse_pushes.append(("PATCH", f"location:{loc_id}", f"{prefix}/{loc_id}/{uid}",
                                        {"status": evse["status"], "last_updated": evse["last_updated"]}, audience))
                else:
                    evse_pushes.append(("PUT", f"location:{loc_id}", f"{prefix}/{loc_id}/{uid}", evse, audience))
            await _save(old, "evse", key, dig, evse, stamp, parent=loc_id, organization=owner)
            published.append(evse)
        if loc is None:  # the site is no longer published: every EVSE REMOVED
            body = {**old_loc["payload"], "evses": published, "last_updated": ocpi_ts(now)}
            await _save(old_loc, "location", loc_id, old_loc["digest"], body, now, removed=True,
                        organization=before)
            pushes.extend(evse_pushes)
            continue
        own = {k: v for k, v in loc.items() if k != "evses"}
        dig = digest(own)
        stamp = _stamp(old_loc, dig, now)
        for e in published:
            stamp = max(stamp, _parse(e["last_updated"]))
        body = {**loc, "evses": published, "last_updated": ocpi_ts(stamp)}
        if old_loc is None or old_loc["removed"] or old_loc["digest"] != dig or moved:
            pushes.append(("PUT", f"location:{loc_id}", f"{prefix}/{loc_id}", body, audience))
        else:
            pushes.extend(evse_pushes)
        await _save(old_loc, "location", loc_id, dig, body, stamp, organization=organization)
    return pushes


def _parse(value: str) -> Any:
    from plugins.roaming_ocpi.transport import parse_datetime

    return parse_datetime(value)


async def location_list(scope: Scope = GLOBAL) -> list[dict[str, Any]]:
    """Every Location we published (with EVSEs removed since) that ``scope`` sees, oldest id first."""
    await refresh_locations()
    rows = await Snapshot.select(Snapshot.key, Snapshot.payload, Snapshot.organization).where(
        Snapshot.kind == "location").output(load_json=True)
    return [r["payload"] for r in sorted(rows, key=lambda r: (len(r["key"]), r["key"]))
            if scope.sees(r["organization"])]


async def refresh_tariffs() -> None:
    if "CPO" not in ocpi_settings().role_set:
        return
    s = ocpi_settings()
    async with _publishing():
        current = await objects.current_tariffs()
        snaps = await _snapshots(("tariff",))
        now = utcnow()
        pushes = []
        pushes: list[Push] = []
        for key in sorted(set(current) | {k for (_, k) in snaps}):
            old = snaps.get(("tariff", key))
            tariff, organization = current.get(key, (None, None))
            path = f"/{s.country_code}/{s.party_id}/{key}"
            if tariff is None:
                if old is not None and not old["removed"]:
                    await _save(old, "tariff", key, old["digest"], old["payload"], now, removed=True,
                                organization=old["organization"])
                    pushes.append(("DELETE", f"tariff:{key}", path, None, Audience(old["organization"], shared=True)))
                continue
            moved = _moved(old, organization)
            if moved:  # withdrawn from the partners of its old organization only
                pushes.append(("DELETE", f"tariff:{key}", path, None, Audience(
                    old["organization"], shared=True, moved=True, moved_to=organization)))
            dig = digest(tariff)
            stamp = _stamp(old, dig, now)
            body = {**tariff, "last_updated": ocpi_ts(stamp)}
            if old is None or old["removed"] or old["digest"] != dig or moved:
                pushes.append(("PUT", f"tariff:{key}", path, body, Audience(organization, shared=True)))
            await _save(old, "tariff", key, dig, body, stamp, organization=organization)
        for method, key, path, body, audience in pushes:
            await enqueue_all("EMSP", "tariffs", method, key, path, body, audience)


async def tariff_list(scope: Scope = GLOBAL) -> list[dict[str, Any]]:
    """Our tariffs in force that a partner of ``scope`` gets (its tree's and the installation's)."""
    await refresh_tariffs()
    rows = await Snapshot.select().where((Snapshot.kind == "tariff") & (Snapshot.removed == False)).order_by(  # noqa: E712
        Snapshot.id).output(load_json=True)
    return [r["payload"] for r in rows if shown(scope, r["organization"], shared=True)]


async def refresh_tokens() -> None:
    if "EMSP" not in ocpi_settings().role_set:
        return
    s = ocpi_settings()
    async with _publishing():
        current = await objects.current_tokens()
        snaps = await _snapshots(("token",))
        now = utcnow()
        pushes: list[Push] = []
        for key in sorted(set(current) | {k for (_, k) in snaps}):
            old = snaps.get(("token", key))
            token, organization = current.get(key, (None, None))
            if token is None:
                if old is None or old["removed"]:
                    continue
                token = {k: v for k, v in old["payload"].items() if k != "last_updated"}
                token["valid"] = False
                organization = old["organization"]
            path = f"/{s.country_code}/{s.party_id}/{token['uid']}?type={token['type']}"
            moved = _moved(old, organization)
            if moved:  # the card is no longer for the partners of its old organization: invalid there
                pushes.append(("PUT", f"token:{key}", path, {**token, "valid": False, "last_updated": ocpi_ts(now)},
                               Audience(old["organization"], moved=True, moved_to=organization)))
            dig = digest(token)
            stamp = _stamp(old, dig, now) if not (old and old["removed"]) else old["last_updated"]
            body = {**token, "last_updated": ocpi_ts(stamp)}
            if old is None or old["digest"] != dig or moved:
                pushes.append(("PUT", f"token:{key}", path, body, Audience(organization)))
            await _save(old, "token", key, dig, body, stamp, removed=key not in current, organization=organization)
        for method, key, path, body, audience in pushes:
            await enqueue_all("CPO", "tokens", method, key, path, body, audience)


async def token_list(scope: Scope = GLOBAL) -> list[dict[str, Any]]:
    """Our cards as published (deleted ones as ``valid: false``) that ``scope`` sees."""
    await refresh_tokens()
    rows = await Snapshot.select().where(Snapshot.kind == "token").order_by(Snapshot.id).output(load_json=True)
    return [r["payload"] for r in rows if scope.sees(r["organization"])]


async def refresh_all() -> None:
    await refresh_locations()
    await refresh_tariffs()
    await refresh_tokens()


async def push_everything(partner_id: int) -> None:
    """Queue our full data for one partner (after it registered, or on the operator's request)."""
    partner = await partner_row(partner_id)
    if partner is None or partner["status"] != "registered":
        return
    roles, ours = partner_roles(partner), ocpi_settings().role_set
    s = ocpi_settings()
    prefix = f"/{s.country_code}/{s.party_id}"
    scope = await partner_scope(partner)  # an organization's partner: that organization's tree only
    if "CPO" in ours and roles & users_of("CPO"):
        if endpoint_url(partner, "tariffs", "RECEIVER"):
            for tariff in await tariff_list(scope):
                await enqueue(partner_id, "PUT", f"tariff:{tariff['id']}", module="tariffs",
                              path=f"{prefix}/{tariff['id']}", body=tariff)
        if endpoint_url(partner, "locations", "RECEIVER"):
            for loc in await location_list(scope):
                await enqueue(partner_id, "PUT", f"location:{loc['id']}", module="locations",
                              path=f"{prefix}/{loc['id']}", body=loc)
    if "EMSP" in ours and roles & users_of("EMSP") and endpoint_url(partner, "tokens", "RECEIVER"):
        for token in await token_list(scope):
            await enqueue(partner_id, "PUT", f"token:{token['type']}:{token['uid']}", module="tokens",
                          path=f"{prefix}/{token['uid']}?type={token['type']}", body=token)


# -- background work --------------------------------------------------------------------------------------

_tasks: set[asyncio.Task[Any]] = set()


def spawn(coro: Any, name: str) -> None:
    """Run ``coro`` off the request path; failures are logged."""

    async def guarded() -> None:
        try:
            await coro
        except Exception:
            log.exception("OCPI background task %s failed", name)

    try:
        task = asyncio.get_running_loop().create_task(guarded(), name=name)
    except RuntimeError:
        coro.close()
        return
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def schedule_initial_push(partner_id: int) -> None:
    spawn(push_everything(partner_id), f"ocpi-initial-push-{partner_id}")


class Worker:
    """The outbox delivery loop and the periodic refresh, started with the server.

    Both run on one node of a cluster at a time (``run_as_leader``: the leader elected through
    Redis, taken over by another node when it stops renewing; without Redis this node), so a
    partner never receives the same object from two nodes at once. Any node may queue."""

    def __init__(self) -> None:
        self._jobs: list[LeaderJob] = []
        self._dispatcher = outbox.Dispatcher()

    def start(self) -> None:
        global _lock
        # A server started in this process before (tests) may have ended without its shutdown:
        # what it left belongs to its event loop, not to this one.
        self._jobs = []
        _tasks.clear()
        client.forget_client()
        outbox.reset()
        _lock = asyncio.Lock()  # bound to this server's loop
        self._dispatcher = outbox.Dispatcher()
        s = ocpi_settings()
        if s.worker:
            self._jobs.append(run_as_leader("ocpi-outbox", self._deliver))
        if s.sync_interval > 0:
            self._jobs.append(run_as_leader("ocpi-refresh", lambda: self._refresh_loop(s.sync_interval)))

    async def stop(self) -> None:
        for job in self._jobs:
            await job.stop()
        self._jobs.clear()
        await asyncio.gather(*list(_tasks), return_exceptions=True)
        await self._dispatcher.stop()

    async def _deliver(self) -> None:
        try:
            await self._dispatcher.run()
        finally:  # the lease was lost or the server stops: no partner task outlives it
            await self._dispatcher.stop()

    async def _refresh_loop(self, interval: float) -> None:
        while True:
            try:
                await refresh_all()
                cutoff = utcnow() - timedelta(days=ocpi_settings().log_retention_days)
                await RequestLog.delete().where(RequestLog.created_at < cutoff)
            except Exception:
                log.exception("OCPI refresh failed")
            await asyncio.sleep(interval)


worker = Worker()
