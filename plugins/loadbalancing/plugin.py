"""The load-balancing plugin (entry point ``loadbalancing``): shares a site's capacity among its
active connectors with :func:`plugins.loadbalancing.allocator.allocate`, and shows the site's
capacity, allocation and draw on the admin's site page.

The allocator is pure; this module feeds it the core's topology and loads, keeps its state per
site between rounds (in memory: a restart only forgets the rotation timers) and reads its tuning
from :mod:`plugins.loadbalancing.config` (``CSMS_LOADBALANCING_*``). Per-station minimum and
maximum currents come with the loads (the station's ``min_current_a`` / ``max_current_a``).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from csms.plugin_api import N_, CapacitySchedule, Load, PlanFeature, SiteTopology, feature_enabled, gettext, hookimpl
from plugins.loadbalancing import allocator
from plugins.loadbalancing.config import LoadBalancingSettings

SETTINGS_CLASSES = (LoadBalancingSettings,)
LOAD_BALANCING = "load_balancing"  # the plan feature: sites of organizations without it are not balanced


# The allocator's memory per site id, between rounds.
_states: dict[int, allocator.AllocatorState] = {}


def allocator_config(voltage_v: float) -> allocator.AllocatorConfig:
    s = LoadBalancingSettings()
    return replace(allocator.AllocatorConfig(), buffer_a=s.buffer_a, ramp_threshold=s.ramp_threshold,
                   min_on_s=s.min_on_s, min_off_s=s.min_off_s, hysteresis_a=s.hysteresis_a,
                   deadline_aware=s.deadline_aware, untimed_start_s=s.untimed_start_s,
                   behind_schedule_s=s.behind_schedule_s if s.behind_schedule_s >= 0 else None,
                   crunch_pressure=s.crunch_pressure or None, crunch_size_exponent=s.crunch_size_exponent,
                   max_wait_s=s.max_wait_s, voltage_v=voltage_v)


def _seconds(when: datetime | None) -> float | None:
    return when.timestamp() if when is not None else None


def allocate_site(site: dict[str, Any], topology: SiteTopology, loads: list[Load], capacity: CapacitySchedule | None,
                  now: datetime, *, config: allocator.AllocatorConfig | None = None) -> dict[str, float]:
    """Amps per load: the allocator on the site's tree, its root capped by ``capacity`` now.

    V2X: when cars cannot have what they want and an EV that may discharge has energy to spare
    (:func:`discharges`), that EV is asked to feed back what they miss (a value below 0) and the
    others share the capacity it frees.

    The state is kept per site, except for dry runs (``site["simulation"]``), which start from
    nothing and leave the kept state alone.
    """
    cap_now = capacity.at(now) if capacity is not None else (math.inf,) * 3
    nodes = []
    for n in topology.nodes:
        limit = n.limit_a
        if n.parent is None:
            limit = tuple(min(a, b) for a, b in zip(limit, cap_now))  # type: ignore[assignment]
        nodes.append(allocator.Node(n.id, n.parent, tuple(max(0.0, float(x)) for x in limit)))  # type: ignore[arg-type]
    cfg = config or allocator_config(topology.voltage_v)
    simulation = bool(site.get("simulation"))
    site_id = site["id"]
    state = None if simulation else _states.get(site_id)
    result = allocator.allocate(nodes, _allocator_loads(topology, loads), now=now.timestamp(), state=state,
                                config=cfg)
    fed = discharges(topology, nodes, loads, result.limits_a, cfg.ramp_threshold)
    if fed:  # the others again, on the tree widened by what the discharging EVs feed in
        paths = {n.id: [p.id for p in topology.path(n.id)] for n in topology.nodes}
        nodes = [allocator.Node(n.id, n.parent, tuple(  # type: ignore[arg-type]
            limit + sum(-amps for load, amps in fed if n.id in paths[load.node or topology.root.id]
                        and p in load.phases)
            for p, limit in zip((1, 2, 3), n.limit_a))) for n in nodes]
        rest = [load for load in loads if load.id not in {load.id for load, _ in fed}]
        result = allocator.allocate(nodes, _allocator_loads(topology, rest), now=now.timestamp(), state=state,
                                    config=cfg)
    if not simulation:
        _states[site_id] = result.state
    return {**result.limits_a, **{load.id: amps for load, amps in fed}}


def discharges(topology: SiteTopology, nodes: list[allocator.Node], loads: list[Load], limits: dict[str, float],
               ramp_threshold: float) -> list[tuple[Load, float]]:
    """The V2X EVs to discharge, each with its (negative) amps per phase.

    Candidates: EVs that may discharge (``discharge_max_a``) and have energy to spare above
    their minimum (``discharge_spare_wh``), the most spare first. What they make up for is the
    *shortfall* on their phases: of every other car that is paused, or is below its maximum
    while drawing (nearly) all it was given (``ramp_threshold``), what it misses. An EV feeds
    the shortfall left on its phases, at most its ``discharge_max_a`` and the smallest limit of
    the nodes above it (the fuses hold in the export direction too).
    """
    candidates = sorted((load for load in loads if load.discharge_max_a > 0 and load.discharge_spare_wh > 0),
                        key=lambda load: -load.discharge_spare_wh)
    if not candidates:
        return []
    chosen = {load.id for load in candidates}
    missing = [0.0, 0.0, 0.0]
    for load in loads:
        if load.id in chosen:
            continue
        given = limits.get(load.id, 0.0)
        short = given == 0.0 or load.measured_a is None or load.measured_a >= ramp_threshold * given
        if short and given < load.max_a:
            for p in load.phases:
                missing[p - 1] += load.max_a - max(given, 0.0)
    by_id = {n.id: n for n in nodes}
    out: list[tuple[Load, float]] = []
    for load in candidates:
        fuse = min((min(by_id[n.id].limit_a[p - 1] for p in load.phases)
                    for n in topology.path(load.node or topology.root.id)), default=math.inf)
        amps = math.floor(min(load.discharge_max_a, fuse, max(missing[p - 1] for p in load.phases)) * 10) / 10
        if amps <= 0:
            continue
        out.append((load, -amps))
        for p in load.phases:
            missing[p - 1] = max(0.0, missing[p - 1] - amps)
    return out


def _allocator_loads(topology: SiteTopology, loads: list[Load]) -> list[allocator.Load]:
    root = topology.root.id
    return [
        allocator.Load(
            id=load.id, node=load.node or root, phases=tuple(load.phases), min_a=load.min_a, max_a=load.max_a,
            measured_a=load.measured_a, priority=load.priority, arrived_at=_seconds(load.started_at) or 0.0,
            energy_wh_needed=load.energy_wh_needed, departure_at=_seconds(load.departure_at),
            energy_wh=load.energy_wh or 0.0,
            watts_per_amp=topology.voltage_v * len(load.phases),
        )
        for load in loads
    ]


@hookimpl
def locale_dirs():
    return [str(Path(__file__).parent / "locale")]


@hookimpl
def startup(app, settings):
    _states.clear()  # what an earlier server in this process knew is not about this database


@hookimpl
def plan_features():
    return [PlanFeature(LOAD_BALANCING, N_("Load balancing"))]


@hookimpl(trylast=True)
def allocate_capacity(site, topology, loads, capacity, now):
    """Max-min fair sharing within every limit of the tree, phase by phase (see the allocator);
    no answer for a site whose organization's plan does not include load balancing."""

    if site.get("organization") is None:  # no organization, no plan
        return allocate_site(site, topology, loads, capacity, now)

    async def answer() -> dict[str, float] | None:
        if not await feature_enabled(site["organization"], LOAD_BALANCING):
            return None
        return allocate_site(site, topology, loads, capacity, now)

    return answer


