"""An EV's charging schedule (ISO 15118, 2.0.1 NotifyEVChargingSchedule) against the limits the
CSMS sent for its EVSE (K15.FR.12, K16.FR.07, K17.FR.12).

The limits are the charging profiles the CSMS sent and the station accepted (the
``charging_profile`` rows of source ``csms``, from the smart-charging loop and from operators
alike), the latest of each kind that applies: the ``TxProfile`` of the transaction on the EVSE
(without one, the ``TxDefaultProfile`` of the EVSE, else of EVSE 0) and the
``ChargingStationMaxProfile``. At every moment of the EV's schedule its limit must not exceed the
lowest of them. Limits in A and W are compared as power: A × the site's voltage (230 V without a
site) × the period's ``numberPhases`` (3 when absent, as OCPP says). A profile limits from its
start (``startSchedule``, the transaction's start for a ``Relative`` one, else when it was sent)
for its ``duration``, within its ``validFrom``/``validTo``; recurrence is not unrolled (the
schedule as sent is compared).

OCPP 2.1 V2X: an EV's schedule that discharges (a ``limit``, ``setpoint`` or ``dischargeLimit``
below 0) must also stay within the discharge the transaction's profile allows (its
``dischargeLimit``; none allowed without one, as in every 2.0.1 profile).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from csms.core.tables import ChargingProfile, Station
from csms.core.timeutil import ocpp_ts, parse_ts

if TYPE_CHECKING:
    from csms.core.services.sessions import SessionService
    from csms.core.services.stations import StationState

DEFAULT_VOLTAGE_V = 230.0
TOLERANCE_W = 1.0  # rounding of a limit converted between A and W


class HasSessions(Protocol):
    """What :func:`check` needs of its caller's core: the live sessions."""

    @property
    def sessions(self) -> SessionService: ...


# (start, end or None, [(from, watts)]): a schedule as power over time
Steps = tuple[datetime, datetime | None, list[tuple[datetime, float]]]


def _watts(value: float, unit: str, voltage_v: float, phases: int) -> float:
    return value if unit == "W" else value * voltage_v * phases


def _discharge_w(period: dict[str, Any], unit: str, voltage_v: float, *, allowed: bool) -> float:
    """Watts of discharge in a period (2.1 V2X): what it allows (``allowed``: its
    ``dischargeLimit``, 0 without one) or what the EV plans (the lowest of its ``limit``,
    ``setpoint`` and ``dischargeLimit`` below 0). In amps a ``dischargeLimit`` or ``setpoint``
    is per phase when L2 and L3 are given, else the sum of the phases."""
    phases = period.get("numberPhases") or 3
    values = []
    for key in ("dischargeLimit",) if allowed else ("limit", "setpoint", "dischargeLimit"):
        if key in period:
            per_phase = key == "limit" or f"{key}_L2" in period
            values.append(_watts(float(period[key]), unit, voltage_v, phases if per_phase else 1))
    return max(0.0, -min(values, default=0.0))


def power_steps(schedule: dict[str, Any], base: datetime, voltage_v: float, *, valid_from: datetime | None = None,
                valid_to: datetime | None = None, discharge: str | None = None) -> Steps:
    """A charging schedule from ``base`` as power over time, limiting only within its duration
    and the profile's validity. ``discharge``: the watts of discharge instead (``"allowed"`` by
    a profile the CSMS sent, ``"planned"`` by an EV), see :func:`_discharge_w`."""
    unit = schedule.get("chargingRateUnit", "A")
    points = []
    for period in sorted(schedule["chargingSchedulePeriod"], key=lambda p: p["startPeriod"]):
        if discharge is not None:
            watts = _discharge_w(period, unit, voltage_v, allowed=discharge == "allowed")
        elif "limit" in period:
            watts = _watts(float(period["limit"]), unit, voltage_v, period.get("numberPhases") or 3)
        else:  # a 2.1 period without a limit (a setpoint only): what it plans, no limit it sets
            watts = _watts(float(period["setpoint"]), unit, voltage_v, 1) if "setpoint" in period else math.inf
        points.append((base + timedelta(seconds=int(period["startPeriod"])), watts))
    duration = schedule.get("duration")
    end = None if duration is None else base + timedelta(seconds=int(duration))
    if valid_to is not None and (end is None or valid_to < end):
        end = valid_to
    return max(base, valid_from) if valid_from is not None else base, end, points


def _at(steps: Steps, when: datetime) -> float:
    """The power a schedule allows at ``when`` (no limit outside it)."""
    start, end, points = steps
    if when < start or (end is not None and when >= end):
        return math.inf
    value = math.inf
    for t, watts in points:
        if t <= when:
            value = watts
    return value


