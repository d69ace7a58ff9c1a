"""What the admin and the REST API show of a site: capacity, allocation and measured draw per phase,
the tree of limits with hub status, and the profiles sent to each connector with the stations' answers."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from csms.core.domain import TopologyNode
from csms.core.ocpp.validation import V16
from csms.core.services.smart_charging.phases import finite_a, rotation_map
from csms.core.services.smart_charging.profiles import PURPOSE_NAMES, STATION_MAX, TX, TX_DEFAULT, planned_from_payload
from csms.core.services.smart_charging.rounds import SiteModel, SiteRound
from csms.core.services.smart_charging.schedules import periods_at
from csms.core.tables import ChargingProfile, Hub
from csms.core.timeutil import ocpp_ts

if TYPE_CHECKING:
    from csms.core.services.sessions import SessionService


def departure_details(extra: dict[str, Any]) -> dict[str, Any]:
    """Where a connector's departure comes from (``driver``, ``ev`` or ``learned``), the stated one
    and the learned one with its basis (``card``, ``driver``, ``site``) and the stays it is the median of."""
    stated = extra.get("stated_departure_at")
    guess = extra.get("learned_departure")
    return {"departure_source": extra.get("departure_source"),
            "stated_departure_at": stated.isoformat() if stated else None,
            "learned_departure": None if guess is None else {
                "departure_at": guess.departure_at.isoformat(), "basis": guess.basis, "stays": guess.stays}}


async def describe_site(model: SiteModel, last: SiteRound | None, now: datetime,
                        sessions: SessionService) -> dict[str, Any]:
    """The site as the admin shows it, from its live ``model`` and its ``last`` round.

    The allocation is the last round's, so it comes with the capacity that round shared
    (``round_capacity_a``, and ``last_round``'s ``capacity_a``, ``reserved_a`` and
    ``available_a``); ``capacity_a`` and ``reserved_a`` are the live values, which differ
    from the round's until the next round when the capacity has changed since."""
    site_id = model.topology.site_id
    limits = last.limits if last is not None else {}
    topology = model.topology
    rows = await ChargingProfile.select(
        ChargingProfile.station.station_id.as_alias("station_ident"), ChargingProfile.evse_id,
        ChargingProfile.purpose, ChargingProfile.transaction_id, ChargingProfile.payload,
        ChargingProfile.status, ChargingProfile.sent_at,
    ).where((ChargingProfile.station.site == site_id) & (ChargingProfile.source == "csms")).order_by(
        ChargingProfile.id, ascending=False).limit(1000).output(load_json=True)
    latest: dict[tuple[str, int, str], dict[str, Any]] = {}
    for r in rows:
        latest.setdefault((r["station_ident"], r["evse_id"], r["purpose"]), r)

    def sent(station_id: str, evse_id: int, purpose: str, transaction_id: str | None = None) -> dict | None:
        r = latest.get((station_id, evse_id, purpose))
        if r is None or (transaction_id is not None and r["transaction_id"] != transaction_id):
            return None
        planned = planned_from_payload(station_id, evse_id, purpose, r["payload"], r["sent_at"],
                                       topology.voltage_v)
        return {"purpose": purpose, "limit_a": periods_at(planned.periods, now) if planned else None,
                "periods": [{"start": ocpp_ts(t), "limit_a": a} for t, a in planned.periods] if planned else [],
                "status": r["status"], "acknowledged": r["status"] == "Accepted",
                "sent_at": ocpp_ts(r["sent_at"])}

    names = PURPOSE_NAMES[V16]
    node_alloc = {n.id: [0.0, 0.0, 0.0] for n in topology.nodes}  # net: a discharge (V2X) counts below 0
    node_discharge = {n.id: [0.0, 0.0, 0.0] for n in topology.nodes}  # what V2X EVs feed in, in A
    node_measured = {n.id: [0.0, 0.0, 0.0] for n in topology.nodes}
    connectors = []
    for load in model.loads + model.pinned:
        station = model.stations[load.station_id]
        session = sessions.on_evse(load.station_id, load.evse_id)
        mapping = rotation_map(station["phase_rotation"])
        measured = [0.0, 0.0, 0.0]
        for k, v in (session.current_a if session else {}).items():
            if k in ("L1", "L2", "L3") and v is not None:
                measured[mapping[int(k[1])] - 1] += v
        tx = load.extra["transaction_id"]
        profile = sent(load.station_id, load.evse_id, names[TX], tx)
        allocated = limits.get(load.id) if station["ready"] else (profile or {}).get("limit_a")
        for n in topology.path(load.node):
            for p in range(3):
                node_measured[n.id][p] += measured[p]
                if allocated is not None and p + 1 in load.phases:
                    node_alloc[n.id][p] += allocated
                    node_discharge[n.id][p] += max(0.0, -allocated)
        connectors.append({
            "station_id": load.station_id, "evse_id": load.evse_id, "session_id": load.session_id,
            "transaction_id": tx, "phases": list(load.phases), "reachable": bool(station["ready"]),
            "measured_a": round(max(measured), 2), "measured_per_phase_a": [round(m, 2) for m in measured],
            "allocated_a": allocated, "discharging": allocated is not None and allocated < 0,
            "departure_at": load.departure_at.isoformat() if load.departure_at else None,
            **departure_details(load.extra),
            "energy_wh": load.energy_wh, "energy_wh_needed": load.energy_wh_needed, "sent": profile,
        })
    children: dict[str | None, list[TopologyNode]] = {}
    for n in topology.nodes:
        children.setdefault(n.parent, []).append(n)
    hubs = []

    def tree(n: TopologyNode) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": n.id, "kind": n.kind, "name": n.name, "limit_a": finite_a(model.physical[n.id]),
            "reserved_a": list(n.reserved_a), "available_a": finite_a(n.limit_a),
            "allocated_a": [round(v, 2) for v in node_alloc[n.id]],
            "discharge_a": [round(v, 2) for v in node_discharge[n.id]],
            "measured_a": [round(v, 2) for v in node_measured[n.id]],
            "children": [tree(c) for c in children.get(n.id, [])],
        }
        if n.kind == "station":
            st = model.stations[n.station_id]  # type: ignore[index]
            default = sent(n.station_id, 0, names[TX_DEFAULT])  # type: ignore[arg-type]
            out.update({
                "station_id": n.station_id, "online": st["online"], "reachable": st["ready"],
                "ocpp_version": st["ocpp_version"], "phase_rotation": n.phase_rotation,
                "evses": sorted(st["evses"]), "min_current_a": n.min_current_a,
                "safe_share_a": model.shares[n.station_id],  # type: ignore[index]
                "default_profile": default,
                "station_max_profile": sent(n.station_id, 0, names[STATION_MAX])  # type: ignore[arg-type]
                or sent(n.station_id, 0, PURPOSE_NAMES["2.0.1"][STATION_MAX]),  # type: ignore[arg-type]
            })
        elif n.kind == "hub":
            members = [c for c in out["children"] if c["kind"] == "station"]
            online = sum(1 for c in members if c["online"])
            hub_id = int(n.id.split(":", 1)[1])
            info: dict[str, Any] = {"id": hub_id, "name": n.name, "stations": [c["station_id"] for c in members],
                    "online": online, "offline": len(members) - online,
                    "status": "empty" if not members else "online" if online == len(members)
                    else "offline" if online == 0 else "partial"}
            controller = model.controllers.get(n.id)
            if controller is not None:  # K03: the hub's limit goes to its local controller
                info["local_controller"] = {
                    "station_id": controller["station_id"], "online": controller["online"],
                    "reachable": controller["ready"],
                    "limit_a": None if last is None else last.controllers.get(n.id),
                    "station_max_profile": sent(controller["station_id"], 0, names[STATION_MAX])
                    or sent(controller["station_id"], 0, PURPOSE_NAMES["2.0.1"][STATION_MAX])}
            out.update({k: v for k, v in info.items() if k not in ("id", "name")})
            hubs.append(info)
        return out

    root = tree(topology.root)
    hub_rows = {h["id"]: h for h in await Hub.select(Hub.id, Hub.device_id, Hub.max_stations).where(
        Hub.site == site_id)}
    for h in hubs:
        row = hub_rows.get(h["id"], {})
        h["device_id"], h["max_stations"] = row.get("device_id", ""), row.get("max_stations")
        h["over_max_stations"] = h["max_stations"] is not None and len(h["stations"]) > h["max_stations"]
    cap_now = model.capacity.at(now)
    return {
        "site_id": site_id, "name": model.site["name"], "managed": model.managed, "at": ocpp_ts(now),
        "voltage_v": topology.voltage_v, "phases": ["L1", "L2", "L3"],
        "grid_limit_a": finite_a(model.physical[topology.root.id]),
        "capacity_a": finite_a(cap_now), "reserved_a": list(model.reserved[topology.root.id]),
        "round_capacity_a": None if last is None else finite_a(last.capacity_a),
        "allocated_a": [round(v, 2) for v in node_alloc[topology.root.id]],
        "discharge_a": [round(v, 2) for v in node_discharge[topology.root.id]],
        "measured_a": [round(v, 2) for v in node_measured[topology.root.id]],
        "capacity_schedule": [{"start": ocpp_ts(p.start), "limit_a": finite_a(p.limit_a)}
                              for p in model.capacity.periods],
        "last_round": None if last is None else {
            "number": last.number, "at": ocpp_ts(last.at), "sent": last.sent, "failed": last.failed,
            "capacity_a": finite_a(last.capacity_a), "reserved_a": list(last.reserved_a),
            "available_a": finite_a(tuple(max(0.0, c - r) for c, r in zip(last.capacity_a, last.reserved_a))),  # type: ignore[arg-type]
            "allocated_by_plugin": last.allocated_by_plugin,
            "default_limits_a": last.defaults},
        "tree": root, "hubs": hubs, "connectors": connectors,
    }
