"""A session's departure time and energy target: set through the API, or taken from the EV's
charging needs (2.0.1 NotifyEVChargingNeeds). A departure from the EV is marked with the
session flag ``departure_from_ev`` (one set through the API clears it): the smart-charging view
tells ``driver`` from ``ev`` (and ``learned``, :mod:`~.departures`)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from csms.core import events as ev
from csms.core.tables import ChargingSession
from csms.core.timeutil import parse_ts

if TYPE_CHECKING:
    from csms.core.services.sessions import SessionService

EV_FLAG = "departure_from_ev"


def departure_source(departure_at: datetime | None, flags: list[str] | None) -> str | None:
    """Who gave a stored departure: ``ev`` (NotifyEVChargingNeeds) or ``driver`` (the API)."""
    if departure_at is None:
        return None
    return "ev" if EV_FLAG in (flags or []) else "driver"


async def store_charging_needs(sessions: SessionService, event: ev.StationReported) -> None:
    """2.0.1 NotifyEVChargingNeeds: the EV's departure time and energy, unless already set."""
    details = event.details or {}
    needs = details.get("chargingNeeds") or {}
    session = sessions.on_evse(event.station_id, details.get("evseId") or 0)
    if session is None:
        return
    params = needs.get("acChargingParameters") or needs.get("dcChargingParameters") or {}
    row = await ChargingSession.select(ChargingSession.departure_at, ChargingSession.energy_target_wh,
                                       ChargingSession.flags).where(
        ChargingSession.id == session.id).output(load_json=True).first()
    if row is None:
        return
    values: dict[Any, Any] = {}
    departure = parse_ts(needs.get("departureTime"))
    if departure is not None and row["departure_at"] is None:
        values[ChargingSession.departure_at] = departure
        values[ChargingSession.flags] = [*(f for f in row["flags"] or [] if f != EV_FLAG), EV_FLAG]
    if params.get("energyAmount") is not None and row["energy_target_wh"] is None:
        values[ChargingSession.energy_target_wh] = float(params["energyAmount"]) + session.energy_wh
    if values:
        await ChargingSession.update(values).where(ChargingSession.id == session.id)


async def save_session_targets(session_id: int, *, departure_at: datetime | None,
                               energy_target_wh: float | None) -> int | None:
    """Store when the driver leaves and how much energy they want; the session's site (None: it
    has none). Raises LookupError for no session."""
    row = await ChargingSession.select(ChargingSession.id, ChargingSession.station.site.as_alias("site"),
                                       ChargingSession.flags).where(
        ChargingSession.id == session_id).output(load_json=True).first()
    if row is None:
        raise LookupError(session_id)
    await ChargingSession.update({ChargingSession.departure_at: departure_at,
                                  ChargingSession.energy_target_wh: energy_target_wh,
                                  ChargingSession.flags: [f for f in row["flags"] or [] if f != EV_FLAG]}).where(
        ChargingSession.id == session_id)
    return row["site"]