# -- admin -------------------------------------------------------------------------------------


def _amps(value: Any) -> str:
    return "—" if value is None else f"{value:.1f}"


def site_panel(view: dict[str, Any]) -> Markup:
    """Capacity vs allocation vs measured draw per phase (a uPlot bar chart and a table), and the
    limits sent to each connector with whether the station acknowledged them. The allocation is
    the last round's and is drawn beside the capacity that round shared; the capacity now is a
    column of its own (it differs until the next round when the capacity has just changed)."""
    phases = ["L1", "L2", "L3"]
    last = view.get("last_round") or {}
    round_capacity = last.get("capacity_a") or view["capacity_a"]
    round_reserved = last.get("reserved_a") or view["reserved_a"]
    series = {"capacity": round_capacity, "allocated": view["allocated_a"], "measured": view["measured_a"]}
    discharge = view.get("discharge_a") or [0.0, 0.0, 0.0]
    feeding = any(v > 0 for v in discharge)  # V2X EVs feed in: their share, apart from the net allocation
    rows = "".join(
        f"<tr><th>{p}</th><td>{_amps(view['capacity_a'][i])}</td><td>{_amps(round_capacity[i])}</td>"
        f"<td>{_amps(round_reserved[i])}</td>"
        f"<td>{_amps(series['allocated'][i])}</td>" + (f"<td>{_amps(discharge[i])}</td>" if feeding else "")
        + f"<td>{_amps(series['measured'][i])}</td></tr>"
        for i, p in enumerate(phases))
    _ = gettext
    connectors = []
    for c in view["connectors"]:
        sent = c.get("sent") or {}
        connectors.append(
            f"<tr><td>{escape(c['station_id'])}</td><td>{c['evse_id']}</td>"
            f"<td>{escape(', '.join(f'L{p}' for p in c.get('phases') or []))}</td>"
            f"<td>{_amps(c.get('measured_a'))}</td><td>{_amps(c.get('allocated_a'))}"
            f"{' ' + escape(_('discharging')) if c.get('discharging') else ''}</td>"
            f"<td>{_amps(sent.get('limit_a'))}</td><td>{escape(sent.get('status') or '—')}</td></tr>")
    profiles = "".join(connectors) or f'<tr><td colspan="7">{escape(_("No active connectors."))}</td></tr>'
    local = []
    for h in view.get("hubs") or []:
        lc = h.get("local_controller")
        if lc:
            sent = lc.get("station_max_profile") or {}
            reach = _("reachable") if lc["reachable"] else _("offline") if not lc["online"] else _("not reachable")
            local.append(f"<tr><td>{escape(h['name'])}</td><td>{escape(lc['station_id'])}</td><td>{escape(reach)}</td>"
                         f"<td>{_amps(lc.get('limit_a'))}</td><td>{_amps(sent.get('limit_a'))}</td>"
                         f"<td>{escape(sent.get('status') or '—')}</td></tr>")
    controller_heads = [_("Hub"), _("Local controller"), _("State"), _("Hub's limit, last round (A)"),
                        _("Limit sent (A)"), _("Station's answer")]
    local_note = _("Hubs balanced by their local controller: the controller gets the hub's limit, its stations no profiles.")
    controllers = "" if not local else (
        f"<p>{escape(local_note)}</p>"
        f'<div class="table-scroll"><table data-list="local-controllers"><thead><tr>'
        f'{"".join(f"<th>{escape(h)}</th>" for h in controller_heads)}</tr></thead>'
        f"<tbody>{''.join(local)}</tbody></table></div>")
    chart_data = json.dumps({"phases": phases, **series}).replace("</", "<\\/")
    status = _("managed") if view["managed"] else _("not managed (no limits at this site)")
    allocation = (_("Allocation of the last smart-charging round %(number)s at %(at)s, beside the capacity it shared.",
                    number=last["number"], at=last["at"]) if last else _("No smart-charging round yet."))
    heads = [_("Phase"), _("Capacity now (A)"), _("Capacity, last round (A)"), _("Reserved, last round (A)"),
             _("Allocated, last round (A)"), *([_("Discharge, last round (A)")] if feeding else []), _("Measured (A)")]
    connector_heads = [_("Station"), _("EVSE"), _("Phases"), _("Measured (A)"), _("Allocated (A)"), _("Limit sent (A)"),
                       _("Station's answer")]
    return Markup(f"""
<h3>{escape(_("Smart charging"))}</h3>
<p>{escape(_("Load management: %(status)s.", status=status))}</p>
<link rel="stylesheet" href="/static/vendor/uplot/uPlot.min.css">
<script src="/static/vendor/uplot/uPlot.iife.min.js" defer></script>
<div id="smart-charging-chart" data-site="{view['site_id']}" data-phase-bars="smart-charging-data"></div>
<script type="application/json" id="smart-charging-data">{chart_data}</script>
<p>{escape(allocation)}</p>
<div class="table-scroll"><table><thead><tr>{"".join(f"<th>{escape(h)}</th>" for h in heads)}</tr></thead>
<tbody>{rows}</tbody></table></div>
<div class="table-scroll"><table><thead><tr>{"".join(f"<th>{escape(h)}</th>" for h in connector_heads)}</tr></thead>
<tbody>{profiles}</tbody></table></div>
{controllers}""")


@hookimpl
def admin_panels(page, request, context):
    site = context.get("site") if page == "site" else None
    if not site or site.get("id") is None:
        return None

    async def panel() -> Markup:
        from csms.plugin_api import get_core

        return site_panel(await get_core().smart_charging.site_view(site["id"]))

    return panel
