"""Local authorization lists: each station's list built from the cards it may use, kept in step.

What a station may hold: the cards of its organization and of the organizations above it (whose
users see the station, :mod:`csms.api.tenancy`) and the cards of no organization (the
installation's own); never another tenant's. Blocked, expired and invalid cards go in with that
status so that a station refuses them offline too; a deleted card is removed. Tokens a version
cannot name (1.6 idTags longer than 20 characters) are left out.

How it stays in step, per station (table ``local_auth_list``, changed only after the station
accepted and we committed):

- after an accepted boot (or a connection without one), ``GetLocalListVersion``; a version other
  than the one acknowledged last (or none) gets a **Full** update, an equal one a
  **Differential** update with what changed meanwhile, or nothing;
- after a card change (debounced), and when a card expires, every connected station gets a
  Differential update with only the entries that changed; ``VersionMismatch`` or ``Failed`` is
  answered with a Full update;
- lists longer than the station takes in one message (1.6 ``SendLocalListMaxLength``, 2.0.1
  ``ItemsPerMessage``/``BytesPerMessage``) go as a Full update and Differential ones, each with
  the next version; longer than it holds at all (``LocalAuthListMaxLength``, ``Entries``), the
  accepted cards come first and the rest is left out (reported in the last result);
- a station that says it has no list (profile missing, ``Enabled`` false, version -1, a
  CALLERROR NotImplemented/NotSupported) is recorded as such and left alone until an operator
  asks for a full list.

``CSMS_LOCAL_LISTS_ENABLED=false`` turns the automatic updates off (:class:`LocalListSettings`).
In multi-node mode a change is synchronised by the node where it was made, through the command
bus; a version that went astray is repaired by the next Full update.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

from csms.core import events as ev
from csms.core.ocpp.outbound import local_lists as msgs
from csms.core.ocpp.validation import OcppError
from csms.core.services.commands import CommandTimeout, StationOffline, UnknownStation
from csms.core.services.station_rounds import StationDueTimes, for_each_station, run_rounds
from csms.core.tables import IdToken, LocalAuthList, Organization, Station
from csms.core.timeutil import ocpp_ts, utcnow
from csms.settings import LocalListSettings

if TYPE_CHECKING:
    from csms.core.connections import ConnectionRegistry
    from csms.core.services.commands import CommandService

log = logging.getLogger("csms.local_lists")

AUTOMATIC = "local_lists"  # requested_by of the automatic updates (not an audited actor)
# Audited objects whose change may change a station's list (the running core passes every
# audited change to LocalListService.note_change).
WATCHED_OBJECTS = frozenset({"token", "id_token", "station", "organization", "database"})
CONCURRENT_STATIONS = 16
_STATUS_ORDER = {"Accepted": 0}


def ancestors(tree: Mapping[int, int | None], organization: int | None) -> set[int]:
    """``organization`` and every organization above it (none for None)."""
    out: set[int] = set()
    while organization is not None and organization not in out:
        out.add(organization)
        organization = tree.get(organization)
    return out


def content_hash(entries: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(entries, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def changes(acknowledged: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """What a Differential update must carry: changed or new entries, and None for removed ones."""
    out: dict[str, Any] = {k: v for k, v in desired.items() if acknowledged.get(k) != v}
    out.update({k: None for k in acknowledged if k not in desired})
    return out


class LocalListService:
    def __init__(self, events: ev.EventDispatcher, connections: ConnectionRegistry, commands: CommandService) -> None:
        self.events = events
        self.connections = connections
        self.commands = commands
        self.config = LocalListSettings()
        self._wake = asyncio.Event()
        self._due = StationDueTimes(self.config, self._wake)  # flag: check the station's version first
        self._all_due: float | None = None  # every connected station (of any node), differential
        self._local_due: float | None = None  # the stations connected to this node (a card expires)
        self._next_sweep = 0.0
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._locks: dict[str, asyncio.Lock] = {}

    def note_change(self, object_type: str, action: str = "update") -> None:
        """Called for every audited change: a card, station or organization change is followed by a
        (debounced) update of the stations' lists."""
        if object_type not in WATCHED_OBJECTS or action == "command":
            return
        self.cards_changed()

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if not self.config.enabled:
            return
        self._unsubscribe = self.events.listen(self._on_event)
        self._next_sweep = time.monotonic() + (self.config.interval_s or float("inf"))
        self._task = asyncio.create_task(self._run(), name="csms-local-lists")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def cards_changed(self) -> None:
        """Cards (or who may use them) changed: update every connected station after the debounce."""
        if self._task is None:
            return
        due = time.monotonic() + self.config.debounce_s
        if self._all_due is None or due < self._all_due:
            self._all_due = due
        self._wake.set()

    def _on_event(self, event: ev.Event) -> None:
        """A listener on the event dispatcher (after the station got its answer)."""
        self._due.on_event(event, flag=True)

    # -- the loop -------------------------------------------------------------------------------

    async def _run(self) -> None:
        await run_rounds(self._wake, self._next_at, self._pass, log, "the local list loop")

    def _next_at(self) -> float:
        return min(self._due.next_at(), self._all_due or float("inf"), self._local_due or float("inf"),
                   self._next_sweep)

    async def _pass(self) -> None:
        now = time.monotonic()
        batch = self._due.take(now)
        # A card change reaches every connected station, through the bus wherever its socket is;
        # an expiry and the periodic check are seen by every node, each takes its own stations.
        stations: list[str] = []
        if self._all_due is not None and self._all_due <= now:
            self._all_due = None
            stations = [r["station_id"] for r in await Station.select(Station.station_id).where(
                Station.connected == True)]  # noqa: E712
        elif (self._local_due is not None and self._local_due <= now) or now >= self._next_sweep:
            stations = self.connections.ids()
        if (self._local_due is not None and self._local_due <= now) or now >= self._next_sweep:
            self._local_due = None
            if now >= self._next_sweep:
                self._next_sweep = now + (self.config.interval_s or float("inf"))
        for sid in stations:
            if sid not in self._due.due:  # a station just connected is checked after its boot
                batch.setdefault(sid, False)
        if not batch:
            return

        async def one(station_id: str, check: bool) -> None:
            try:
                await self.sync(station_id, check=check)
            except (StationOffline, UnknownStation):
                pass
            except Exception:
                log.exception("local list of %s not synchronised", station_id)

        await for_each_station(batch.items(), one, CONCURRENT_STATIONS)
        await self._schedule_expiry()

    async def _schedule_expiry(self) -> None:
        """Wake when the next accepted card expires: its entry becomes Expired."""
        row = await IdToken.select(IdToken.expires_at).where(
            (IdToken.status == "Accepted") & (IdToken.expires_at > utcnow())).order_by(IdToken.expires_at).first()
        if row is None:
            return
        due = time.monotonic() + max((row["expires_at"] - utcnow()).total_seconds(), 0.0) + 0.5
        if self._local_due is None or due < self._local_due:
            self._local_due = due

    # -- what a station should hold -------------------------------------------------------------

    async def desired(self, organization: int | None, version: str) -> dict[str, msgs.Entry]:
        """The entries of a station of ``organization`` speaking ``version``, by id token."""
        tree = {r["id"]: r["parent"] for r in await Organization.select(Organization.id, Organization.parent)}
        allowed = sorted(ancestors(tree, organization))
        where: Any = IdToken.organization.is_null()
        if allowed:
            where = where | IdToken.organization.is_in(allowed)
        rows = await IdToken.select(IdToken.id_token, IdToken.type, IdToken.status, IdToken.expires_at,
                                    IdToken.group_id).where(where)
        now = utcnow()
        out: dict[str, msgs.Entry] = {}
        for r in rows:
            if not msgs.fits(version, r["id_token"]):
                continue
            status = r["status"]
            if status == "Accepted" and r["expires_at"] is not None and r["expires_at"] <= now:
                status = "Expired"
            out[r["id_token"]] = {"status": status,
                                  "expires_at": ocpp_ts(r["expires_at"]) if r["expires_at"] else None,
                                  "group": r["group_id"] or None, "type": msgs.token_type(version, r["type"])}
        return out

    @staticmethod
    def _limit(entries: dict[str, msgs.Entry], max_entries: int | None) -> tuple[dict[str, msgs.Entry], int]:
        """At most ``max_entries`` entries, accepted cards first; and how many were left out."""
        if max_entries is None or len(entries) <= max_entries:
            return entries, 0
        keep = sorted(entries, key=lambda k: (_STATUS_ORDER.get(entries[k]["status"], 1), k))[:max_entries]
        return {k: entries[k] for k in sorted(keep)}, len(entries) - max_entries

    # -- state ----------------------------------------------------------------------------------

    async def _state(self, station_pk: int) -> dict[str, Any]:
        query = LocalAuthList.select().output(load_json=True).where(LocalAuthList.station == station_pk)
        row = await query.first()
        if row is None:
            try:
                await LocalAuthList.insert(LocalAuthList(station=station_pk, entries={}))
            except Exception:  # another task (or node) created it meanwhile
                log.debug("local_auth_list row of %s created concurrently", station_pk)
            row = await query.first()
        assert row is not None
        row["entries"] = row["entries"] or {}
        return row

    async def _record(self, state: dict[str, Any], **values: Any) -> dict[str, Any]:
        """Store ``values`` (column name → value) with the time of this sync; return the new state."""
        values.setdefault("last_sync_at", utcnow())
        await LocalAuthList.update({getattr(LocalAuthList, k): v for k, v in values.items()}).where(
            LocalAuthList.id == state["id"])
        state.update(values)
        return state

    async def state(self, station_id: str) -> dict[str, Any]:
        """The list state of a station, for REST and the admin: what it acknowledged, the last
        outcome, and how many entries wait to be sent."""
        row = await Station.select(Station.id, Station.organization, Station.ocpp_version).where(
            Station.station_id == station_id).first()
        if row is None:
            raise UnknownStation(station_id)
        state = await self._state(row["id"])
        version = self.commands.version_of(station_id) or row["ocpp_version"] or "2.0.1"
        desired = await self.desired(row["organization"], version)
        caps = await msgs.capabilities(version, row["id"])
        desired, _ = self._limit(desired, caps.max_entries)
        acknowledged = state["entries"]
        return {
            "station_id": station_id,
            "enabled": self.config.enabled,
            "version": state["version"],
            "station_version": state["station_version"],
            "supported": {"yes": True, "no": False}.get(state["supported"]),
            "content_hash": state["content_hash"],
            "entries": [{"id_token": k, **v} for k, v in sorted(acknowledged.items())],
            "entry_count": len(acknowledged),
            "pending_changes": len(changes(acknowledged, desired)),
            "last_result": state["last_result"],
            "last_detail": state["last_detail"],
            "last_sync_at": state["last_sync_at"].isoformat() if state["last_sync_at"] else None,
            "last_full_at": state["last_full_at"].isoformat() if state["last_full_at"] else None,
        }

    # -- synchronisation ------------------------------------------------------------------------

    async def sync(self, station_id: str, *, full: bool = False, check: bool = False,
                   by: str = AUTOMATIC) -> dict[str, Any]:
        """Bring the station's list in step: ``full`` sends the whole list now (an operator's
        request, also to a station recorded as not supporting lists); ``check`` asks the station's
        version first. Raises ``UnknownStation`` or ``StationOffline``; what the station answers
        is recorded, not raised."""
        lock = self._locks.setdefault(station_id, asyncio.Lock())
        async with lock:
            await self._sync(station_id, full=full, check=check, by=by)
        return await self.state(station_id)

    async def _sync(self, station_id: str, *, full: bool, check: bool, by: str) -> None:
        row = await Station.select(Station.id, Station.organization, Station.registration_status).where(
            Station.station_id == station_id).first()
        if row is None:
            raise UnknownStation(station_id)
        version = self.commands.live_version(station_id)
        if row["registration_status"] != "Accepted" and not full:
            return
        state = await self._state(row["id"])
        caps = await msgs.capabilities(version, row["id"])
        if caps.supported is False or caps.enabled is False:
            what = "has no local list support" if caps.supported is False else "has its local list disabled"
            await self._record(state, supported="no", last_result="NotSupported",
                               last_detail=f"the station's configuration says it {what}")
            return
        if state["supported"] == "no" and not full:
            return
        desired, left_out = self._limit(await self.desired(row["organization"], version), caps.max_entries)
        if not full and state["version"] == 0 and not state["entries"] and not desired:
            return  # nothing was ever sent and nothing is to be sent
        note = f"{left_out} cards left out: the station holds {caps.max_entries} entries" if left_out else ""
        try:
            await self._bring_in_step(station_id, version, state, caps, desired, full=full, check=check,
                                      by=by, note=note)
        except StationOffline:
            await self._record(state, last_result="Offline", last_detail="the station disconnected")
            raise
        except CommandTimeout:
            await self._record(state, last_result="Timeout", last_detail="the station did not answer in time")
        except OcppError as exc:
            if exc.code in ("NotImplemented", "NotSupported"):
                await self._record(state, supported="no", last_result="NotSupported",
                                   last_detail=f"the station answered {exc.code}: {exc.description}"[:500])
            else:
                await self._record(state, last_result="Error",
                                   last_detail=f"{exc.code}: {exc.description}"[:500])

    async def _bring_in_step(self, station_id: str, version: str, state: dict[str, Any], caps: msgs.Capabilities,
                             desired: dict[str, msgs.Entry], *, full: bool, check: bool, by: str,
                             note: str) -> None:
        need_full = full
        station_version: int | None = None
        if check or full or state["version"] == 0:  # nothing acknowledged yet: a full list
            station_version = await self._station_version(station_id, version, state, by)
            if station_version is None:
                return
            need_full = need_full or station_version != state["version"] or state["version"] == 0
        if not need_full:
            diff = changes(state["entries"], desired)
            if not diff:
                if check:
                    await self._record(state, last_result="InSync", last_detail=note)
                return
            status = await self._send(station_id, version, state, caps, diff, update_type="Differential",
                                      base=state["version"], by=by, note=note)
            if status not in ("VersionMismatch", "Failed"):
                return
            note = f"Differential update answered {status}; full list sent"
            if status == "VersionMismatch":  # the full list goes out above the version the station has
                station_version = await self._station_version(station_id, version, state, by)
                if station_version is None:
                    return
        await self._send(station_id, version, state, caps, desired, update_type="Full",
                         base=max(state["version"], station_version or 0), by=by, note=note)

    async def _station_version(self, station_id: str, version: str, state: dict[str, Any], by: str) -> int | None:
        """The station's list version (GetLocalListVersion), recorded; None when it has no lists."""
        action, payload = msgs.version_request()
        station_version = msgs.version_of(version, await self.commands.send(
            station_id, action, payload, requested_by=by))
        if station_version < 0:
            await self._record(state, supported="no", station_version=station_version,
                               last_result="NotSupported", last_detail="the station reports no list support (-1)")
            return None
        await self._record(state, supported="yes", station_version=station_version)
        return station_version

    async def _send(self, station_id: str, version: str, state: dict[str, Any], caps: msgs.Capabilities,
                    entries: Mapping[str, msgs.Entry | None], *, update_type: str, base: int, by: str,
                    note: str) -> str:
        """Send ``entries`` in as many messages as the station's limits need, each with the next
        version (the first of a Full update as Full, the rest as Differential). Each accepted
        message is committed before the next is sent. Returns "Accepted" or the refusing status."""
        order = sorted(entries)
        types = {k: (v or state["entries"].get(k) or {}).get("type", "Local") for k, v in entries.items()}
        items = [msgs.list_item(version, k, entries[k], types[k]) for k in order]
        parts = msgs.chunks(items, per_message=caps.per_message or self.config.max_entries_per_message,
                            bytes_per_message=caps.bytes_per_message) or [[]]
        acknowledged = {} if update_type == "Full" else dict(state["entries"])
        done = 0
        for number, part in enumerate(parts, start=1):
            list_version = base + number
            kind = update_type if number == 1 else "Differential"
            action, payload = msgs.send_request(version, list_version, kind, part)
            response = await self.commands.send(station_id, action, payload, requested_by=by)
            status = response.get("status", "")
            if status != "Accepted":
                if status == "NotSupported":
                    await self._record(state, supported="no", last_result=status,
                                       last_detail=f"{kind} update of version {list_version} answered NotSupported")
                else:
                    await self._record(state, last_result=status or "Failed",
                                       last_detail=f"{kind} update of version {list_version} answered {status}")
                return status or "Failed"
            for key in order[done:done + len(part)]:
                if entries[key] is None:
                    acknowledged.pop(key, None)
                else:
                    acknowledged[key] = entries[key]
            done += len(part)
            values: dict[str, Any] = {
                "version": list_version, "entries": dict(acknowledged), "content_hash": content_hash(acknowledged),
                "supported": "yes", "station_version": list_version, "last_result": "Accepted",
                "last_detail": note or (f"{update_type} update in {len(parts)} messages" if len(parts) > 1
                                        else f"{update_type} update")}
            if update_type == "Full":
                values["last_full_at"] = utcnow()
            await self._record(state, **values)
        return "Accepted"
