"""Charging profiles: what the loop wants a station to hold (:class:`Planned`, in version-neutral
purposes and amps) and its payloads in each OCPP version, both ways."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from csms.core.ocpp.outbound import BY_VERSION, calls_or_newest
from csms.core.ocpp.outbound.calls import STATION_MAX, TX, TX_DEFAULT
from csms.core.services.smart_charging.phases import INF
from csms.core.services.smart_charging.schedules import Periods
from csms.core.timeutil import ocpp_ts, parse_ts

# Version-neutral purposes (STATION_MAX, TX_DEFAULT, TX) and their names per protocol version.
PURPOSE_NAMES = {version: calls.purpose_names for version, calls in BY_VERSION.items()}
_PURPOSE_CODES = {STATION_MAX: 1, TX_DEFAULT: 2, TX: 3}
_CODE_PURPOSES = {v: k for k, v in _PURPOSE_CODES.items()}


@dataclass(frozen=True)
class Planned:
    """A profile the loop wants a station to hold (limits in A per phase)."""

    station_id: str
    evse_id: int
    purpose: str  # station_max|tx_default|tx
    periods: Periods
    number_phases: int | None = None
    transaction_id: str | None = None
    bidirectional: bool = False  # a V2X EV (2.1): periods carry an operation mode, below 0 a discharge setpoint

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.station_id, self.evse_id, self.purpose)


def profile_id_for(base: int, evse_id: int, purpose: str) -> int:
    """The id of the loop's profile for an EVSE and purpose: base + 10 × EVSE id + purpose code."""
    return base + 10 * evse_id + _PURPOSE_CODES[purpose]


def purpose_of(profile_id: int, base: int) -> str | None:
    """The purpose a profile id of the loop stands for (None: not one of the loop's)."""
    return _CODE_PURPOSES.get((profile_id - base) % 10)


def build_profile(version: str, plan: Planned, *, profile_id: int, stack_level: int, unit: str = "A",
                  voltage_v: float = 230.0) -> dict[str, Any]:
    """The ``csChargingProfiles`` (1.6) or ``chargingProfile`` (2.0.1, 2.1) for a planned limit: the
    schedule here, its profile by the adapter of ``version`` (the newest version's for one not
    known). A ``bidirectional`` plan (only ever one for a 2.1 station) gets the 2.1 V2X fields
    (:func:`v2x_fields`)."""
    start = plan.periods[0][0]
    phases = plan.number_phases
    periods = []
    previous = INF
    for when, amps in plan.periods:
        limit = amps if unit == "A" else float(math.trunc(amps * voltage_v * (phases or 3)))  # toward 0
        offset = (when - start).total_seconds()
        # whole seconds: a fall takes effect no later, a rise no earlier than planned
        offset = math.ceil(offset) if amps > previous else math.floor(offset)
        previous = amps
        period: dict[str, Any] = {"startPeriod": int(offset), "limit": max(0.0, limit)}
        if phases is not None:
            period["numberPhases"] = phases
        if plan.bidirectional:
            period.update(v2x_fields(limit, unit, phases))
        periods.append(period)
    schedule: dict[str, Any] = {"startSchedule": ocpp_ts(start), "chargingRateUnit": unit,
                                "chargingSchedulePeriod": periods}
    return calls_or_newest(version).charging_profile(
        profile_id=profile_id, stack_level=stack_level, purpose=plan.purpose, schedule=schedule,
        transaction_id=plan.transaction_id if plan.purpose == TX else None)


def v2x_fields(limit: float, unit: str, phases: int | None) -> dict[str, Any]:
    """The OCPP 2.1 fields of a V2X period: ``ChargingOnly`` up to a limit at or above 0, else a
    ``CentralSetpoint`` discharging at ``limit`` (below 0) and no more (``dischargeLimit``), with
    ``limit`` 0 so that it never charges. In amps the values are per phase: with more than one
    phase, L2 and L3 are given too (else a setpoint is the sum of all phases)."""
    if limit >= 0:
        return {"operationMode": "ChargingOnly"}
    fields: dict[str, Any] = {"operationMode": "CentralSetpoint", "setpoint": limit, "dischargeLimit": limit}
    if unit == "A" and (phases or 3) > 1:
        for name in ("setpoint", "dischargeLimit"):
            fields[f"{name}_L2"] = fields[f"{name}_L3"] = limit
    return fields


def schedule_update(amps: float, *, unit: str, voltage_v: float, phases: int | None,
                    bidirectional: bool) -> dict[str, Any]:
    """A 2.1 ChargingScheduleUpdateType (the answer to PullDynamicScheduleUpdate) for ``amps``
    per phase: the limit in ``unit``, and for a V2X EV the setpoint and discharge limit of a
    discharge (the update has no operation mode: the profile's stays)."""
    limit = amps if unit == "A" else float(math.trunc(amps * voltage_v * (phases or 3)))
    update: dict[str, Any] = {"limit": max(0.0, limit)}
    if bidirectional and limit < 0:
        update.update({k: v for k, v in v2x_fields(limit, unit, phases).items() if k != "operationMode"})
    return update


def period_amps(period: dict[str, Any], unit: str, voltage_v: float) -> float:
    """Amps per phase a stored period stands for: its limit, or its setpoint when it is a
    central setpoint (V2X; below 0 a discharge)."""
    phases = period.get("numberPhases") or 3
    value = float(period["setpoint"] if period.get("operationMode") == "CentralSetpoint" and "setpoint" in period
                  else period["limit"])
    if unit == "A":
        return value
    return value / (voltage_v * phases)


def planned_from_payload(station_id: str, evse_id: int, purpose: str, profile: dict[str, Any],
                         sent_at: datetime, voltage_v: float = 230.0) -> Planned | None:
    """A stored profile (either version) back as limits in amps."""
    try:
        schedule = profile["chargingSchedule"]
        schedule = schedule[0] if isinstance(schedule, list) else schedule
        start = parse_ts(schedule.get("startSchedule")) or sent_at
        unit = schedule.get("chargingRateUnit", "A")
        periods = []
        phases = None
        bidirectional = False
        for p in schedule["chargingSchedulePeriod"]:
            phases = p.get("numberPhases", phases)
            bidirectional = bidirectional or "operationMode" in p
            periods.append((start + timedelta(seconds=int(p["startPeriod"])), period_amps(p, unit, voltage_v)))
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    if not periods:
        return None
    tx = profile.get("transactionId")
    return Planned(station_id, evse_id, purpose, tuple(periods), number_phases=phases,
                   transaction_id=None if tx is None else str(tx), bidirectional=bidirectional)


def composite_limit_a(version: str, answer: dict[str, Any], voltage_v: float) -> float | None:
    """The limit at the start of a GetCompositeSchedule answer, in A per phase."""
    if answer.get("status") != "Accepted":
        return None
    schedule = calls_or_newest(version).composite_schedule(answer)
    if not schedule or not schedule.get("chargingSchedulePeriod"):
        return None
    first = min(schedule["chargingSchedulePeriod"], key=lambda p: p["startPeriod"])
    limit = float(first["limit"])
    if schedule.get("chargingRateUnit") == "W":
        limit /= voltage_v * (first.get("numberPhases") or 3)
    return limit
