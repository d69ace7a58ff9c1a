"""A dry run: how a site's capacity would be shared among cars described by hand; nothing is sent."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from csms.core.domain import CapacityPeriod, CapacitySchedule, Load
from csms.core.services.smart_charging.allocation import allocate, enforce_limits
from csms.core.services.smart_charging.phases import PHASES, finite_a, grid_phases
from csms.core.services.smart_charging.rounds import SiteModel
from csms.core.timeutil import ocpp_ts


async def dry_run(model: SiteModel, cars: list[dict[str, Any]], *, capacity_a: list[float] | None, now: datetime,
                  default_max_current_a: float) -> dict[str, Any]:
    """How ``model``'s capacity (or ``capacity_a``) would be shared among ``cars``.

    ``model`` is built with every station reachable and nothing reserved. Each car: ``id``,
    ``station_id`` (optional: hang it under that station, else under the grid connection),
    ``phases`` (a count of station phases, or a list of grid phases), ``max_current_a``,
    ``min_current_a``, ``measured_a``, ``priority``. Raises ValueError.
    """
    site_id = model.topology.site_id
    if capacity_a is not None:
        if len(capacity_a) != 3 or any(v is None or v < 0 for v in capacity_a):
            raise ValueError("capacity_a must be three amps >= 0")
        capacity = CapacitySchedule((CapacityPeriod(now, tuple(float(v) for v in capacity_a)),))  # type: ignore[arg-type]
    else:
        capacity = model.capacity
    topology = model.topology
    loads = []
    seen: set[str] = set()
    for i, car in enumerate(cars):
        car_id = str(car.get("id") or f"car{i + 1}")
        if car_id in seen:
            raise ValueError(f"two cars are called {car_id!r}")
        seen.add(car_id)
        sid = car.get("station_id")
        station = model.stations.get(sid) if sid else None
        if sid and station is None:
            raise ValueError(f"station {sid!r} is not at site {site_id}")
        phases = car.get("phases", 3)
        if isinstance(phases, int):
            if not 1 <= phases <= 3:
                raise ValueError(f"{car_id}: phases is 1, 2 or 3, or a list of grid phases")
            own = tuple(range(1, phases + 1))
            grid = grid_phases(station["phase_rotation"], own) if station else own
        else:
            grid = tuple(sorted(set(phases)))
            if not grid or any(p not in PHASES for p in grid):
                raise ValueError(f"{car_id}: grid phases are among 1, 2, 3")
        max_a = float(car.get("max_current_a") or default_max_current_a)
        if station is not None and station["max_current_a"] is not None:
            max_a = min(max_a, station["max_current_a"])
        min_a = car.get("min_current_a")
        if min_a is None:
            min_a = station["min_current_a"] if station is not None else 6.0
        loads.append(Load(id=car_id, station_id=sid or "", evse_id=i + 1, session_id=0, phases=grid,
                          min_a=float(min_a), max_a=max_a, measured_a=car.get("measured_a"),
                          started_at=now - timedelta(seconds=len(cars) - i), priority=int(car.get("priority") or 0),
                          node=f"station:{sid}" if sid else topology.root.id))
    trial = SiteModel(**{**model.__dict__, "loads": loads})
    wanted = await allocate(trial, capacity, now) if loads else {}
    by_plugin = wanted is not None
    if wanted is None:
        root_share = min(capacity.at(now)) / max(1, len(loads))
        wanted = {load.id: model.shares[load.station_id] if load.station_id else root_share for load in loads}
    limits = enforce_limits(topology, loads, wanted, capacity.at(now))
    totals = [0.0, 0.0, 0.0]
    measured = [0.0, 0.0, 0.0]
    node_totals = {n.id: [0.0, 0.0, 0.0] for n in topology.nodes}
    for load in loads:
        for p in load.phases:
            totals[p - 1] += limits[load.id]
            measured[p - 1] += load.measured_a or 0.0
            for n in topology.path(load.node):
                node_totals[n.id][p - 1] += limits[load.id]
    return {
        "site_id": site_id, "at": ocpp_ts(now), "managed": model.managed, "allocated_by_plugin": by_plugin,
        "capacity_a": finite_a(capacity.at(now)),
        "allocation": [{"id": load.id, "station_id": load.station_id or None, "phases": list(load.phases),
                        "limit_a": limits[load.id], "paused": limits[load.id] == 0.0} for load in loads],
        "totals_a": [round(v, 2) for v in totals], "measured_a": [round(v, 2) for v in measured],
        "nodes": [{"id": n.id, "kind": n.kind, "name": n.name, "limit_a": finite_a(n.limit_a),
                   "allocated_a": [round(v, 2) for v in node_totals[n.id]]} for n in topology.nodes],
    }