def _excess(ev: Steps, limits: list[tuple[str, Steps]]) -> tuple[datetime, float, str, float] | None:
    """The first moment the EV's steps go above the lowest of ``limits``: (when, wanted, purpose, allowed)."""
    start, end, points = ev
    moments = {t for t, _ in points} | {start}
    for _, (s, e, pts) in limits:
        moments |= {s} | {t for t, _ in pts} | ({e} if e is not None else set())
    for when in sorted(m for m in moments if m >= start and (end is None or m < end)):
        wanted = _at(ev, when)
        for purpose, steps in limits:
            allowed = _at(steps, when)
            if wanted > allowed + TOLERANCE_W:
                return when, wanted, purpose, allowed
    return None


def exceeded(ev_schedule: dict[str, Any], time_base: datetime, limits: list[tuple[str, Steps]],
             voltage_v: float, discharge_limits: list[tuple[str, Steps]] | None = None) -> str | None:
    """Where the EV's schedule goes above the lowest limit, or discharges more than the lowest
    discharge limit (2.1 V2X; ``discharge_limits``), as a short text; or None."""
    found = _excess(power_steps(ev_schedule, time_base, voltage_v), limits)
    if found is not None:
        when, wanted, purpose, allowed = found
        return f"{wanted:.0f} W at {ocpp_ts(when)} exceeds the {purpose} limit of {allowed:.0f} W"
    if discharge_limits:
        found = _excess(power_steps(ev_schedule, time_base, voltage_v, discharge="planned"), discharge_limits)
        if found is not None:
            when, wanted, purpose, allowed = found
            return (f"discharging {wanted:.0f} W at {ocpp_ts(when)} exceeds the {purpose} discharge limit "
                    f"of {allowed:.0f} W")
    return None


async def check(core: HasSessions, state: StationState, *, evse_id: int, schedule: dict[str, Any],
                time_base: datetime) -> str | None:
    """Why the EV's ``schedule`` exceeds what the CSMS sent for ``evse_id`` (None: it does not)."""
    station = await Station.select(Station.site.voltage_v.as_alias("voltage_v")).where(
        Station.id == state.pk).first()
    voltage_v = float((station or {}).get("voltage_v") or DEFAULT_VOLTAGE_V)
    rows = await ChargingProfile.select(
        ChargingProfile.evse_id, ChargingProfile.purpose, ChargingProfile.kind, ChargingProfile.transaction_id,
        ChargingProfile.payload, ChargingProfile.sent_at,
    ).where((ChargingProfile.station == state.pk) & (ChargingProfile.source == "csms")
            # Pending: sent, its answer not in yet (the EV may already have it)
            & ChargingProfile.status.is_in(["Accepted", "Pending"]) & ChargingProfile.cleared_at.is_null()
            & ChargingProfile.evse_id.is_in([0, evse_id])
            ).order_by(ChargingProfile.id, ascending=False).output(load_json=True)
    session = core.sessions.on_evse(state.station_id, evse_id)

    def latest(purpose: str, evse: int, transaction_id: str | None = None) -> dict[str, Any] | None:
        return next((r for r in rows if r["purpose"] == purpose and r["evse_id"] == evse
                     and (transaction_id is None or r["transaction_id"] == transaction_id)), None)

    chosen = [("ChargingStationMaxProfile", latest("ChargingStationMaxProfile", 0))]
    tx = latest("TxProfile", evse_id, session.transaction_id) if session is not None else None
    if tx is not None:
        chosen.append(("TxProfile", tx))
    else:
        chosen.append(("TxDefaultProfile", latest("TxDefaultProfile", evse_id) or latest("TxDefaultProfile", 0)))
    limits: list[tuple[str, Steps]] = []
    discharge_limits: list[tuple[str, Steps]] = []
    for purpose, row in chosen:
        if row is None:
            continue
        profile = row["payload"]
        # a 2.0.1 profile's further schedules are alternatives offered for ISO 15118, not limits; a
        # dict is a 1.6 profile (stored before the station changed its protocol version)
        sent = profile.get("chargingSchedule") or [{}]
        sent = sent[0] if isinstance(sent, list) else sent
        if not sent.get("chargingSchedulePeriod"):
            continue
        if row["kind"] == "Relative":
            base = session.started_at if session is not None else row["sent_at"]
        else:
            base = parse_ts(sent.get("startSchedule")) or row["sent_at"]
        valid_from, valid_to = parse_ts(profile.get("validFrom")), parse_ts(profile.get("validTo"))
        limits.append((purpose, power_steps(sent, base, voltage_v, valid_from=valid_from, valid_to=valid_to)))
        if purpose != "ChargingStationMaxProfile":  # the transaction's limit says whether it may discharge
            discharge_limits.append((purpose, power_steps(sent, base, voltage_v, valid_from=valid_from,
                                                          valid_to=valid_to, discharge="allowed")))
    return exceeded(schedule, time_base, limits, voltage_v, discharge_limits)
