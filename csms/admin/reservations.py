"""Reservations on a station's page: a panel (through ``admin_panels``, a default plugin, see
``csms.plugins.DEFAULT_PLUGINS``) with the active and recent reservations, a form to reserve and
a cancel button per active reservation. Errors come back as text in the panel."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import Request, post
from litestar.response import Redirect, Template
from markupsafe import Markup

from csms.admin.auth import actor, current_user
from csms.admin.templating import fragment, is_htmx, page_panel, render
from csms.api.audit import audited
from csms.core.ocpp.validation import OcppError
from csms.core.runtime import get_core
from csms.core.services.commands import CommandTimeout, StationOffline, UnknownStation
from csms.core.services.reservations import ACTIVE, ReservationError, UnknownReservation
from csms.core.tables import Reservation
from csms.core.timeutil import utcnow
from csms.i18n import N_, gettext
from csms.plugins import hookimpl

STATION = {"tenant": {"station_id": "station"}, "role": "operator"}
TEMPLATE = "stations/_reservations.html"
RECENT = 10


async def panel_context(station_id: str) -> dict[str, Any]:
    await get_core().reservations.expire_due()
    columns = Reservation.all_columns(exclude=[Reservation.station])
    at_station = Reservation.station.station_id == station_id
    active = await Reservation.select(*columns).where(at_station & Reservation.status.is_in(list(ACTIVE))).order_by(
        Reservation.expires_at)
    recent = await Reservation.select(*columns).where(at_station & Reservation.status.not_in(list(ACTIVE))).order_by(
        Reservation.id, ascending=False).limit(RECENT)
    version = get_core().commands.version_of(station_id)
    return {"active": active, "recent": recent, "sid": station_id, "version": version}


@hookimpl
@page_panel("station")
async def admin_panels(request: Request, station: dict[str, Any]) -> Markup:
    user = await current_user(request)
    return fragment(request, TEMPLATE, **await panel_context(station["station_id"]),
                    can_operate=bool(user and user.can("operator")), notice="", ok=True, form={})


def _int(value: Any, what: str, *, low: int, high: int) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ReservationError(gettext("%(label)s must be a whole number", label=gettext(what))) from None
    if not low <= number <= high:
        raise ReservationError(gettext("%(label)s must be %(low)s to %(high)s", label=gettext(what), low=low, high=high))
    return number


async def _answer(request: Request, station_id: str, notice: str, ok: bool,
                  form: dict[str, Any] | None = None) -> Template | Redirect:
    if not is_htmx(request):
        return Redirect(f"/admin/stations/{station_id}", status_code=303)
    return await render(request, TEMPLATE, **await panel_context(station_id), can_operate=True, notice=notice,
                        ok=ok, form=form or {})


def _failure(exc: Exception) -> str:
    if isinstance(exc, StationOffline):
        return gettext("The station is offline: nothing was sent.")
    if isinstance(exc, CommandTimeout):
        return gettext("The station did not answer in time.")
    if isinstance(exc, OcppError):
        return gettext("The station refused the message (%(code)s: %(description)s).", code=exc.code,
                       description=exc.description)
    return str(exc)


@post("/admin/stations/{station_id:str}/reservations", include_in_schema=False, opt=STATION)
async def reservation_create(request: Request, station_id: str) -> Template | Redirect:
    """Reserve from the form (card, EVSE/connector, connector type, minutes); the panel comes back
    with the station's answer or what was wrong."""
    form = dict(await request.form())
    by = await actor(request)
    try:
        minutes = _int(form.get("expiry_minutes"), N_("Expiry (minutes)"), low=1, high=7 * 24 * 60) or 30
        evse_id = _int(form.get("evse_id"), N_("EVSE / connector"), low=0, high=1000)
        token = str(form.get("id_token") or "").strip()
        if not token:
            raise ReservationError(gettext("Give the card (id token) to reserve for."))
        made = await get_core().reservations.create(
            station_id, id_token=token, expires_at=utcnow() + timedelta(minutes=minutes), evse_id=evse_id,
            connector_type=str(form.get("connector_type") or "") or None, by=by)
    except (ReservationError, StationOffline, CommandTimeout, OcppError, UnknownStation) as exc:
        return await _answer(request, station_id, gettext("Not reserved: %(reason)s", reason=_failure(exc)), False, form)
    await audited(request, "create", "reservation", made["reservation_id"],
                  after={k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in made.items()
                         if k != "response"},
                  summary=f"reserve {station_id} EVSE {evse_id or 'any'} for {token}: {made['status']}")
    if made["status"] == "accepted":
        return await _answer(request, station_id, gettext(
            "Reserved: reservation %(reservation)s for %(token)s until %(time)s UTC.", reservation=made["reservation_id"],
            token=token, time=f"{made['expires_at']:%H:%M}"), True)
    return await _answer(request, station_id, gettext("Not reserved: the station answered %(status)s.",
                                                      status=made["response"].get("status")), False, form)


@post("/admin/stations/{station_id:str}/reservations/{reservation_id:int}/cancel", include_in_schema=False,
      opt={"tenant": {"station_id": "station", "reservation_id": "reservation"}, "role": "operator"})
async def reservation_cancel(request: Request, station_id: str, reservation_id: int) -> Template | Redirect:
    by = await actor(request)
    core = get_core()
    try:
        before = await core.reservations.get(reservation_id)
        if before["station_id"] != station_id:
            raise UnknownReservation(reservation_id)
        done = await core.reservations.cancel(reservation_id, by=by)
    except UnknownReservation:
        return await _answer(request, station_id, gettext("No reservation %(reservation)s at this station.",
                                                          reservation=reservation_id), False)
    except (ReservationError, StationOffline, CommandTimeout, OcppError) as exc:
        return await _answer(request, station_id, gettext("Not cancelled: %(reason)s", reason=_failure(exc)), False)
    answer = done["response"].get("status")
    await audited(request, "update", "reservation", reservation_id,
                  before={k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in before.items()},
                  after={"status": done["status"]}, summary=f"cancel reservation {reservation_id}: {answer}")
    if done["status"] == "cancelled":
        return await _answer(request, station_id, gettext("Reservation %(reservation)s cancelled.", reservation=reservation_id),
                             True)
    return await _answer(request, station_id, gettext("Not cancelled: the station answered %(status)s.", status=answer),
                         False)
