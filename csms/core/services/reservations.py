"""Reservations: an EVSE (or a whole station) held for one id token (or its group) until expiry.

A reservation is a row of table ``reservation`` with a ``reservation_id`` unique in the
installation (the number the station is sent). Its ``status``:

- ``requested``: stored before ReserveNow is sent (so the id is taken), the station has not
  answered (yet; a timeout leaves it so until it expires);
- ``accepted``, ``rejected``, ``faulted``, ``occupied``, ``unavailable``: the station's answer,
  written only after it arrived;
- ``cancelled`` (CancelReservation accepted), ``expired`` (expiry passed: marked by a sweep and
  whenever reservations are read, and by a 2.0.1 ReservationStatusUpdate ``Expired``),
  ``removed`` (2.0.1 ReservationStatusUpdate ``Removed``), ``used`` (a session started with it).

The station enforces a reservation (OCPP 1.6 §5.13, 2.0.1 H01-H04); the CSMS records. A session
that starts with the reservation's id (1.6 StartTransaction ``reservationId``, 2.0.1
TransactionEvent ``reservationId``) or at the reserved EVSE with the reserving token or a token
of its group marks the reservation ``used``; a session of another token at a reserved EVSE is
noted in the reservation's ``detail``. Both happen from the event stream, after the station got
its answer, never on its request path.

The station's outbound adapter (:mod:`csms.core.ocpp.outbound`) checks what its version can express
and builds ReserveNow; this module knows no protocol version.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

from csms.core import events as ev
from csms.core.ocpp.outbound import calls_for
from csms.core.ocpp.validation import OcppError
from csms.core.services.commands import CommandTimeout, StationOffline, UnknownStation
from csms.core.tables import IdToken, Reservation, Station
from csms.core.timeutil import utcnow
from csms.i18n import N_, TranslatedError

if TYPE_CHECKING:
    from csms.core.services.commands import CommandService

log = logging.getLogger("csms.reservations")

ACTIVE = ("requested", "accepted")
STATION_ANSWERS = {"Accepted": "accepted", "Rejected": "rejected", "Faulted": "faulted", "Occupied": "occupied",
                   "Unavailable": "unavailable"}
UPDATE_STATUSES = {"Expired": "expired", "Removed": "removed"}
STATUSES = ("requested", "accepted", "rejected", "faulted", "occupied", "unavailable", "cancelled", "expired",
            "removed", "used")
SWEEP_S = 30.0


class ReservationError(TranslatedError, ValueError):
    """The reservation cannot be made or changed as asked (bad input or state); the message is
    worded when read, in the reader's language (see :class:`csms.i18n.TranslatedError`)."""


class UnknownReservation(LookupError):
    """No reservation with this id."""


def as_dict(row: dict[str, Any], station_id: str) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k != "station"}
    out["station_id"] = station_id
    return out


