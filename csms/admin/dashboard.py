"""The dashboard: fleet status, sessions, power and energy, recent events, updated live."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

from litestar import Request, get
from litestar.response import Redirect, ServerSentEvent, Template
from piccolo.query.functions.aggregate import Sum

from csms.admin.templating import as_datetime, local_day_start, render, viewer_zone
from csms.api.tenancy import SCOPED, Scope, restrict, restrict_station_ids, tenant_scope, visible_station_ids
from csms.core.offload import run_cpu
from csms.core.services.sessions import ENERGY_REGISTER, POWER
from csms.core.tables import ChargingSession, Connector, MeterValue, Station, StationEvent
from csms.i18n import gettext

OWN = {"tenant": SCOPED}




async def _energy_since(start: datetime, scope: Scope) -> float:
    row = await restrict(ChargingSession.select(Sum(ChargingSession.energy_wh, alias="wh")),
                         ChargingSession.station.organization, scope).where(ChargingSession.started_at >= start).first()
    return float((row or {}).get("wh") or 0.0)


async def fleet_stats(request: Request) -> dict[str, Any]:
    """Figures of the dashboard (of the caller's organizations). Energy counts sessions by their
    start, in the days and months of the viewer's time zone."""
    scope = await tenant_scope(request)
    stations = await restrict(Station.select(Station.id, Station.connected, Station.status,
                                             Station.registration_status), Station.organization, scope)
    connectors = await restrict(Connector.select(Connector.station, Connector.status),
                                Connector.station.organization, scope)
    online = {s["id"] for s in stations if s["connected"]}
    faulted = {s["id"] for s in stations if s["status"] == "Faulted"}
    faulted |= {c["station"] for c in connectors if c["status"] == "Faulted"}
    by_status = Counter(c["status"] if c["station"] in online else "Offline" for c in connectors)
    order = ["Available", "Occupied", "Charging", "Preparing", "SuspendedEV", "SuspendedEVSE", "Finishing",
             "Reserved", "Unavailable", "Faulted", "Unknown", "Offline"]
    connector_rows = sorted(by_status.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else 99, kv[0]))
    active, watts = await request.app.state.admin_hub.totals(scope)
    today = datetime.now(viewer_zone()).date()
    return {
        "stations_total": len(stations),
        "stations_online": len(online),
        "stations_offline": len(stations) - len(online),
        "stations_faulted": len(faulted),
        "stations_pending": sum(1 for s in stations if s["registration_status"] == "Pending"),
        "connectors": connector_rows,
        "connectors_total": len(connectors),
        "active_sessions": active,
        "power_w": watts,
        "energy_today_wh": await _energy_since(local_day_start(today), scope),
        "energy_month_wh": await _energy_since(local_day_start(today.replace(day=1)), scope),
    }


HISTORY_SECONDS = 3600
HISTORY_STEP = 60  # one point a minute
STALE_SECONDS = 900  # a session's last sample counts this long (stations sample every 1-15 min)


def power_points(rows: list[dict[str, Any]], stops: dict[int, float | None], now: float) -> list[list[float]]:
    """Total charging power, one ``[t, W]`` a minute over the last hour, from stored samples.

    Each session counts with its latest power sample (``Power.Active.Import`` without a phase,
    W or kW) at or before the minute, else with the power its energy register rose at; a
    session counts until it stopped, and not longer than ``STALE_SECONDS`` after its last sample.
    No database access: the caller reads the rows."""
    by_session: dict[int, dict[str, list[tuple[float, float]]]] = {}
    for r in rows:
        when = as_datetime(r["timestamp"])
        if when is None or r["phase"]:
            continue
        factor = 1000.0 if (r["unit"] or "").lower().startswith("k") else 1.0
        kind = "power" if r["measurand"] == POWER else "energy"
        by_session.setdefault(r["session"], {"power": [], "energy": []})[kind].append(
            (when.timestamp(), float(r["value"]) * factor))
    points: dict[int, list[tuple[float, float]]] = {}
    for session, samples in by_session.items():
        if samples["power"]:
            points[session] = sorted(samples["power"])
            continue
        energy = sorted(samples["energy"])
        points[session] = [(t1, max(0.0, (e1 - e0) * 3600 / (t1 - t0)))
                           for (t0, e0), (t1, e1) in zip(energy, energy[1:]) if t1 > t0]
    start = now - HISTORY_SECONDS
    out: list[list[float]] = []
    cursors = {s: 0 for s in points}
    t = start - start % HISTORY_STEP + HISTORY_STEP
    while t <= now:
        total = 0.0
        for session, series in points.items():
            i = cursors[session]
            while i < len(series) and series[i][0] <= t:
                i += 1
            cursors[session] = i
            stopped = stops.get(session)
            if i and t - series[i - 1][0] <= STALE_SECONDS and (stopped is None or t <= stopped):
                total += series[i - 1][1]
        out.append([t, round(total, 1)])
        t += HISTORY_STEP
    return out


