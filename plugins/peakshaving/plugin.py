"""The peak-shaving plugin (entry point ``peakshaving``): a ``site_capacity`` from recurring
schedules, an external signal and price-aware shifting. See ``README.md``."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from csms.plugin_api import N_, CapacitySchedule, ChargingSession, Load, PlanFeature, call_hook, feature_enabled, hookimpl
from plugins.peakshaving.capacity import Signal, Window, capacity_schedule, parse_days, parse_hhmm
from plugins.peakshaving.config import PeakShavingSettings
from plugins.peakshaving.prices import energy_price_at, tariff_json
from plugins.peakshaving.shifting import Demand, shifted_schedule, slot_starts
from plugins.peakshaving.tables import PeakShavingSignal, PeakShavingSite, PeakShavingSchedule

log = logging.getLogger("csms.peakshaving")

INF = math.inf
SETTINGS_CLASSES = (PeakShavingSettings,)
PEAK_SHAVING = "peak_shaving"  # the plan feature: sites of organizations without it are not shaved

# Tariff JSON per session id: a session's tariff is chosen once, at its start.
_tariffs: dict[int, dict[str, Any] | None] = {}


def _limits(row: dict[str, Any]) -> tuple[float, float, float]:
    return tuple(INF if row[k] is None else float(row[k]) for k in ("limit_l1_a", "limit_l2_a", "limit_l3_a"))  # type: ignore[return-value]


def site_timezone(site: dict[str, Any]) -> ZoneInfo | timezone:
    try:
        return ZoneInfo(site.get("timezone") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


async def schedules_of(site_id: int) -> list[Window]:
    out = []
    for row in await PeakShavingSchedule.select().where(PeakShavingSchedule.site == site_id):
        try:
            out.append(Window(parse_days(row["days"]), parse_hhmm(row["start_time"]), parse_hhmm(row["end_time"]),
                              _limits(row)))
        except ValueError as exc:
            log.warning("peak-shaving schedule %s of site %s is ignored: %s", row["id"], site_id, exc)
    return out


async def signal_of(site_id: int) -> Signal | None:
    row = await PeakShavingSignal.select().where(PeakShavingSignal.site == site_id).first()
    return None if row is None else Signal(_limits(row), row["until"])


async def site_settings(site_id: int) -> dict[str, Any]:
    """The site's shifting settings, with the environment's defaults filled in."""
    env = PeakShavingSettings()
    row = await PeakShavingSite.select().where(PeakShavingSite.site == site_id).first() or {}
    return {
        "price_shifting": row.get("price_shifting", True),
        "default_departure_h": row.get("default_departure_h") or env.default_departure_h,
        "default_energy_wh": row.get("default_energy_wh") if row.get("default_energy_wh") is not None
        else env.default_energy_wh,
    }


async def _tariff_of(load: Load) -> dict[str, Any] | None:
    if load.session_id not in _tariffs:
        session = await ChargingSession.select(
            ChargingSession.all_columns(), ChargingSession.station.station_id.as_alias("station_id"),
        ).where(ChargingSession.id == load.session_id).first()
        answer = await call_hook("select_tariff", session=session) if session is not None else None
        _tariffs[load.session_id] = tariff_json(answer)
    return _tariffs[load.session_id]


async def demands(loads: list[Load], bounds: list[datetime], settings: dict[str, Any], tz: Any) -> list[Demand]:
    out = []
    for load in loads:
        tariff = await _tariff_of(load)
        prices = tuple(None if tariff is None else _float(energy_price_at(tariff, t, tz)) for t in bounds[:-1])
        energy = load.energy_wh_needed
        if energy is None and settings["default_energy_wh"] is not None:
            energy = max(0.0, settings["default_energy_wh"] - load.energy_wh)
        out.append(Demand(load.id, tuple(load.phases), load.max_a, energy, _departure(load, settings), prices))
    return out


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _departure(load: Load, settings: dict[str, Any]) -> datetime:
    if load.departure_at is not None:
        return load.departure_at
    started = load.started_at or datetime.now(timezone.utc)
    return started + timedelta(hours=settings["default_departure_h"])


async def site_capacity_for(site: dict[str, Any], now: datetime, loads: list[Load]) -> CapacitySchedule | None:
    """Schedules, signal and grid limit, then shifting for the given loads (see the README)."""
    env = PeakShavingSettings()
    tz = site_timezone(site)
    grid = tuple(INF if site.get(k) is None else float(site[k])
                 for k in ("grid_limit_l1_a", "grid_limit_l2_a", "grid_limit_l3_a"))
    horizon = timedelta(hours=env.horizon_h)
    base = capacity_schedule(await schedules_of(site["id"]), await signal_of(site["id"]), grid, tz, now,  # type: ignore[arg-type]
                             horizon)
    settings = await site_settings(site["id"])
    if not loads or not settings["price_shifting"]:
        return base
    live = {load.session_id for load in loads}
    for session_id in [s for s in _tariffs if s not in live]:
        _tariffs.pop(session_id, None)
    last = min(max(_departure(load, settings) for load in loads), now + horizon)
    if last <= now:
        return base
    bounds = slot_starts(now, last, timedelta(minutes=env.slot_minutes),
                         [_departure(load, settings) for load in loads]
                         + ([p.start for p in base.periods] if base is not None else []))
    caps = [base.at(t) if base is not None else grid for t in bounds[:-1]]
    voltage = float(site.get("voltage_v") or 230.0)
    shifted = shifted_schedule(bounds, caps, await demands(loads, bounds, settings, tz), voltage)  # type: ignore[arg-type]
    if shifted is None:
        return base
    return shifted if base is None else CapacitySchedule.minimum([base, shifted])


@hookimpl
def piccolo_apps():
    return ["plugins.peakshaving.piccolo_app"]


@hookimpl
def startup(app, settings):
    _tariffs.clear()  # what an earlier server in this process knew is not about this database


@hookimpl
def register_routes(settings):
    from plugins.peakshaving.api import PeakShavingController

    return [PeakShavingController]


@hookimpl
def locale_dirs():
    return [str(Path(__file__).parent / "locale")]


@hookimpl
def plan_features():
    return [PlanFeature(PEAK_SHAVING, N_("Peak shaving"))]


@hookimpl
def site_capacity(site, now):
    """The lowest of the site's schedules and signal, shaped to shift energy to cheaper periods;
    no answer for a site whose organization's plan does not include peak shaving."""

    async def answer() -> CapacitySchedule | None:
        from csms.plugin_api import get_core

        if not await feature_enabled(site.get("organization"), PEAK_SHAVING):
            return None
        loads = [] if site.get("simulation") else get_core().smart_charging.loads_of(site["id"])
        return await site_capacity_for(site, now, loads)

    return answer