class ReservationService:
    def __init__(self, events: ev.EventDispatcher, commands: CommandService,
                 version: Callable[[str], str]) -> None:
        self.events = events
        self.commands = commands
        self.version = version  # the station's live OCPP version (StationOffline without one)
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._id_lock = asyncio.Lock()

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._unsubscribe = self.events.listen(self._on_event)
        self._task = asyncio.create_task(self._sweep_forever(), name="csms-reservations")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        tasks = [t for t in (self._task, *self._pending) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            try:
                await self.expire_due()
            except Exception:
                log.exception("reservation expiry sweep failed")

    # -- reading --------------------------------------------------------------------------------

    async def expire_due(self) -> int:
        """Mark every requested/accepted reservation whose expiry passed ``expired``; how many."""
        now = utcnow()
        due = Reservation.status.is_in(list(ACTIVE)) & (Reservation.expires_at <= now)
        count = await Reservation.count().where(due)
        if count:
            await Reservation.update({Reservation.status: "expired", Reservation.updated_at: now}).where(due)
        return count

    async def get(self, reservation_id: int) -> dict[str, Any]:
        await self.expire_due()
        row = await Reservation.select(*Reservation.all_columns(), Reservation.station.station_id.as_alias("sid")
                                       ).where(Reservation.reservation_id == reservation_id).first()
        if row is None:
            raise UnknownReservation(reservation_id)
        return as_dict({k: v for k, v in row.items() if k != "sid"}, row["sid"])

    # -- making and cancelling ------------------------------------------------------------------

    async def create(self, station_id: str, *, id_token: str, expires_at: datetime, evse_id: int | None = None,
                     connector_type: str | None = None, group_id_token: str | None = None,
                     token_type: str | None = None, by: str = "") -> dict[str, Any]:
        """Reserve: store the reservation (``requested``), send ReserveNow, store the answer.

        Raises ``UnknownStation``, ``StationOffline`` (nothing stored), ``ReservationError`` (bad
        input, nothing stored), ``CommandTimeout`` (stays ``requested``) or ``OcppError`` (the
        station's CALLERROR: ``rejected``). Returns the reservation with ``response``, the answer.
        """
        station = await Station.select(Station.id).where(Station.station_id == station_id).first()
        if station is None:
            raise UnknownStation(station_id)
        calls = calls_for(self.version(station_id))
        if not id_token:
            raise ReservationError(N_("id_token is required"))
        if expires_at.tzinfo is None:  # times without a zone are UTC, as everywhere in the CSMS
            expires_at = expires_at.replace(tzinfo=timezone.utc)
        if expires_at <= utcnow():
            raise ReservationError(N_("expires_at must be in the future"))
        if evse_id is not None and evse_id < 0:
            raise ReservationError(N_("evse_id must be 0 (any) or an EVSE/connector number"))
        refusal = calls.reservation_refusal(id_token=id_token, group_id_token=group_id_token,
                                            connector_type=connector_type)
        if refusal is not None:
            raise ReservationError(refusal.text, **refusal.params)
        card = await IdToken.select(IdToken.type, IdToken.group_id).where(IdToken.id_token == id_token).first()
        if group_id_token is None and card is not None:
            group_id_token = card["group_id"] or None
        token_type = token_type or (card["type"] if card else "Central")
        row = await self._store_requested(station["id"], id_token=id_token, token_type=token_type,
                                          group_id_token=group_id_token, expires_at=expires_at,
                                          evse_id=evse_id or None, connector_type=connector_type or None, created_by=by)
        call = calls.reserve_now(reservation_id=row.reservation_id, id_token=id_token, token_type=token_type,
                                 group_id_token=group_id_token, expires_at=expires_at, evse_id=evse_id,
                                 connector_type=connector_type)
        try:
            response = await self.commands.send(station_id, call.action, call.payload, requested_by=by)
        except (StationOffline, UnknownStation):
            await Reservation.delete().where(Reservation.id == row.id)
            raise
        except CommandTimeout:
            await self._set(row.id, "requested", "the station did not answer ReserveNow in time")
            raise
        except OcppError as exc:
            await self._set(row.id, "rejected", f"{exc.code}: {exc.description}")
            raise
        answer = response.get("status", "")
        await self._set(row.id, STATION_ANSWERS.get(answer, "rejected"),
                        f"station answered {answer}" if answer != "Accepted" else "")
        return {**await self.get(row.reservation_id), "response": response}

    async def _store_requested(self, station_pk: int, **values: Any) -> Reservation:
        # The lock keeps this process's ids distinct; the unique index catches another node's.
        async with self._id_lock:
            for _ in range(5):
                top = await Reservation.select(Reservation.reservation_id).order_by(
                    Reservation.reservation_id, ascending=False).first()
                reservation_id = (top["reservation_id"] if top else 0) + 1
                row = Reservation(station=station_pk, reservation_id=reservation_id, status="requested",
                                  created_at=utcnow(), updated_at=utcnow(), **values)
                try:
                    await row.save()
                    return row
                except Exception:
                    if not await Reservation.exists().where(Reservation.reservation_id == reservation_id):
                        raise
            raise ReservationError(N_("could not allocate a reservation id; try again"))

    async def _set(self, pk: int, status: str, detail: str = "") -> None:
        await Reservation.update({Reservation.status: status, Reservation.detail: detail,
                                  Reservation.updated_at: utcnow()}).where(Reservation.id == pk)

    async def cancel(self, reservation_id: int, *, station_id: str | None = None, only_active: bool = True,
                     by: str = "") -> dict[str, Any]:
        """Send CancelReservation; an accepted answer marks an active reservation ``cancelled``.

        Without a stored reservation ``station_id`` names the station (the answer is returned, nothing
        stored). With ``only_active`` a reservation no longer active raises ``ReservationError``
        and nothing is sent.
        """
        await self.expire_due()
        row = await Reservation.select(Reservation.id, Reservation.status,
                                       Reservation.station.station_id.as_alias("sid")).where(
            Reservation.reservation_id == reservation_id).first()
        if row is None and station_id is None:
            raise UnknownReservation(reservation_id)
        if row is not None:
            station_id = row["sid"]
            if only_active and row["status"] not in ACTIVE:
                raise ReservationError(N_("reservation %(reservation)s is %(state)s, not active"), reservation=reservation_id,
                                       state=row["status"])
        assert station_id is not None
        # StationOffline before anything is sent
        call = calls_for(self.version(station_id)).cancel_reservation(reservation_id=reservation_id)
        response = await self.commands.send(station_id, call.action, call.payload, requested_by=by)
        answer = response.get("status", "")
        if row is None:
            return {"status": answer, "response": response}
        if answer == "Accepted":
            await Reservation.update({Reservation.status: "cancelled", Reservation.detail: "",
                                      Reservation.updated_at: utcnow()}).where(
                (Reservation.id == row["id"]) & Reservation.status.is_in(list(ACTIVE)))
        else:
            await Reservation.update({Reservation.detail: f"CancelReservation answered {answer}",
                                      Reservation.updated_at: utcnow()}).where(Reservation.id == row["id"])
        return {**await self.get(reservation_id), "response": response}

    # -- what stations report -------------------------------------------------------------------

    async def status_update(self, station_pk: int, reservation_id: int, update: str) -> None:
        """2.0.1 ReservationStatusUpdate: ``Expired`` or ``Removed`` ends an active reservation."""
        status = UPDATE_STATUSES.get(update)
        if status is None:
            return
        await Reservation.update({Reservation.status: status, Reservation.detail: f"station reported {update}",
                                  Reservation.updated_at: utcnow()}).where(
            (Reservation.station == station_pk) & (Reservation.reservation_id == reservation_id)
            & Reservation.status.is_in(list(ACTIVE)))

    def _on_event(self, event: ev.Event) -> None:
        if not isinstance(event, ev.SessionStarted):
            return
        task = asyncio.create_task(self._session_started(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _session_started(self, event: ev.SessionStarted) -> None:
        try:
            await self.session_started(event.station_id, session_id=event.session_id, evse_id=event.evse_id,
                                       id_token=event.id_token, reservation_id=event.reservation_id)
        except Exception:
            log.exception("reservation bookkeeping for session %s failed", event.session_id)

    async def session_started(self, station_id: str, *, session_id: int, evse_id: int, id_token: str,
                              reservation_id: int | None) -> None:
        """Mark the reservation a session used; note a session of another token at a reserved EVSE."""
        at_station = Reservation.station.station_id == station_id
        if reservation_id is not None:
            row = await Reservation.select(Reservation.id, Reservation.id_token).where(
                at_station & (Reservation.reservation_id == reservation_id)).first()
            if row is not None:
                note = "" if row["id_token"] == id_token or not id_token else f"used by token {id_token}"
                await self._used(row["id"], session_id, note)
                return
        now = utcnow()
        active = await Reservation.select(Reservation.id, Reservation.id_token, Reservation.group_id_token,
                                          Reservation.evse_id).where(
            at_station & (Reservation.status == "accepted") & (Reservation.expires_at > now))
        if not active:
            return
        card = await IdToken.select(IdToken.group_id).where(IdToken.id_token == id_token).first() if id_token else None
        group = card["group_id"] if card else None
        here = [r for r in active if r["evse_id"] in (None, 0, evse_id)]
        mine = [r for r in here if id_token and (r["id_token"] == id_token
                                                 or (r["group_id_token"] and r["group_id_token"] in (group, id_token)))]
        if mine:
            await self._used(mine[0]["id"], session_id, "")
            return
        for r in here:
            if r["evse_id"] == evse_id:
                await Reservation.update({Reservation.detail: f"session {session_id} of another token "
                                                              f"({id_token or 'none'}) started at the reserved EVSE",
                                          Reservation.updated_at: now}).where(Reservation.id == r["id"])

    async def _used(self, pk: int, session_id: int, note: str) -> None:
        await Reservation.update({Reservation.status: "used", Reservation.session_id: session_id,
                                  Reservation.detail: note, Reservation.updated_at: utcnow()}).where(
            Reservation.id == pk)
