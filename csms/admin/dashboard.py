"""The dashboard: fleet status, sessions, power and energy, recent events, updated live."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Any

from litestar import Request, get
from litestar.response import ServerSentEvent, Template
from piccolo.query.functions.aggregate import Sum

from csms.admin.templating import render
from csms.api.tenancy import SCOPED, Scope, restrict, restrict_station_ids, tenant_scope, visible_station_ids
from csms.core.tables import ChargingSession, Connector, Station, StationEvent

OWN = {"tenant": SCOPED}


def _month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


async def _energy_since(start: datetime, scope: Scope) -> float:
    row = await restrict(ChargingSession.select(Sum(ChargingSession.energy_wh, alias="wh")),
                         ChargingSession.station.organization, scope).where(ChargingSession.started_at >= start).first()
    return float((row or {}).get("wh") or 0.0)


async def fleet_stats(request: Request) -> dict[str, Any]:
    """Figures of the dashboard (of the caller's organizations). Energy counts sessions by their
    start, in UTC days and months."""
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
    now = datetime.now(timezone.utc)
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
        "energy_today_wh": await _energy_since(now.replace(hour=0, minute=0, second=0, microsecond=0), scope),
        "energy_month_wh": await _energy_since(_month_start(now), scope),
    }


async def recent_events(scope: Scope, limit: int = 12) -> list[dict[str, Any]]:
    query = restrict_station_ids(StationEvent.select(), StationEvent.station_id, await visible_station_ids(scope))
    return await query.order_by(StationEvent.id, ascending=False).limit(limit)


@get("/", name="admin:dashboard", include_in_schema=False, opt=OWN)
async def dashboard(request: Request) -> Template:
    hub = request.app.state.admin_hub
    scope = await tenant_scope(request)
    return await render(request, "dashboard.html", title="Dashboard", panel_page="dashboard",
                        stats=await fleet_stats(request), events=await recent_events(scope), show_station=True,
                        # the sampled history is the installation's total: an organization's starts now
                        power=[[t, w] for t, w in hub.power] if scope.is_global else [])


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
