"""Sharing a site's capacity: what the plugins answer (``site_capacity``, ``allocate_capacity``),
the safety net that keeps every limit of the tree whatever they answered, and each station's
TxDefault level."""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Any

from csms.core.domain import CapacityPeriod, CapacitySchedule, Load, SiteTopology
from csms.core.services.smart_charging.phases import EPSILON_A, PHASES, Triple, floor_tenth
from csms.core.services.smart_charging.rounds import SiteModel
from csms.plugins import call_hook

log = logging.getLogger("csms.smart_charging")


async def site_capacity(site: dict[str, Any], grid: Triple, now: datetime) -> CapacitySchedule:
    """The site's capacity from now on: the minimum of the grid limit and the ``site_capacity`` answers."""
    schedules = [CapacitySchedule((CapacityPeriod(now, grid),))]
    for plugin, answer in await call_hook("site_capacity", site=site, now=now):
        if isinstance(answer, CapacitySchedule) and answer.periods:
            schedules.append(answer)
        elif not isinstance(answer, CapacitySchedule):
            log.warning("plugin %s answered site_capacity with %r, not a CapacitySchedule", plugin, answer)
    if len(schedules) == 1:
        return schedules[0]
    # only what applies from now on: the capacity in force now, then its changes
    merged = CapacitySchedule.minimum(schedules)
    periods = [CapacityPeriod(now, merged.at(now))]
    periods += [p for p in merged.periods if p.start > now]
    return CapacitySchedule(tuple(periods))


async def allocate(model: SiteModel, capacity: CapacitySchedule, now: datetime) -> dict[str, float] | None:
    """The ``allocate_capacity`` answer for the model's loads, or None without an allocator."""
    answer = await call_hook("allocate_capacity", site=model.site, topology=model.topology,
                             loads=list(model.loads), capacity=capacity, now=now)
    if answer is None:
        return None
    if not isinstance(answer, dict):
        log.warning("allocate_capacity answered %r, not a dict of load id to amps", answer)
        return None
    return {str(k): float(v) for k, v in answer.items()}


def _toward_zero(amps: float) -> float:
    """Rounded to 0.1 A toward 0: less charging, less discharging."""
    return floor_tenth(amps) if amps >= 0 else -floor_tenth(-amps)


def enforce_limits(topology: SiteTopology, loads: list[Load], wanted: dict[str, float],
                   root_limit: Triple, *, discharge_frees_capacity: bool = True) -> dict[str, float]:
    """Clamp an allocation so that no node's phase limit is exceeded, in either direction,
    whatever a plugin answered.

    Each load is kept within ``[min_a, max_a]`` or set to 0, or, for an EV that may discharge
    (V2X), within ``[-discharge_max_a, 0)``. Import: where a node's phase carries more than its
    limit, the charging loads below it on that phase are scaled down (those falling under their
    minimum get 0) until everything fits; discharging loads below the node count against it
    (``discharge_frees_capacity``). Export: where the discharging loads below a node feed more
    than its physical limit (the fuse, not the capacity a plugin gave), they are scaled toward 0;
    charging loads never count here, as a car that is full stops drawing at any moment. Values
    only move toward 0, so this ends.
    """
    out: dict[str, float] = {}
    for load in loads:
        amps = float(wanted.get(load.id) or 0.0)
        if math.isnan(amps):
            amps = 0.0
        if amps < 0:
            out[load.id] = _toward_zero(max(amps, -load.discharge_max_a)) if load.discharge_max_a > 0 else 0.0
            continue
        amps = floor_tenth(min(amps, load.max_a))
        out[load.id] = amps if amps >= load.min_a and amps > 0 else 0.0
    paths = {load.id: [n.id for n in topology.path(load.node or topology.root.id)] for load in loads}
    limits = {n.id: n.limit_a for n in topology.nodes}
    limits[topology.root.id] = tuple(min(a, b) for a, b in zip(topology.root.limit_a, root_limit))  # type: ignore[assignment]
    fuses = {n.id: tuple(a + r for a, r in zip(n.limit_a, n.reserved_a)) for n in topology.nodes}
    for _ in range(len(loads) * 10_000 + 1):  # every pass that changes something moves a value 0.1 A toward 0
        changed = False
        for node_id, limit in limits.items():
            for p in PHASES:
                members = [load for load in loads if node_id in paths[load.id] and p in load.phases
                           and out[load.id] != 0]
                charging = [m for m in members if out[m.id] > 0]
                feeding = [m for m in members if out[m.id] < 0]
                fed = -sum(out[m.id] for m in feeding)
                export_cap = fuses[node_id][p - 1]
                if fed > export_cap + EPSILON_A:
                    factor = max(0.0, export_cap) / fed
                    for m in feeding:
                        out[m.id] = _toward_zero(out[m.id] * factor)
                    changed = True
                    fed = -sum(out[m.id] for m in feeding)
                cap = limit[p - 1]
                if math.isinf(cap):
                    continue
                credit = fed if discharge_frees_capacity else 0.0
                total = sum(out[m.id] for m in charging)
                if total - credit <= cap + EPSILON_A:
                    continue
                factor = max(0.0, cap + credit) / total
                for m in charging:
                    scaled = floor_tenth(out[m.id] * factor)
                    out[m.id] = scaled if scaled >= m.min_a else 0.0
                changed = True
        if not changed:
            break
    return out


