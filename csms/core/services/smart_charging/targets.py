"""A session's departure time and energy target: set through the API, or taken from the EV's
charging needs (2.0.1 NotifyEVChargingNeeds). A departure from the EV is marked with the
session flag ``departure_from_ev``, an energy target with ``energy_target_from_ev``; targets set
through the API clear both and stand (the driver's word wins over the EV's), while the EV's own
are replaced by its next NotifyEVChargingNeeds (K17, renegotiation initiated by the EV). The
smart-charging view tells ``driver`` from ``ev`` (and ``learned``, :mod:`~.departures`).

An OCPP 2.1 EV that can feed energy back (a bidirectional mode, ``AC_BPT``, ``DC_BPT`` ...,
among its available or requested energy transfer modes) has its V2X parameters kept with the
session (``v2x``, :func:`v2x_of_needs`): the most it may discharge and how much energy it can
spare above its minimum (``evMinEnergyRequest`` below 0). They are replaced by each new
NotifyEVChargingNeeds, as the EV's state of charge changes."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from csms.core import events as ev
from csms.core.services.smart_charging.phases import floor_tenth
from csms.core.tables import ChargingSession
from csms.core.timeutil import parse_ts

if TYPE_CHECKING:
    from csms.core.services.sessions import SessionService

EV_FLAG = "departure_from_ev"
ENERGY_EV_FLAG = "energy_target_from_ev"
# 2.1 EnergyTransferModeEnumType values in which the EV may discharge (bidirectional power transfer)
BIDIRECTIONAL_MODES = frozenset({"AC_BPT", "AC_BPT_DER", "DC_BPT", "DC_ACDP_BPT"})


def v2x_of_needs(needs: dict[str, Any]) -> dict[str, Any] | None:
    """What smart charging keeps of a 2.1 EV's bidirectional capability (None: it cannot
    discharge): its modes, the most it may discharge (``max_discharge_a`` per phase and/or
    ``max_discharge_w`` in total, from ``v2xChargingParameters``) and ``spare_wh``, the energy it
    can give before it falls below its minimum (0 when it states no ``evMinEnergyRequest`` below 0)."""
    modes = list(needs.get("availableEnergyTransfer") or [needs.get("requestedEnergyTransfer")])
    params = needs.get("v2xChargingParameters") or {}
    if not BIDIRECTIONAL_MODES.intersection(modes) or not params:
        return None
    current, power = params.get("maxDischargeCurrent"), params.get("maxDischargePower")
    if not (current or power):
        return None
    minimum = params.get("evMinEnergyRequest")
    return {"modes": modes, "max_discharge_a": current, "max_discharge_w": power,
            "min_discharge_a": params.get("minDischargeCurrent"), "min_discharge_w": params.get("minDischargePower"),
            "spare_wh": max(0.0, -float(minimum)) if minimum is not None else 0.0,
            "control_mode": needs.get("controlMode")}


def departure_source(departure_at: datetime | None, flags: list[str] | None) -> str | None:
    """Who gave a stored departure: ``ev`` (NotifyEVChargingNeeds) or ``driver`` (the API)."""
    if departure_at is None:
        return None
    return "ev" if EV_FLAG in (flags or []) else "driver"


def discharge_a(v2x: dict[str, Any] | None, ocpp_version: str | None, voltage_v: float, phases: int) -> float:
    """The most a session's EV may discharge, in amps per phase (0: not a 2.1 V2X EV); the lower
    of its current and its power (spread over ``phases``) where it gives both."""
    if not v2x or ocpp_version != "2.1":
        return 0.0
    limits = []
    if v2x.get("max_discharge_a"):
        limits.append(float(v2x["max_discharge_a"]))
    if v2x.get("max_discharge_w"):
        limits.append(float(v2x["max_discharge_w"]) / (voltage_v * max(1, phases)))
    return floor_tenth(max(0.0, min(limits))) if limits else 0.0


async def store_charging_needs(sessions: SessionService, event: ev.StationReported) -> None:
    """NotifyEVChargingNeeds: the EV's departure time and energy, unless the driver set them
    (those the EV stated before are replaced); a 2.1 EV's V2X parameters (:func:`v2x_of_needs`),
    always (None when it can no longer discharge)."""
    details = event.details or {}
    needs = details.get("chargingNeeds") or {}
    session = sessions.on_evse(event.station_id, details.get("evseId") or 0)
    if session is None:
        return
    params = needs.get("acChargingParameters") or needs.get("dcChargingParameters") or {}
    row = await ChargingSession.select(ChargingSession.departure_at, ChargingSession.energy_target_wh,
                                       ChargingSession.flags, ChargingSession.v2x).where(
        ChargingSession.id == session.id).output(load_json=True).first()
    if row is None:
        return
    values: dict[Any, Any] = {}
    flags = list(row["flags"] or [])
    departure = parse_ts(needs.get("departureTime"))
    if departure is not None and (row["departure_at"] is None or EV_FLAG in flags):
        values[ChargingSession.departure_at] = departure
        flags = [*(f for f in flags if f != EV_FLAG), EV_FLAG]
    amount = params.get("energyAmount", (needs.get("v2xChargingParameters") or {}).get("evTargetEnergyRequest"))
    if amount is not None and (row["energy_target_wh"] is None or ENERGY_EV_FLAG in flags):
        values[ChargingSession.energy_target_wh] = max(0.0, float(amount)) + session.energy_wh
        flags = [*(f for f in flags if f != ENERGY_EV_FLAG), ENERGY_EV_FLAG]
    if flags != list(row["flags"] or []):
        values[ChargingSession.flags] = flags
    v2x = v2x_of_needs(needs)
    if v2x != row["v2x"]:
        values[ChargingSession.v2x] = v2x
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
                                  ChargingSession.flags: [f for f in row["flags"] or []
                                                          if f not in (EV_FLAG, ENERGY_EV_FLAG)]}).where(
        ChargingSession.id == session_id)
    return row["site"]
