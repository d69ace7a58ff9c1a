"""Stations: registration, boot, liveness, connectors and their live status, and removal."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Mapping, Protocol

import msgspec

from csms.core import audit
from csms.core import events as ev
from csms.core.offload import run_cpu
from csms.core.services import hubs, plans
from csms.core.security import hash_password, verify_password
from csms.core.organizations import organization_for
from csms.core.tables import AuditEntry, ChargingSession, Connector, Evse, Station, StationEvent
from csms.core.timeutil import utcnow
from csms.db import Statement
from csms.settings import UnknownStationPolicy

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from csms.db import BatchWriter
    from csms.settings import Settings

log = logging.getLogger("csms.stations")

_UPDATE_CONNECTOR = (
    "UPDATE connector SET status = ?, error_code = ?, info = ?, vendor_error_code = ?, updated_at = ? "
    "WHERE station = ? AND evse_id = ? AND connector_id = ?"
)
_UPDATE_EVSE = "UPDATE evse SET status = ?, updated_at = ? WHERE station = ? AND evse_id = ?"
_UPDATE_STATION_STATUS = "UPDATE station SET status = ?, error_code = ?, last_seen_at = ? WHERE id = ?"
_HEARTBEAT = "UPDATE station SET last_heartbeat_at = ?, last_seen_at = ? WHERE id = ?"
_LAST_SEEN = "UPDATE station SET last_seen_at = ? WHERE id = ?"
_INSERT_EVENT = (
    "INSERT INTO station_event (station_id, category, kind, evse_id, connector_id, severity, summary, details, timestamp) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_encode_details = msgspec.json.Encoder(enc_hook=str).encode

# A station refused at self-registration (its organization's plan is full) is audited once per this
# long, however often it retries.
REFUSAL_AUDITED_FOR = timedelta(days=1)

# Connector status words that mean "faulted" in either version.
FAULTED = {"Faulted"}


@dataclass
class StationState:
    """What the hot path needs to know about a station without a query."""

    pk: int
    station_id: str
    registration_status: str
    password_hash: str | None
    ocpp_version: str = ""
    connectors: dict[tuple[int, int], str] = field(default_factory=dict)  # (evse, connector) -> status
    evses: dict[int, str] = field(default_factory=dict)


class AuthFailure(Exception):
    """The handshake is refused: missing or wrong credentials (HTTP 401, ``credentials``), an
    unknown station under the reject policy (HTTP 404), or an unknown station its organization's
    plan has no room for (HTTP 403, ``status``)."""

    def __init__(self, message: str, *, credentials: bool = True, status: int | None = None) -> None:
        super().__init__(message)
        self.credentials = credentials
        self.status = status or (401 if credentials else 404)


async def _refused_lately(station_id: str) -> bool:
    """Whether the station's last audit entry is a refused registration of less than
    :data:`REFUSAL_AUDITED_FOR` ago: its refusals since belong to the same episode, audited once
    (a station the CSMS accepted, created or deleted since has a later entry)."""
    last = await AuditEntry.select(AuditEntry.action, AuditEntry.at).where(
        (AuditEntry.object_type == "station") & (AuditEntry.object_id == station_id)).order_by(
        AuditEntry.id, ascending=False).first()
    return last is not None and last["action"] == "refuse" and utcnow() - last["at"] < REFUSAL_AUDITED_FOR


class StationInUse(Exception):
    """The station has charging sessions: it is blocked, not deleted (their history stays)."""

    def __init__(self, station_id: str) -> None:
        super().__init__("the station has sessions; block it instead of deleting it")
        self.station_id = station_id


class Presence(Protocol):
    """What the stations tell the command bus: which stations this node holds."""

    async def register(self, station_id: str, version: str) -> None: ...

    async def unregister(self, station_id: str) -> None: ...


class StationService:
    """Stations' registration, boots, connections and live state.

    *Last seen*: every frame a station sends (CALLs, CALLRESULTs and CALLERRORs, heartbeats
    included) marks it seen in memory (:meth:`seen`); the times are written every
    ``last_seen_interval`` seconds, all stations seen since in one batch, so the stored time is at
    most that old and no frame costs a write of its own. :meth:`last_seen` answers from memory.
    """

    def __init__(self, settings: Settings, events: ev.EventDispatcher, writer: Callable[[], BatchWriter], *,
                 node_id: str, last_seen_interval: float = 5.0) -> None:
        self.settings = settings
        self.events = events
        self.writer = writer  # the running core's batched writer (it exists once the core started)
        self.node_id = node_id
        self.bus: Presence | None = None  # set by attach(): the bus is built with this service's callbacks
        self._states: dict[str, StationState] = {}
        self.last_seen_interval = last_seen_interval
        self._seen: dict[str, datetime] = {}  # station id -> time of its last frame (this node)
        self._unwritten: dict[int, datetime] = {}  # station pk -> last frame not yet written
        self._seen_task: asyncio.Task[None] | None = None

    def attach(self, bus: Presence) -> None:
        """The command bus, which announces this node's stations to the cluster."""
        self.bus = bus

    def _bus(self) -> Presence:
        if self.bus is None:
            raise RuntimeError("StationService.attach(bus) was not called")
        return self.bus

    async def start(self) -> None:
        # A restart means no socket is held by this node any more.
        await Station.update({Station.connected: False}).where(
            (Station.connected == True) & (Station.connected_node == self.node_id)  # noqa: E712
        )
        self._seen_task = asyncio.create_task(self._write_seen_periodically(), name="csms-last-seen")

    async def stop(self) -> None:
        if self._seen_task:
            self._seen_task.cancel()
        self.write_seen()

    # -- liveness -----------------------------------------------------------------------------

    def seen(self, state: StationState) -> None:
        """A frame came from the station now (memory only; written with the next batch)."""
        now = utcnow()
        self._seen[state.station_id] = now
        self._unwritten[state.pk] = now

    def last_seen(self, station_id: str) -> datetime | None:
        """When this node last had a frame from the station (None: not since it started)."""
        return self._seen.get(station_id)

    def seen_since(self, since: datetime) -> dict[str, datetime]:
        """The stations with a frame after ``since``, with its time."""
        return {sid: at for sid, at in self._seen.items() if at > since}

    def write_seen(self) -> None:
        """Queue the last-seen times not yet written, as one batch of updates."""
        unwritten, self._unwritten = self._unwritten, {}
        for pk, at in unwritten.items():
            self.writer().add(_LAST_SEEN, (at, pk))

    async def _write_seen_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.last_seen_interval)
            try:
                self.write_seen()
            except Exception:
                log.exception("last-seen times could not be queued")

    # -- registration -------------------------------------------------------------------------

    async def create(self, station_id: str, *, password: str | None = None, description: str = "",
                     registration_status: str = "Accepted", **fields: Any) -> dict[str, Any]:
        """Add a station (``fields`` by column name); one in a hub stands on the hub's site, one on
        a site of another organization than ``organization`` belongs to the site's
        (:func:`hubs.owner_on_site`). Refused with
        :class:`hubs.HubFull` or :class:`plans.PlanLimitReached` (nothing written)."""
        if fields.get("hub") is not None and fields.get("site") is None:
            fields["site"] = await hubs.hub_site(fields["hub"])  # a hub's stations are on its site
        if fields.get("site") is not None:
            fields["organization"] = await hubs.owner_on_site(fields["site"], fields.get("organization"))
        row = Station(
            station_id=station_id,
            description=description,
            registration_status=registration_status,
            password_hash=await run_cpu(hash_password, password) if password else None,
            **fields,
        )
        async with plans.within_limits(fields.get("organization"), "stations"):
            await hubs.create_station(row)
        self._states.pop(station_id, None)
        return row.to_dict()

    async def set_password(self, station_id: str, password: str | None) -> None:
        password_hash = await run_cpu(hash_password, password) if password else None
        await Station.update({Station.password_hash: password_hash, Station.pending_password_hash: None}).where(
            Station.station_id == station_id
        )
        state = self._states.get(station_id)
        if state is not None:  # the live connection holds this object: change it in place
            state.password_hash = password_hash

    async def set_pending_password(self, station_id: str, password: str | None) -> None:
        """A new password is on its way to the station (None: it refused it). Until the CSMS hears
        the station took it, a handshake with either password is accepted; the first with the new
        one makes it the password, one with the old drops the new."""
        pending = await run_cpu(hash_password, password) if password else None
        await Station.update({Station.pending_password_hash: pending}).where(Station.station_id == station_id)

    async def set_registration_status(self, station_id: str, status: str) -> None:
        await Station.update({Station.registration_status: status}).where(Station.station_id == station_id)
        state = self._states.get(station_id)
        if state:
            state.registration_status = status

    async def delete(self, row: Mapping[str, Any], *, actor: str, actor_organization: int | None,
                     disconnect: Callable[[str], Awaitable[None]] | None = None) -> None:
        """Remove the station of ``row`` (as the caller read it: the entry's *before*), refused with
        :class:`StationInUse` when it has sessions; ``disconnect`` closes its connection first."""
        station_id = row["station_id"]
        if await ChargingSession.exists().where(ChargingSession.station == row["id"]):
            raise StationInUse(station_id)
        if disconnect is not None:
            await disconnect(station_id)
        await Station.delete().where(Station.id == row["id"])
        self._states.pop(station_id, None)
        self._seen.pop(station_id, None)
        self._unwritten.pop(row["id"], None)
        await audit.record(actor=actor, action="delete", object_type="station", object_id=station_id, before=row,
                           organization=row.get("organization", actor_organization),
                           actor_organization=actor_organization)

    async def state(self, station_id: str) -> StationState | None:
        state = self._states.get(station_id)
        if state is not None:
            return state
        row = await Station.select(Station.id, Station.registration_status, Station.password_hash,
                                   Station.ocpp_version).where(Station.station_id == station_id).first()
        if row is None:
            return None
        state = StationState(row["id"], station_id, row["registration_status"], row["password_hash"], row["ocpp_version"])
        for c in await Connector.select(Connector.evse_id, Connector.connector_id, Connector.status).where(
            Connector.station == row["id"]
        ):
            state.connectors[(c["evse_id"], c["connector_id"])] = c["status"]
        for e in await Evse.select(Evse.evse_id, Evse.status).where(Evse.station == row["id"]):
            state.evses[e["evse_id"]] = e["status"]
        self._states[station_id] = state
        return state

    async def admit(self, station_id: str, password: str | None, *, profile: int = 0,
                    certified: bool = False) -> StationState:
        """Decide a WebSocket handshake: known station and right password, or the unknown policy.

        ``profile`` is the OCPP security profile of the connection (1 plain ws, 2 TLS, 3 TLS with
        a verified client certificate; 0: not known, never checked) and ``certified`` whether
        that certificate names this station (then it authenticates the station instead of a
        password). A connection below the station's stored profile is refused (a downgrade,
        logged in the station's events and the audit log); one above it raises the stored
        profile.
        """
        settings = self.settings
        state = await self.state(station_id)
        if state is None:
            policy = settings.unknown_stations
            if policy == UnknownStationPolicy.reject:
                raise AuthFailure(f"unknown station {station_id!r} (unknown stations are rejected)",
                                  credentials=False)
            if settings.require_station_password and not password and not certified:
                raise AuthFailure("a password is required")
            status = "Accepted" if policy == UnknownStationPolicy.accept else "Pending"
            organization = await organization_for(settings.default_organization)
            try:
                await self.create(station_id, registration_status=status, security_profile=profile,
                                  organization=organization)
            except plans.PlanLimitReached as exc:
                self.record(station_id, "registration", "refused",
                            summary=f"unknown station not registered: {exc}")
                if not await _refused_lately(station_id):  # a station retries every few seconds: one entry
                    await audit.record(actor="csms", action="refuse", object_type="station", object_id=station_id,
                                       organization=organization, summary=f"unknown station not registered: {exc}")
                raise AuthFailure(f"unknown station {station_id!r} not registered: {exc}", credentials=False,
                                  status=403) from None
            self.record(station_id, "registration", "created", summary=f"unknown station registered as {status}")
            state = await self.state(station_id)
            assert state is not None
            return state
        # The stored hash, not the cached one: another node (or a rotation there) may have changed it.
        row = await Station.select(Station.password_hash, Station.pending_password_hash, Station.security_profile,
                                   Station.organization).where(Station.id == state.pk).first()
        if row is None:
            self._states.pop(station_id, None)
            return await self.admit(station_id, password, profile=profile, certified=certified)
        stored = row["security_profile"] or 0
        if profile and profile < stored:
            summary = f"refused a connection at security profile {profile}: the station is at profile {stored}"
            self.record(station_id, "security", "profile downgrade refused", severity=2, summary=summary)
            await audit.record(actor=f"station:{station_id}", action="refused", object_type="station",
                               object_id=station_id, organization=row["organization"], summary=summary)
            raise AuthFailure(f"security profile downgrade ({profile} < {stored})")
        state.password_hash = row["password_hash"]
        if certified:
            pass  # security profile 3: the client certificate (checked by TLS, its commonName by the endpoint)
        elif state.password_hash:
            pending = row["pending_password_hash"]
            current: bool = bool(password) and await run_cpu(verify_password, state.password_hash, password)
            if current:
                if pending:  # the station kept its old password: the new one never reached it
                    await Station.update({Station.pending_password_hash: None}).where(
                        (Station.id == state.pk) & (Station.pending_password_hash == pending))
            elif password and pending and await run_cpu(verify_password, pending, password):
                # it took the new password; its answer came after this handshake, or never
                await Station.update({Station.password_hash: pending, Station.pending_password_hash: None}).where(
                    Station.id == state.pk)
                state.password_hash = pending
                self.record(station_id, "security", "password_changed",
                            summary="the station connected with the new Basic-auth password sent to it")
            else:
                raise AuthFailure("wrong password")
        elif settings.require_station_password:
            raise AuthFailure("station has no password but passwords are required")
        if profile > stored:
            await Station.update({Station.security_profile: profile}).where(
                (Station.id == state.pk) & (Station.security_profile < profile))
            if stored:
                self.record(station_id, "security", "profile raised",
                            summary=f"security profile raised from {stored} to {profile} by its connection")
        return state

    async def set_security_profile(self, station_id: str, profile: int) -> None:
        """The operator sets the station's security profile (0-3; lowering it allows the station
        to connect with a weaker profile again, e.g. after it lost its certificate)."""
        if profile not in (0, 1, 2, 3):
            raise ValueError("a security profile is 0 (none yet), 1, 2 or 3")
        await Station.update({Station.security_profile: profile}).where(Station.station_id == station_id)

    # -- connection ---------------------------------------------------------------------------

    async def connected(self, station_id: str, version: str) -> None:
        now = utcnow()
        await Station.update({
            Station.connected: True, Station.connected_since: now, Station.last_seen_at: now,
            Station.connected_node: self.node_id, Station.ocpp_version: version,
        }).where(Station.station_id == station_id)
        state = self._states.get(station_id)
        if state:
            state.ocpp_version = version
        await self._bus().register(station_id, version)
        self.record(station_id, "connection", "connected", summary=f"connected with OCPP {version}")
        self.events.emit(ev.StationConnected(station_id, ocpp_version=version))

    async def disconnected(self, station_id: str, reason: str) -> None:
        await self._bus().unregister(station_id)
        state = self._states.get(station_id)
        if state is not None:
            self._unwritten.pop(state.pk, None)  # written below; a later batch must not set it back
        await Station.update({Station.connected: False, Station.last_seen_at: utcnow()}).where(
            (Station.station_id == station_id) & (Station.connected_node == self.node_id)
        )
        self.record(station_id, "connection", "disconnected", summary=reason[:255])
        self.events.emit(ev.StationDisconnected(station_id, reason=reason))

    async def node_lost(self, node_id: str) -> list[str]:
        """Multi-node: the stations the dead node ``node_id`` held, marked offline as their
        disconnects would have been (a station event and ``station.disconnected`` each)."""
        held = Station.connected_node == node_id
        rows = await Station.select(Station.station_id).where((Station.connected == True) & held)  # noqa: E712
        ids = [r["station_id"] for r in rows]
        if not ids:
            return []
        await Station.update({Station.connected: False}).where(Station.station_id.is_in(ids) & held)
        for station_id in ids:
            self.record(station_id, "connection", "disconnected", summary=f"node {node_id} stopped answering"[:255])
            self.events.emit(ev.StationDisconnected(station_id, reason=f"node {node_id} died"))
        return ids

    # -- what stations send -------------------------------------------------------------------

    async def boot(self, station_id: str, *, vendor: str, model: str, serial_number: str = "",
                   firmware_version: str = "", iccid: str = "", imsi: str = "", meter_type: str = "",
                   meter_serial_number: str = "", reason: str = "", triggered: bool = False) -> str:
        """Store boot information; return the registration status to answer. ``triggered``: the
        CSMS asked for this BootNotification (TriggerMessage), so the station did not restart;
        the boot's station event says so (``details["triggered"]``) and so does ``station.booted``."""
        state = await self.state(station_id)
        assert state is not None
        now = utcnow()
        await Station.update({
            Station.vendor: vendor[:50], Station.model: model[:50], Station.serial_number: serial_number[:50],
            Station.firmware_version: firmware_version[:50], Station.iccid: iccid[:20], Station.imsi: imsi[:20],
            Station.meter_type: meter_type[:25], Station.meter_serial_number: meter_serial_number[:25],
            Station.boot_reason: reason[:32], Station.last_boot_at: now, Station.last_seen_at: now,
        }).where(Station.id == state.pk)
        self.record(station_id, "boot", reason or "boot",
                    summary=f"{vendor} {model} firmware {firmware_version}".strip(),
                    details={"registration_status": state.registration_status, "triggered": triggered})
        self.events.emit(ev.StationBooted(
            station_id, vendor=vendor, model=model, firmware_version=firmware_version, reason=reason,
            registration_status=state.registration_status, triggered=triggered,
        ))
        return state.registration_status

    def heartbeat(self, state: StationState) -> None:
        now = utcnow()
        self.writer().add(_HEARTBEAT, (now, now, state.pk))

    async def status(self, state: StationState, *, evse_id: int, connector_id: int, status: str,
                     error_code: str = "NoError", info: str = "", vendor_error_code: str = "",
                     timestamp: datetime | None = None) -> None:
        """Record a connector (or, with evse 0, station-level) status; commit before answering.
        The live state changes after the commit."""
        now = utcnow()
        ts = timestamp or now
        statements: list[Statement] = []
        evse_status = None
        if evse_id == 0:
            statements.append((_UPDATE_STATION_STATUS, (status, error_code, now, state.pk)))
            previous: str | None = state.evses.get(0, "")
        else:
            key = (evse_id, connector_id)
            previous = state.connectors.get(key)
            if previous is None:
                await self._ensure_connector(state, evse_id, connector_id)
                previous = "Unknown"
            statements.append((_UPDATE_CONNECTOR, (status, error_code, info, vendor_error_code, now, state.pk,
                                                   evse_id, connector_id)))
            evse_status = self._evse_status({**state.connectors, key: status}, evse_id)
            if state.evses.get(evse_id) != evse_status:
                statements.append((_UPDATE_EVSE, (evse_status, now, state.pk, evse_id)))
        category = "fault" if (error_code and error_code != "NoError") or status in FAULTED else "status"
        summary = status if category == "status" else f"{status}: {error_code} {info}".strip()
        statements.append(self._event(state.station_id, category, status, evse_id=evse_id, connector_id=connector_id,
                                      summary=summary, timestamp=ts,
                                      details={"error_code": error_code, "info": info,
                                               "vendor_error_code": vendor_error_code, "previous": previous}))
        await self.writer().submit(statements)
        if evse_id == 0:
            state.evses[0] = status
        else:
            state.connectors[(evse_id, connector_id)] = status
            state.evses[evse_id] = evse_status or "Unknown"
        if previous != status:
            self.events.emit(ev.ConnectorStatusChanged(
                state.station_id, evse_id=evse_id, connector_id=connector_id, status=status,
                previous=previous or "", error_code=error_code,
            ))
        if category == "fault":
            self.events.emit(ev.FaultReported(
                state.station_id, evse_id=evse_id, connector_id=connector_id, error_code=error_code, info=info,
            ))

    @staticmethod
    def _evse_status(connectors: dict[tuple[int, int], str], evse_id: int) -> str:
        statuses = [s for (e, _), s in connectors.items() if e == evse_id]
        for word in ("Faulted", "Occupied", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing",
                     "Preparing", "Reserved", "Unavailable", "Available"):
            if word in statuses:
                return word
        return statuses[0] if statuses else "Unknown"

    async def _ensure_connector(self, state: StationState, evse_id: int, connector_id: int) -> None:
        if evse_id not in state.evses and not await Evse.exists().where(
            (Evse.station == state.pk) & (Evse.evse_id == evse_id)
        ):
            await Evse(station=state.pk, evse_id=evse_id).save()
            state.evses[evse_id] = "Unknown"
        if not await Connector.exists().where(
            (Connector.station == state.pk) & (Connector.evse_id == evse_id) & (Connector.connector_id == connector_id)
        ):
            await Connector(station=state.pk, evse_id=evse_id, connector_id=connector_id).save()

    def record(self, station_id: str, category: str, kind: str, *, evse_id: int | None = None,
               connector_id: int | None = None, severity: int | None = None, summary: str = "",
               details: dict[str, Any] | None = None, timestamp: datetime | None = None,
               wait: bool = False) -> asyncio.Future[None] | None:
        """Append to the station event log (batched). With ``wait`` returns a commit future."""
        sql, params = self._event(station_id, category, kind, evse_id=evse_id, connector_id=connector_id,
                                  severity=severity, summary=summary, details=details, timestamp=timestamp)
        return self.writer().add(sql, params, wait=wait)

    @staticmethod
    def _event(station_id: str, category: str, kind: str, *, evse_id: int | None = None,
               connector_id: int | None = None, severity: int | None = None, summary: str = "",
               details: dict[str, Any] | None = None, timestamp: datetime | None = None) -> Statement:
        return (_INSERT_EVENT, (station_id, category, kind[:64], evse_id, connector_id, severity, summary[:255],
                                _encode_details(details or {}).decode(), timestamp or utcnow()))

    async def recent_events(self, station_id: str, limit: int = 50) -> list[dict[str, Any]]:
        return await StationEvent.select().where(StationEvent.station_id == station_id).order_by(
            StationEvent.timestamp, ascending=False
        ).limit(limit)
