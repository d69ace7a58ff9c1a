"""Charging sessions of both protocol versions in one model, and meter value storage.

1.6 StartTransaction/StopTransaction/MeterValues and 2.0.1 TransactionEvent/MeterValues arrive
here already translated by the adapters. Session starts and stops are committed before the
station is answered; meter values and live session progress go through the batched writer and
are committed (group commit) before the answer too, so an answered message is never lost.

The in-memory view of a session (live figures, the seqNos seen) changes only after the commit
that stores the change, so a write that fails leaves nothing behind that the station's retry
would trip over. Replays are stored once: the seqNos of every 2.0.1 transaction are stored beside
it and read back after a restart, and a reading of a session (timestamp, measurand, phase,
location, context, value) that is already stored is skipped. Readings arrive in time order, so
only a message with a reading no later than the session's latest stored one (a replay, or a
station's late delivery) costs a look at what is stored; the hot path writes without a check.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from piccolo.query.functions.aggregate import Max

from csms.core import events as ev
from csms.core.domain import AuthorizationResult
from csms.db import Statement
from csms.core.tables import ChargingSession, MeterValue, TransactionSeqNo
from csms.core.timeutil import parse_ts, utcnow

if TYPE_CHECKING:
    from collections.abc import Callable

    from csms.core.services.authorization import AuthorizationService
    from csms.db import BatchWriter
    from csms.core.services.stations import StationState

log = logging.getLogger("csms.sessions")

ENERGY_REGISTER = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
CURRENT = "Current.Import"

_INSERT_METER = (
    "INSERT INTO meter_value (session, station_id, evse_id, transaction_id, timestamp, measurand, phase, unit, "
    "context, location, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_SEQ_NO = "INSERT INTO transaction_seq_no (session, seq_no) VALUES (?, ?) ON CONFLICT DO NOTHING"
_UPDATE_PROGRESS = (
    "UPDATE charging_session SET meter_start_wh = ?, meter_last_wh = ?, energy_wh = ?, power_w = ?, last_seq_no = ?, "
    "charging_state = ?, updated_at = ? WHERE id = ?"
)


class Sample(NamedTuple):
    """One sampled value, normalised by an adapter (energy in Wh, power in W, current in A)."""

    timestamp: datetime
    measurand: str
    value: float
    phase: str = ""
    unit: str = ""
    context: str = ""
    location: str = ""


# flags of a session the CSMS ended for a station that did not (``SessionService.close``)
FORCE_CLOSED = "force_closed"
CLOSED_AFTER_REBOOT = "closed_after_reboot"
CLOSED_AFTER_RECONNECT = "closed_after_reconnect"
CLOSED_BY_CSMS = frozenset({FORCE_CLOSED, CLOSED_AFTER_REBOOT, CLOSED_AFTER_RECONNECT})

_TIMESTAMP = itemgetter(0)  # Sample.timestamp, read in C


@dataclass
class ActiveSession:
    id: int
    station_pk: int
    station_id: str
    transaction_id: str
    evse_id: int
    connector_id: int
    id_token: str
    started_at: datetime
    meter_start_wh: float | None = None
    meter_last_wh: float | None = None
    energy_wh: float = 0.0
    power_w: float | None = None
    last_seq_no: int = -1
    charging_state: str = ""
    current_a: dict[str, float] = field(default_factory=dict)
    # 2.0.1 seqNos stored for this transaction (table transaction_seq_no, read back on start)
    seen_seq: set[int] = field(default_factory=set)
    # the latest timestamp of a stored reading (read back on start): readings up to it may be replays
    last_sample_at: datetime | None = None

    def is_duplicate(self, seq_no: int) -> bool:
        if self.seen_seq or self.last_seq_no < 0:
            return seq_no in self.seen_seq
        return seq_no <= self.last_seq_no  # a session stored before seqNos were: only the highest is known

    def advanced(self, samples: list[Sample], *, latest: datetime | None = None, seq_no: int | None = None,
                 charging_state: str | None = None) -> ActiveSession:
        """A copy of this session with the samples (``latest``: their latest timestamp) and the
        event applied, adopted after its commit."""
        after = object.__new__(ActiveSession)  # copy.copy of a dataclass is ten times slower
        after.__dict__.update(self.__dict__)
        after.current_a = dict(self.current_a)
        after.apply(samples)
        if latest is not None and (self.last_sample_at is None or latest > self.last_sample_at):
            after.last_sample_at = latest
        if seq_no is not None:
            after.last_seq_no = max(self.last_seq_no, seq_no)
        if charging_state:
            after.charging_state = charging_state
        return after

    def adopt(self, after: ActiveSession, seq_no: int | None = None) -> None:
        """Take the live figures of ``after`` (once they are committed)."""
        seen = self.seen_seq
        self.__dict__.update(after.__dict__)
        self.seen_seq = seen
        if seq_no is not None:
            seen.add(seq_no)

    def progress(self) -> Statement:
        return (_UPDATE_PROGRESS, (self.meter_start_wh, self.meter_last_wh, self.energy_wh, self.power_w,
                                   self.last_seq_no, self.charging_state, utcnow(), self.id))

    def apply(self, samples: list[Sample]) -> bool:
        """Update live figures from samples; True when anything changed."""
        changed = False
        power_phases: dict[str, float] = {}
        for s in samples:
            if s.location and s.location != "Outlet":
                continue
            if s.measurand == ENERGY_REGISTER and not s.phase:
                if self.meter_start_wh is None:
                    self.meter_start_wh = s.value
                # the register only grows: a sample delivered late never lowers it
                self.meter_last_wh = s.value if self.meter_last_wh is None else max(self.meter_last_wh, s.value)
                self.energy_wh = max(0.0, self.meter_last_wh - self.meter_start_wh)
                changed = True
            elif s.measurand == POWER:
                if s.phase:
                    power_phases[s.phase] = s.value
                else:
                    self.power_w = s.value
                    changed = True
            elif s.measurand == CURRENT and s.phase:
                self.current_a[s.phase[:2]] = s.value
                changed = True
        if power_phases and not any(s.measurand == POWER and not s.phase for s in samples):
            self.power_w = sum(power_phases.values())
            changed = True
        return changed

    def to_event(self) -> ev.SessionUpdated:
        return ev.SessionUpdated(self.station_id, session_id=self.id, energy_wh=self.energy_wh, power_w=self.power_w,
                                 charging_state=self.charging_state)


class SessionService:
    def __init__(self, events: ev.EventDispatcher, writer: Callable[[], BatchWriter],
                 auth: AuthorizationService) -> None:
        self.events = events
        self.writer = writer  # the running core's batched writer (it exists once the core started)
        self.auth = auth
        self.active: dict[tuple[str, str], ActiveSession] = {}
        self._by_evse: dict[tuple[str, int], ActiveSession] = {}

    async def start(self) -> None:
        """Load running sessions: a session survives a restart of the server."""
        await self._load(ChargingSession.state == "active")

    async def adopt(self, station_id: str) -> None:
        """Several nodes: a station connecting to this node brings its running sessions, as
        stored. Another node may have started or carried them on since this node last held the
        station (each message's progress is committed before it is answered, so the database is
        the newest account); called before the station's first message is read."""
        for session in self.for_station(station_id):
            self._uncache(session)
        await self._load((ChargingSession.state == "active") & (ChargingSession.station.station_id == station_id))

    def release(self, station_id: str) -> None:
        """Several nodes: forget the running sessions of a station that left this node (the node
        it goes to carries them on; the smart-charging leader reads them from the database)."""
        for session in self.for_station(station_id):
            self._uncache(session)

    async def _load(self, where: Any) -> None:
        rows = await ChargingSession.select(
            *ChargingSession.all_columns(), ChargingSession.station.station_id.as_alias("station_ident")
        ).where(where)
        loaded = [self._from_row(r, r["station_ident"]) for r in rows]
        for session in loaded:
            self._cache(session)
        by_id = {s.id: s for s in loaded}
        if by_id:
            for r in await TransactionSeqNo.select(TransactionSeqNo.session, TransactionSeqNo.seq_no).where(
                    TransactionSeqNo.session.is_in(list(by_id))):
                by_id[r["session"]].seen_seq.add(r["seq_no"])
            for r in await MeterValue.select(MeterValue.session, Max(MeterValue.timestamp).as_alias("latest")).where(
                    MeterValue.session.is_in(list(by_id))).group_by(MeterValue.session):
                by_id[r["session"]].last_sample_at = _as_datetime(r["latest"])

    @staticmethod
    def _from_row(r: dict[str, Any], station_id: str) -> ActiveSession:
        return ActiveSession(
            id=r["id"], station_pk=r["station"], station_id=station_id, transaction_id=r["transaction_id"],
            evse_id=r["evse_id"], connector_id=r["connector_id"], id_token=r["id_token"], started_at=r["started_at"],
            meter_start_wh=r["meter_start_wh"], meter_last_wh=r["meter_last_wh"], energy_wh=r["energy_wh"] or 0.0,
            power_w=r["power_w"], last_seq_no=r["last_seq_no"], charging_state=r["charging_state"],
        )

    def _cache(self, s: ActiveSession) -> None:
        self.active[(s.station_id, s.transaction_id)] = s
        self._by_evse[(s.station_id, s.evse_id)] = s

    def _uncache(self, s: ActiveSession) -> None:
        self.active.pop((s.station_id, s.transaction_id), None)
        if self._by_evse.get((s.station_id, s.evse_id)) is s:
            del self._by_evse[(s.station_id, s.evse_id)]

    def find(self, station_id: str, transaction_id: str) -> ActiveSession | None:
        return self.active.get((station_id, transaction_id))

    def on_evse(self, station_id: str, evse_id: int) -> ActiveSession | None:
        return self._by_evse.get((station_id, evse_id))

    def for_station(self, station_id: str) -> list[ActiveSession]:
        return [s for s in self.active.values() if s.station_id == station_id]

    async def _authorize_start(self, station_id: str, id_token: str, token_type: str, evse_id: int,
                               purpose: str = "start") -> AuthorizationResult:
        result = await self.auth.authorize(station_id, id_token, token_type, evse_id=evse_id, purpose=purpose)
        if result.accepted and token_type != "NoAuthorization" and any(
            s.id_token == id_token and not (s.station_id == station_id and s.evse_id == evse_id)
            for s in self.active.values()
        ):
            refused = AuthorizationResult("ConcurrentTx", expires_at=result.expires_at, group_id=result.group_id,
                                          driver_id=result.driver_id, source="core.concurrent")
            await self.auth.refused(station_id, id_token, token_type, refused, evse_id=evse_id, purpose=purpose)
            return refused
        return result

    # -- starting -----------------------------------------------------------------------------

    async def _create(self, state: StationState, *, transaction_id: str | None, evse_id: int, connector_id: int,
                      id_token: str, token_type: str, started_at: datetime, meter_start_wh: float | None,
                      driver_id: int | None, reservation_id: int | None = None, remote_start_id: int | None = None,
                      flags: list[str] | None = None) -> ActiveSession:
        previous = self.on_evse(state.station_id, evse_id)
        if previous is not None and previous.transaction_id != transaction_id:
            await self._finish(previous, stopped_at=started_at, meter_stop_wh=previous.meter_last_wh,
                               reason="Other", extra_flags=["superseded_by_new_transaction"])
        row = ChargingSession(
            station=state.pk, evse_id=evse_id, connector_id=connector_id, transaction_id=transaction_id or "",
            id_token=id_token, token_type=token_type, driver=driver_id, started_at=started_at,
            meter_start_wh=meter_start_wh, meter_last_wh=meter_start_wh, reservation_id=reservation_id,
            remote_start_id=remote_start_id, flags=flags or [],
        )
        if transaction_id is None:  # 1.6: the CSMS allocates the transaction id, in the row's own commit
            async with ChargingSession._meta.db.transaction():
                await row.save()
                row.transaction_id = await self._allocate_16(state.pk, row.id)
                await ChargingSession.update({ChargingSession.transaction_id: row.transaction_id}).where(
                    ChargingSession.id == row.id
                )
        else:
            await row.save()
        session = ActiveSession(
            id=row.id, station_pk=state.pk, station_id=state.station_id, transaction_id=row.transaction_id,
            evse_id=evse_id, connector_id=connector_id, id_token=id_token, started_at=started_at,
            meter_start_wh=meter_start_wh, meter_last_wh=meter_start_wh,
        )
        self._cache(session)
        self.events.emit(ev.SessionStarted(state.station_id, session_id=session.id,
                                           transaction_id=session.transaction_id, evse_id=evse_id,
                                           id_token=id_token, reservation_id=reservation_id))
        return session

    @staticmethod
    async def _allocate_16(station_pk: int, row_id: int) -> str:
        """The row id, unless this station already used it (a stop for a transaction we never
        saw stores the station's own id): then one past the highest id the station has."""
        taken = ChargingSession.exists().where(
            (ChargingSession.station == station_pk) & (ChargingSession.transaction_id == str(row_id))
            & (ChargingSession.id != row_id))
        if not await taken:
            return str(row_id)
        ids = await ChargingSession.select(ChargingSession.transaction_id).where(
            ChargingSession.station == station_pk)
        highest = max((int(r["transaction_id"]) for r in ids if r["transaction_id"].isdigit()), default=row_id)
        return str(max(highest, row_id) + 1)

    async def start_16(self, state: StationState, *, connector_id: int, id_tag: str, meter_start_wh: float,
                       timestamp: datetime, reservation_id: int | None) -> tuple[int, AuthorizationResult]:
        """1.6 StartTransaction: returns the allocated transaction id and the tag's status.

        A replay (same connector, tag, start time and meter) gets the same transaction id.
        """
        existing = await ChargingSession.select(ChargingSession.transaction_id).where(
            (ChargingSession.station == state.pk) & (ChargingSession.connector_id == connector_id)
            & (ChargingSession.id_token == id_tag) & (ChargingSession.started_at == timestamp)
            & (ChargingSession.meter_start_wh == meter_start_wh)
        ).first()
        if existing is not None:
            auth = await self.auth.authorize(state.station_id, id_tag, "", evse_id=connector_id, purpose="start")
            return int(existing["transaction_id"]), auth
        auth = await self._authorize_start(state.station_id, id_tag, "", connector_id)
        session = await self._create(
            state, transaction_id=None, evse_id=connector_id, connector_id=1 if connector_id else 0,
            id_token=id_tag, token_type="", started_at=timestamp, meter_start_wh=meter_start_wh,
            driver_id=auth.driver_id, reservation_id=reservation_id,
            flags=[] if auth.accepted else [f"start_not_authorized:{auth.status}"],
        )
        return int(session.transaction_id), auth

    # -- progress -----------------------------------------------------------------------------

    async def meter_values(self, state: StationState, *, evse_id: int, transaction_id: str | None,
                           samples: list[Sample], seq_no: int | None = None,
                           charging_state: str | None = None) -> None:
        """Store samples and the session's progress in one unit (committed before returning),
        then update the live session."""
        session = self.find(state.station_id, transaction_id) if transaction_id else None
        sid = session.id if session else None
        tx = transaction_id or ""
        station_id = state.station_id
        # the readings of one message share a timestamp or a few: their set is small
        stamps = set(map(_TIMESTAMP, samples))
        if session is not None and session.last_sample_at is not None and stamps \
                and min(stamps) <= session.last_sample_at:
            samples = await _not_stored(session.id, samples)
            stamps = set(map(_TIMESTAMP, samples))
        elif session is None and transaction_id and samples:  # an ended session's reading: a replay or late
            row = await ChargingSession.select(ChargingSession.id).where(
                (ChargingSession.station == state.pk) & (ChargingSession.transaction_id == transaction_id)).first()
            if row is not None:
                sid = row["id"]
                samples = await _not_stored(sid, samples)
        writer = self.writer()
        param = writer.time_param
        stored = {stamp: param(stamp) for stamp in stamps}  # once per timestamp, not per row
        statements: list[Statement] = [
            (_INSERT_METER, (sid, station_id, evse_id, tx, stored[s.timestamp], s.measurand, s.phase, s.unit,
                             s.context, s.location, s.value)) for s in samples]
        after = None
        if session is not None:
            after = session.advanced(samples, latest=max(stamps) if stamps else None, seq_no=seq_no,
                                     charging_state=charging_state)
            statements.append(after.progress())
            if seq_no is not None:
                statements.append((_INSERT_SEQ_NO, (session.id, seq_no)))
        await writer.submit(statements)
        if session is not None and after is not None:
            session.adopt(after, seq_no)
        if samples:
            self.events.emit(ev.MeterValuesReceived(
                station_id, evse_id=evse_id, session_id=sid,
                samples=tuple({"measurand": s.measurand, "phase": s.phase, "value": s.value} for s in samples[:24]),
            ))
        if session is not None:
            self.events.emit(session.to_event())

    # -- stopping -----------------------------------------------------------------------------

    async def _finish(self, s: ActiveSession, *, stopped_at: datetime, meter_stop_wh: float | None, reason: str,
                      extra_flags: list[str] | None = None, seq_no: int | None = None) -> None:
        """Complete a session; the Ended event's ``seq_no`` is stored in the same commit, so a
        crash in between leaves an Ended that its replay completes, never one taken as done."""
        meter_start, meter_last, energy = s.meter_start_wh, s.meter_last_wh, s.energy_wh
        last_seq_no = s.last_seq_no if seq_no is None else max(s.last_seq_no, seq_no)
        if meter_stop_wh is not None:
            meter_last = meter_stop_wh
            if meter_start is None:
                meter_start = meter_stop_wh
            energy = max(0.0, meter_stop_wh - meter_start)
        await self.writer().flush()  # earlier batched progress must not land after the stop
        values: dict[Any, Any] = {
            ChargingSession.state: "completed", ChargingSession.stopped_at: stopped_at,
            ChargingSession.meter_stop_wh: meter_last, ChargingSession.meter_last_wh: meter_last,
            ChargingSession.meter_start_wh: meter_start, ChargingSession.energy_wh: energy,
            ChargingSession.stop_reason: reason, ChargingSession.last_seq_no: last_seq_no,
            ChargingSession.charging_state: s.charging_state, ChargingSession.updated_at: utcnow(),
        }
        if extra_flags:
            row = await ChargingSession.select(ChargingSession.flags).where(ChargingSession.id == s.id).first()
            flags = _flags(row["flags"] if row else [])
            values[ChargingSession.flags] = flags + [f for f in extra_flags if f not in flags]
        async with ChargingSession._meta.db.transaction():
            await ChargingSession.update(values).where(ChargingSession.id == s.id)
            if seq_no is not None:
                await TransactionSeqNo.insert(TransactionSeqNo(session=s.id, seq_no=seq_no)).on_conflict(
                    action="DO NOTHING")
        s.meter_start_wh, s.meter_last_wh, s.energy_wh = meter_start, meter_last, energy
        s.last_seq_no = last_seq_no
        self._uncache(s)
        self.events.emit(ev.SessionStopped(s.station_id, session_id=s.id, transaction_id=s.transaction_id,
                                           energy_wh=s.energy_wh, stop_reason=reason))

    async def close(self, s: ActiveSession, *, reason: str, flag: str) -> None:
        """End a session the station will not end itself (an operator's force-close, or a
        transaction a rebooted station no longer knows): now, at its last stored meter reading,
        with ``reason`` and ``flag``. ``session.stopped`` is emitted once, as for a station's stop;
        a later stop of the station's own replaces the CSMS's account (see ``_late_end``)."""
        if self.active.get((s.station_id, s.transaction_id)) is not s:
            return  # ended meanwhile (by the station, or by another close)
        self._uncache(s)  # at once: a second close finds nothing to end
        try:
            await self._finish(s, stopped_at=utcnow(), meter_stop_wh=s.meter_last_wh, reason=reason,
                               extra_flags=[flag])
        except BaseException:
            self._cache(s)
            raise

    def by_id(self, session_id: int) -> ActiveSession | None:
        """The active session with row id ``session_id``."""
        return next((s for s in self.active.values() if s.id == session_id), None)

    async def stop_16(self, state: StationState, *, transaction_id: int, meter_stop_wh: float, timestamp: datetime,
                      id_tag: str | None, reason: str, samples: list[Sample]) -> AuthorizationResult | None:
        """1.6 StopTransaction. Unknown transactions are recorded as a flagged session; replays are no-ops."""
        tx = str(transaction_id)
        auth = None
        if id_tag:
            auth = await self.auth.authorize(state.station_id, id_tag, "", purpose="stop")
        session = self.find(state.station_id, tx)
        if session is None:
            done = await ChargingSession.exists().where(
                (ChargingSession.station == state.pk) & (ChargingSession.transaction_id == tx)
            )
            if done:
                row = await ChargingSession.select().where(
                    (ChargingSession.station == state.pk) & (ChargingSession.transaction_id == tx)).first()
                if row is not None and CLOSED_BY_CSMS & set(_flags(row["flags"])) \
                        and "ended_late_by_station" not in _flags(row["flags"]):
                    await self._late_end(state, row, timestamp=timestamp, seq_no=row["last_seq_no"],
                                         reason=reason or "Local",
                                         samples=[*samples, Sample(timestamp, ENERGY_REGISTER, meter_stop_wh)])
                return auth  # otherwise a replayed stop: answered again, nothing changes
            log.warning("StopTransaction for unknown transaction %s of %s", tx, state.station_id)
            session = await self._create(
                state, transaction_id=tx, evse_id=0, connector_id=0, id_token=id_tag or "", token_type="",
                started_at=samples[0].timestamp if samples else timestamp, meter_start_wh=None, driver_id=None,
                flags=["stop_without_start"],
            )
        if samples:
            await self.meter_values(state, evse_id=session.evse_id, transaction_id=tx, samples=samples)
        await self._finish(session, stopped_at=timestamp, meter_stop_wh=meter_stop_wh, reason=reason or "Local")
        return auth

    async def _late_end(self, state: StationState, row: dict[str, Any], *, timestamp: datetime, seq_no: int,
                        reason: str, samples: list[Sample]) -> None:
        """The station's own Ended for a session the CSMS closed when a new one began on its
        EVSE: the station's account (stop time, meter, reason) replaces the CSMS's guess."""
        statements: list[Statement] = [
            (_INSERT_METER, (row["id"], state.station_id, row["evse_id"], row["transaction_id"], smp.timestamp,
                             smp.measurand, smp.phase, smp.unit, smp.context, smp.location, smp.value))
            for smp in samples]
        statements.append((_INSERT_SEQ_NO, (row["id"], seq_no)))
        await self.writer().submit(statements)
        stop = _last_energy(samples)
        start = row["meter_start_wh"]
        values: dict[Any, Any] = {ChargingSession.stopped_at: timestamp, ChargingSession.stop_reason: reason,
                                  ChargingSession.last_seq_no: seq_no, ChargingSession.updated_at: utcnow(),
                                  ChargingSession.flags: _flags(row["flags"]) + ["ended_late_by_station"]}
        if stop is not None:
            values[ChargingSession.meter_stop_wh] = stop
            values[ChargingSession.meter_last_wh] = stop
            values[ChargingSession.energy_wh] = max(0.0, stop - (start if start is not None else stop))
        await ChargingSession.update(values).where(ChargingSession.id == row["id"])

    # -- 2.0.1 TransactionEvent ---------------------------------------------------------------

    async def transaction_event(self, state: StationState, *, event_type: str, transaction_id: str, seq_no: int,
                                timestamp: datetime, trigger_reason: str, evse_id: int | None,
                                connector_id: int | None, id_token: str | None, token_type: str,
                                charging_state: str | None, stopped_reason: str | None,
                                remote_start_id: int | None, reservation_id: int | None, offline: bool,
                                samples: list[Sample]) -> AuthorizationResult | None:
        """2.0.1 TransactionEvent: exactly once per (transaction, seqNo), replays answered again."""
        auth = None
        session = self.find(state.station_id, transaction_id)
        if session is None:
            row = await ChargingSession.select().where(
                (ChargingSession.station == state.pk) & (ChargingSession.transaction_id == transaction_id)
            ).first()
            if row is not None:  # already ended
                if id_token:
                    auth = await self.auth.authorize(state.station_id, id_token, token_type, evse_id=evse_id)
                if event_type == "Ended" and seq_no > row["last_seq_no"] and \
                        ({"superseded_by_new_transaction"} | CLOSED_BY_CSMS) & set(_flags(row["flags"])):
                    await self._late_end(state, row, timestamp=timestamp, seq_no=seq_no,
                                         reason=stopped_reason or trigger_reason, samples=samples)
                return auth  # otherwise a replay of something already stored
        if session is not None and session.is_duplicate(seq_no):
            if id_token:
                auth = await self.auth.authorize(state.station_id, id_token, token_type, evse_id=evse_id)
            return auth  # duplicate delivery
        if id_token and (session is None or session.id_token != id_token or event_type == "Started"):
            auth = await self._authorize_start(state.station_id, id_token, token_type, evse_id or 0)
        elif id_token:
            auth = await self.auth.authorize(state.station_id, id_token, token_type, evse_id=evse_id)
        if session is None:
            meter_start = next((s.value for s in samples if s.measurand == ENERGY_REGISTER and not s.phase), None)
            flags = []
            if event_type != "Started":
                flags.append(f"first_seen_as_{event_type.lower()}")
            if offline:
                flags.append("replayed_offline")
            if auth is not None and not auth.accepted:
                flags.append(f"start_not_authorized:{auth.status}")
            session = await self._create(
                state, transaction_id=transaction_id, evse_id=evse_id or 0, connector_id=connector_id or 0,
                id_token=id_token or "", token_type=token_type, started_at=timestamp, meter_start_wh=meter_start,
                driver_id=auth.driver_id if auth else None, reservation_id=reservation_id,
                remote_start_id=remote_start_id, flags=flags,
            )
        elif id_token and not session.id_token:
            await ChargingSession.update({ChargingSession.id_token: id_token, ChargingSession.token_type: token_type,
                                          ChargingSession.driver: auth.driver_id if auth else None}).where(
                ChargingSession.id == session.id)
            session.id_token = id_token
        if evse_id and not session.evse_id:
            await ChargingSession.update({ChargingSession.evse_id: evse_id,
                                          ChargingSession.connector_id: connector_id or 1}).where(
                ChargingSession.id == session.id)
            self._uncache(session)
            session.evse_id = evse_id
            session.connector_id = connector_id or 1
            self._cache(session)
        ended = event_type == "Ended"
        await self.meter_values(state, evse_id=session.evse_id, transaction_id=transaction_id, samples=samples,
                                seq_no=None if ended else seq_no, charging_state=charging_state)
        if ended:
            await self._finish(session, stopped_at=timestamp, meter_stop_wh=_last_energy(samples),
                               reason=stopped_reason or trigger_reason or "Local", seq_no=seq_no)
        return auth