async def power_history(scope: Scope) -> list[list[float]]:
    """The last hour of total power of the caller's stations, rebuilt from the stored meter values
    (so it survives a restart and is the same on every node): one query for the sessions that ran
    in the hour, one for their samples of the hour, the arithmetic in the CPU pool."""
    now = datetime.now(timezone.utc)
    since = now - timedelta(seconds=HISTORY_SECONDS + STALE_SECONDS)
    sessions = await restrict(ChargingSession.select(ChargingSession.id, ChargingSession.stopped_at),
                              ChargingSession.station.organization, scope).where(
        (ChargingSession.started_at <= now)
        & ((ChargingSession.stopped_at.is_null()) | (ChargingSession.stopped_at >= now - timedelta(seconds=HISTORY_SECONDS))))
    if not sessions:
        return await run_cpu(power_points, [], {}, now.timestamp())
    stops = {r["id"]: (as_datetime(r["stopped_at"]).timestamp() if r["stopped_at"] else None)  # type: ignore[union-attr]
             for r in sessions}
    rows = await MeterValue.select(MeterValue.session, MeterValue.timestamp, MeterValue.measurand, MeterValue.phase,
                                   MeterValue.unit, MeterValue.value).where(
        MeterValue.session.is_in(list(stops)) & (MeterValue.timestamp >= since)
        & MeterValue.measurand.is_in([POWER, ENERGY_REGISTER])).order_by(MeterValue.timestamp).limit(200_000)
    return await run_cpu(power_points, rows, stops, now.timestamp())


async def recent_events(scope: Scope, limit: int = 12) -> list[dict[str, Any]]:
    query = restrict_station_ids(StationEvent.select(), StationEvent.station_id, await visible_station_ids(scope))
    return await query.order_by(StationEvent.id, ascending=False).limit(limit)


@get("/", name="admin:dashboard", include_in_schema=False, opt=OWN)
async def dashboard(request: Request) -> Template:
    scope = await tenant_scope(request)
    return await render(request, "dashboard.html", title=gettext("Dashboard"), panel_page="dashboard",
                        stats=await fleet_stats(request), events=await recent_events(scope), show_station=True,
                        power=await power_history(scope))


@get("/admin", include_in_schema=False, opt=OWN)
async def admin_home() -> Redirect:
    """``/admin`` (what an operator types) is the dashboard."""
    return Redirect("/")


@get("/admin/dashboard/stats", include_in_schema=False, opt=OWN)
async def dashboard_stats(request: Request) -> Template:
    return await render(request, "_dashboard_stats.html", stats=await fleet_stats(request))


@get("/admin/dashboard/events", include_in_schema=False, opt=OWN)
async def dashboard_events(request: Request) -> Template:
    return await render(request, "_events.html", events=await recent_events(await tenant_scope(request)),
                        show_station=True)


@get("/admin/stream", include_in_schema=False, opt=OWN)
async def stream(request: Request) -> ServerSentEvent:
    """The live stream every admin page listens to (htmx-ext-sse): events of the caller's
    stations only, and their power."""
    return request.app.state.admin_hub.response(await tenant_scope(request))