def default_limits(model: SiteModel, limits: dict[str, float], available: Triple, *,
                   default_max_current_a: float) -> dict[str, float]:
    """Each reachable station's TxDefault: the largest value every node can still carry for
    every connector falling back to it (see the package docstring), within its safe share."""
    topology = model.topology
    node_limits = {n.id: n.limit_a for n in topology.nodes}
    root = topology.root.id
    node_limits[root] = tuple(min(a, b) for a, b in zip(node_limits[root], available))  # type: ignore[assignment]
    ready = {sid: s for sid, s in model.stations.items() if s["ready"]}
    tops = {sid: min(model.shares[sid], float(s["max_current_a"] if s["max_current_a"] is not None
                                             else default_max_current_a)) for sid, s in ready.items()}
    members = _members(model)

    def fits(level: float) -> bool:
        totals = _totals(members, limits, {sid: min(level, tops[sid]) for sid in tops}, node_limits)
        return all(totals[nid][p] <= node_limits[nid][p] + EPSILON_A for nid in node_limits for p in range(3))

    high = max(tops.values(), default=0.0)
    if fits(high):
        level = high
    else:
        low = 0.0
        for _ in range(40):
            mid = (low + high) / 2
            if fits(mid):
                low = mid
            else:
                high = mid
        level = low
    out = {}
    for sid, s in ready.items():
        d = floor_tenth(min(level, tops[sid]))
        out[sid] = d if d >= float(s["min_current_a"] or 6.0) else 0.0
    return out


def node_totals(model: SiteModel, limits: dict[str, float], defaults: dict[str, float]) -> dict[str, list[float]]:
    """Per node and phase, the most its reachable stations may draw with the round's ``limits``
    and each station's TxDefault in ``defaults`` (an idle connector, or a car at less than the
    default, may take the default before the next round)."""
    return _totals(_members(model), limits, defaults, {n.id: n.limit_a for n in model.topology.nodes})


def _members(model: SiteModel) -> list[tuple[str, list[str], list[Load], int]]:
    """Per reachable station: its id, its path up the tree, its active loads, its idle connectors."""
    members = []
    for sid, s in model.stations.items():
        if not s["ready"]:
            continue
        path = [n.id for n in model.topology.path(f"station:{sid}")]
        active = [load for load in model.loads if load.station_id == sid]
        idle = len(set(s["evses"]) - {load.evse_id for load in active}) if s["evses"] else (0 if active else 1)
        members.append((sid, path, active, idle))
    return members


def _totals(members: list[tuple[str, list[str], list[Load], int]], limits: dict[str, float],
            defaults: dict[str, float], nodes: Any) -> dict[str, list[float]]:
    totals = {nid: [0.0, 0.0, 0.0] for nid in nodes}
    for sid, path, active, idle in members:
        d = defaults.get(sid, 0.0)
        per_phase = [idle * d] * 3
        for load in active:
            a = limits.get(load.id, 0.0)
            for p in PHASES:
                per_phase[p - 1] += max(a, d) if p in load.phases else d
        for nid in path:
            for p in range(3):
                totals[nid][p] += per_phase[p]
    return totals