def _reading(timestamp: datetime, measurand: str, phase: str, location: str, context: str, value: float) -> tuple:
    return (timestamp.timestamp(), measurand, phase, location, context, value)


def _as_datetime(value: Any) -> datetime | None:
    """A timestamp as the database returns it (SQLite aggregates give text)."""
    return parse_ts(value) if isinstance(value, str) else value


async def _not_stored(session_id: int, samples: list[Sample]) -> list[Sample]:
    """The samples of ``session_id`` that are not stored yet (a replay's are all stored)."""
    stamps = {s.timestamp for s in samples}
    rows = await MeterValue.select(MeterValue.timestamp, MeterValue.measurand, MeterValue.phase,
                                   MeterValue.location, MeterValue.context, MeterValue.value).where(
        (MeterValue.session == session_id) & (MeterValue.timestamp >= min(stamps))
        & (MeterValue.timestamp <= max(stamps)))
    # meter_value.timestamp is NOT NULL: the stored stamp is never None
    stored = {_reading(cast(datetime, _as_datetime(r["timestamp"])), r["measurand"], r["phase"], r["location"],
                       r["context"], r["value"]) for r in rows}
    fresh = []
    for s in samples:
        key = _reading(s.timestamp, s.measurand, s.phase, s.location, s.context, s.value)
        if key not in stored:
            stored.add(key)
            fresh.append(s)
    return fresh


def _last_energy(samples: list[Sample]) -> float | None:
    return next((s.value for s in reversed(samples) if s.measurand == ENERGY_REGISTER and not s.phase), None)


def _flags(value: Any) -> list[str]:
    if isinstance(value, str):
        value = json.loads(value or "[]")
    return list(value or [])
