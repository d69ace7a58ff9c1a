"""Reservations over REST: list, reserve (ReserveNow), read, cancel (CancelReservation).

A reservation belongs to the organization of its station; another organization's station or
reservation is 404. Reserving and cancelling need ``operator`` and are audited; a station that is
offline is 409, bad input 422 (400 when the payload breaks the station's schema).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from piccolo.columns.combination import Combinable

from csms.api.audit import audited
from csms.api.auth import caller, require
from csms.api.crud import jsonable, page_params
from csms.api.stations import run_command
from csms.api.tenancy import KINDS, MISSING, SCOPED, owner_by, register_kind, restrict, tenant_scope
from csms.core.runtime import get_core
from csms.core.services.reservations import (ACTIVE, STATUSES, ReservationError, UnknownReservation)
from csms.core.tables import Reservation
from csms.core.timeutil import utcnow

register_kind("reservation", owner_by(Reservation.reservation_id, Reservation.station.organization))


class NewReservation(msgspec.Struct, forbid_unknown_fields=True):
    station_id: str
    id_token: str
    expires_at: datetime | None = None  # or expires_in_minutes
    expires_in_minutes: int | None = None
    evse_id: int | None = None  # 1.6: the connector; none or 0: any (the station)
    connector_type: str | None = None  # 2.0.1 only (ConnectorEnumType)
    group_id_token: str | None = None  # default: the card's group
    token_type: str | None = None  # 2.0.1 IdTokenEnumType; default: the card's type, else Central


def expiry_of(data: NewReservation) -> datetime:
    if (data.expires_at is None) == (data.expires_in_minutes is None):
        raise ValidationException("give expires_at or expires_in_minutes")
    if data.expires_in_minutes is not None:
        if not 1 <= data.expires_in_minutes <= 7 * 24 * 60:
            raise ValidationException("expires_in_minutes must be 1 to 10080 (a week)")
        return utcnow() + timedelta(minutes=data.expires_in_minutes)
    assert data.expires_at is not None
    return data.expires_at


def _select() -> Any:
    return Reservation.select(*Reservation.all_columns(exclude=[Reservation.station]),
                              Reservation.station.station_id.as_alias("station_id"))


async def reserve(request: Request, data: NewReservation) -> dict[str, Any]:
    """Reserve for the caller of ``request`` (the admin uses it too); the stored reservation."""
    scope = await tenant_scope(request)
    owner = await KINDS["station"](data.station_id)
    if owner is MISSING or not scope.sees(owner):  # type: ignore[arg-type]
        raise NotFoundException(f"no station {data.station_id}")
    expires_at = expiry_of(data)
    try:
        made = await run_command(get_core().reservations.create(
            data.station_id, id_token=data.id_token, expires_at=expires_at, evse_id=data.evse_id,
            connector_type=data.connector_type, group_id_token=data.group_id_token, token_type=data.token_type,
            by=caller(request)))
    except ReservationError as exc:
        raise ValidationException(str(exc)) from None
    made = jsonable(made)
    await audited(request, "create", "reservation", made["reservation_id"],
                  after={k: v for k, v in made.items() if k != "response"},
                  summary=f"reserve {data.station_id} EVSE {data.evse_id or 'any'} for {data.id_token}: "
                          f"{made['status']}")
    return made


async def cancel(request: Request, reservation_id: int) -> dict[str, Any]:
    core = get_core()
    try:
        before = await core.reservations.get(reservation_id)
        done = await run_command(core.reservations.cancel(reservation_id, by=caller(request)))
    except UnknownReservation:
        raise NotFoundException(f"no reservation {reservation_id}") from None
    except ReservationError as exc:
        raise HTTPException(status_code=409, detail=str(exc), extra={"error": "NotActive"}) from None
    done = jsonable(done)
    await audited(request, "update", "reservation", reservation_id, before=jsonable(before),
                  after={k: v for k, v in done.items() if k != "response"},
                  summary=f"cancel reservation {reservation_id}: {done['response'].get('status')}")
    return done


class ReservationController(Controller):
    path = "/reservations"
    tags = ["reservations"]

    @get("/", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def list_reservations(self, request: Request, station: str | None = None,
                                reservation_status: str | None = None, id_token: str | None = None,
                                active: bool | None = None, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """Reservations, newest first; ``active`` = requested or accepted and not expired
        (``reservation_status`` filters one status; ``status`` is reserved by Litestar)."""
        limit, offset = page_params(limit, offset)
        if reservation_status and reservation_status not in STATUSES:
            raise ValidationException(f"reservation_status is one of {', '.join(STATUSES)}")
        await get_core().reservations.expire_due()
        conds: list[Combinable] = []
        if station:
            conds.append(Reservation.station.station_id == station)
        if reservation_status:
            conds.append(Reservation.status == reservation_status)
        if id_token:
            conds.append(Reservation.id_token == id_token)
        if active is True:
            conds.append(Reservation.status.is_in(list(ACTIVE)))
        elif active is False:
            conds.append(Reservation.status.not_in(list(ACTIVE)))
        scope = await tenant_scope(request)
        query = restrict(_select(), Reservation.station.organization, scope)
        count = restrict(Reservation.count(), Reservation.station.organization, scope)
        for c in conds:
            query, count = query.where(c), count.where(c)
        rows = await query.order_by(Reservation.id, ascending=False).limit(limit).offset(offset)
        return {"items": [jsonable(r) for r in rows], "total": await count, "limit": limit, "offset": offset}

    @post("/", guards=[require("operator")], opt={"tenant": SCOPED})
    async def create_reservation(self, request: Request, data: NewReservation) -> dict[str, Any]:
        """Send ReserveNow; 201 with the reservation as stored after the station's answer
        (``status`` accepted, or rejected/faulted/occupied/unavailable; ``response`` its answer)."""
        return await reserve(request, data)

    @get("/{reservation_id:int}", guards=[require("viewer")], opt={"tenant": {"reservation_id": "reservation"}})
    async def get_reservation(self, reservation_id: int) -> dict[str, Any]:
        try:
            return jsonable(await get_core().reservations.get(reservation_id))
        except UnknownReservation:
            raise NotFoundException(f"no reservation {reservation_id}") from None

    @post("/{reservation_id:int}/cancel", guards=[require("operator")], status_code=200,
          opt={"tenant": {"reservation_id": "reservation"}})
    async def cancel_reservation(self, request: Request, reservation_id: int) -> dict[str, Any]:
        """Send CancelReservation; an accepted answer marks it cancelled (409: offline or no
        longer active)."""
        return await cancel(request, reservation_id)
