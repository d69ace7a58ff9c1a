"""External charging limits (OCPP 2.0.1 K11–K14, 2.1 the same): a limit set on a station by
something other than this CSMS (an energy management system, the grid operator, a local
controller) that the station tells with ``NotifyChargingLimit`` and withdraws with
``ClearedChargingLimit``.

The station enforces such a limit itself; the smart-charging loop takes it into account so that
what the limited car cannot use goes to the others. A limit with a schedule is kept as a
``charging_profile`` row of source ``external`` (purpose ``ChargingStationExternalConstraints``,
the ``chargingLimitSource`` as its status, the schedules and ``isGridCritical`` as its payload);
a new notification of the same source and EVSE replaces it, a clearing ends it (``cleared_at``).
A notification without a schedule says only that a limit exists: nothing is kept to allocate by.

In a round, the limit in force at that moment caps the loads it concerns: one of an EVSE the
load on that EVSE (like a plugin's ``session_limit``), one of EVSE 0 the station's node in the
site's tree (its connectors share it). Amps are per phase; a limit in W becomes amps per phase at
the site's voltage over the period's ``numberPhases`` (3 when absent, as OCPP says). A schedule
applies from its ``startSchedule`` (else from when it was told) for its ``duration``; outside it
the schedule limits nothing. The lowest limit in force wins where several apply.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from csms.core.tables import ChargingProfile
from csms.core.timeutil import parse_ts, utcnow

SOURCE = "external"
PURPOSE = "ChargingStationExternalConstraints"


async def store(station_pk: int, *, evse_id: int, limit_source: str, grid_critical: bool | None,
                schedules: list[dict[str, Any]] | None) -> None:
    """A station's ``NotifyChargingLimit``: the limit of ``limit_source`` on ``evse_id`` (0: the
    station) replaces the one it told before; kept only with a schedule."""
    now = utcnow()
    db = ChargingProfile._meta.db
    async with db.transaction():
        await ChargingProfile.update({ChargingProfile.cleared_at: now}).where(
            (ChargingProfile.station == station_pk) & (ChargingProfile.source == SOURCE)
            & (ChargingProfile.evse_id == evse_id) & (ChargingProfile.status == limit_source[:16])
            & ChargingProfile.cleared_at.is_null())
        if schedules:
            await ChargingProfile(
                station=station_pk, evse_id=evse_id, profile_id=0, stack_level=0, purpose=PURPOSE,
                kind="Absolute", payload={"chargingSchedule": schedules, "isGridCritical": grid_critical},
                source=SOURCE, status=limit_source[:16], sent_at=now).save()


async def clear(station_pk: int, *, evse_id: int | None, limit_source: str) -> None:
    """A station's ``ClearedChargingLimit``: the limit of ``limit_source`` ends, on ``evse_id``
    or, without one, on the whole station."""
    where = ((ChargingProfile.station == station_pk) & (ChargingProfile.source == SOURCE)
             & (ChargingProfile.status == limit_source[:16]) & ChargingProfile.cleared_at.is_null())
    if evse_id is not None:
        where = where & (ChargingProfile.evse_id == evse_id)
    await ChargingProfile.update({ChargingProfile.cleared_at: utcnow()}).where(where)


def limit_at(schedule: dict[str, Any], told_at: datetime, now: datetime, voltage_v: float) -> float | None:
    """Amps per phase one charging schedule allows at ``now`` (None: it limits nothing then)."""
    periods = sorted(schedule.get("chargingSchedulePeriod") or [], key=lambda p: p.get("startPeriod", 0))
    if not periods:
        return None
    start = parse_ts(schedule.get("startSchedule")) or told_at.replace(microsecond=0)  # rounds run on whole seconds
    elapsed = (now - start).total_seconds()
    duration = schedule.get("duration")
    if elapsed < 0 or (duration is not None and now >= start + timedelta(seconds=duration)):
        return None
    current = None
    for period in periods:
        if period.get("startPeriod", 0) <= elapsed:
            current = period
    if current is None:
        return None
    limit = float(current["limit"])
    if schedule.get("chargingRateUnit") == "W":
        limit = limit / (voltage_v * (current.get("numberPhases") or 3))
    return max(0.0, limit)


async def limits_now(station_pks: list[int], now: datetime, voltage_v: float) -> dict[tuple[int, int], float]:
    """(station pk, EVSE id) → the lowest external limit in force at ``now``, amps per phase
    (EVSE 0: the station as a whole)."""
    if not station_pks:
        return {}
    rows = await ChargingProfile.select(ChargingProfile.station, ChargingProfile.evse_id, ChargingProfile.payload,
                                        ChargingProfile.sent_at).where(
        ChargingProfile.station.is_in(station_pks) & (ChargingProfile.source == SOURCE)
        & ChargingProfile.cleared_at.is_null()).output(load_json=True)
    out: dict[tuple[int, int], float] = {}
    for row in rows:
        for schedule in (row["payload"] or {}).get("chargingSchedule") or []:
            limit = limit_at(schedule, row["sent_at"], now, voltage_v)
            if limit is not None:
                key = (row["station"], row["evse_id"] or 0)
                out[key] = min(limit, out.get(key, limit))
    return out
