"""Health and uptime computed from the core's station event history.

The history (``station_event``) holds a row for every connection and disconnection
(category ``connection``), boot (``boot``), StatusNotification (``status``, or ``fault`` when it
carries an error) and 2.0.1 NotifyEvent (``event``). Over a period ``[start, end)``:

* a station is *connected* from a ``connected`` row to the next ``disconnected`` row; its
  state at ``start`` is that of its last connection row before ``start`` (none: unknown);
* a connector's state is ``Offline`` while its station is disconnected, else the status of its
  last StatusNotification; before the first one it is unknown;
* **uptime %** = connected time / known time; **availability %** of a connector = time in an
  operative status (Available, Preparing, Charging, SuspendedEV/EVSE, Finishing, Reserved,
  Occupied) / known time; unknown time counts in neither (it is reported as ``unknown_s``);
* **faults**: StatusNotifications that enter a fault (Faulted or an error code other than
  NoError; a repeat of the same fault is not counted again) and NotifyEvents that report a
  problem (``Problem``/``Tripped``/``Fault`` true, or ``AvailabilityState`` Faulted);
* **connection drops**: disconnections; **boots**: BootNotifications by reason;
* **heartbeats missed**: offline time / the heartbeat interval (stations that are connected
  answer pings; a station can only miss heartbeats while it is gone).

Roll-ups (site, fleet) add up the seconds before dividing, so a station observed for half the
period weighs half.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from piccolo.query.functions.aggregate import Max

from csms.plugin_api import Connector, Site, Station, StationEvent, get_core

OPERATIVE = frozenset({"Available", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing",
                       "Reserved", "Occupied"})
OFFLINE = "Offline"
UNKNOWN = "Unknown"
STATUS_CATEGORIES = ("status", "fault")
FAULT_VARIABLES = frozenset({"Problem", "Tripped", "Fault"})


def _utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _details(row: dict[str, Any]) -> dict[str, Any]:
    details = row.get("details") or {}
    if isinstance(details, str):
        try:
            details = json.loads(details)
        except ValueError:
            details = {}
    return details


def pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 3) if whole > 0 else None


def timeline(start: datetime, end: datetime, initial: dict[str, str | None],
             changes: Iterable[tuple[datetime, str, str]], state_of) -> dict[str, float]:
    """Seconds spent in each state over ``[start, end)``.

    ``initial`` holds the variables at ``start`` (e.g. ``{"conn": "connected", "status": "Available"}``),
    ``changes`` are ``(time, variable, value)`` in time order, ``state_of(variables)`` names the
    state (``None`` for unknown, reported under ``UNKNOWN``).
    """
    variables = dict(initial)
    cursor = start
    out: dict[str, float] = defaultdict(float)
    for at, name, value in changes:
        at = min(max(at, start), end)
        out[state_of(variables) or UNKNOWN] += (at - cursor).total_seconds()
        cursor = at
        variables[name] = value
    out[state_of(variables) or UNKNOWN] += (end - cursor).total_seconds()
    return {k: v for k, v in out.items() if v > 0}


def _connection_state(v: dict[str, str | None]) -> str | None:
    return v.get("conn")


def _connector_state(v: dict[str, str | None]) -> str | None:
    if v.get("conn") == "disconnected":
        return OFFLINE
    return v.get("status")


def is_problem_event(row: dict[str, Any]) -> bool:
    """A 2.0.1 NotifyEvent reporting a fault."""
    if row["category"] != "event":
        return False
    variable = row["kind"].rsplit(".", 1)[-1]
    value = str(_details(row).get("actualValue", "")).strip().lower()
    if variable == "AvailabilityState":
        return value == "faulted"
    return variable in FAULT_VARIABLES and value in ("true", "1")


@dataclass
class StationHistory:
    """The rows of one station needed for its report: in the period, and the last ones before it."""

    station_id: str
    connectors: set[tuple[int, int]] = field(default_factory=set)
    rows: list[dict[str, Any]] = field(default_factory=list)  # in the period, time order
    before: list[dict[str, Any]] = field(default_factory=list)  # last row before the period per series


def station_report(history: StationHistory, start: datetime, end: datetime, *, heartbeat_interval: int,
                   ) -> dict[str, Any]:
    """The health of one station over ``[start, end)`` from its history (pure; see the module doc)."""
    period = (end - start).total_seconds()
    conn_initial = next((r["kind"] for r in history.before if r["category"] == "connection"), None)
    status_initial: dict[tuple[int, int], dict[str, Any]] = {
        (r["evse_id"], r["connector_id"]): r for r in history.before if r["category"] in STATUS_CATEGORIES
    }
    conn_changes = [(r["timestamp"], "conn", r["kind"]) for r in history.rows if r["category"] == "connection"
                    and r["kind"] in ("connected", "disconnected")]
    connection = timeline(start, end, {"conn": conn_initial}, conn_changes, _connection_state)
    connected_s, offline_s = connection.get("connected", 0.0), connection.get("disconnected", 0.0)

    boots: dict[str, int] = defaultdict(int)
    drops = 0
    problems: list[dict[str, Any]] = []
    for r in history.rows:
        if r["category"] == "boot":
            boots[r["kind"] or "boot"] += 1
        elif r["category"] == "connection" and r["kind"] == "disconnected":
            drops += 1
        elif is_problem_event(r):
            problems.append({"at": r["timestamp"].isoformat(), "evse_id": r["evse_id"],
                             "connector_id": r["connector_id"], "code": r["kind"], "info": r["summary"]})

    keys = {k for k in history.connectors if k[0] > 0}
    keys |= {(r["evse_id"], r["connector_id"]) for r in history.rows
             if r["category"] in STATUS_CATEGORIES and (r["evse_id"] or 0) > 0}
    keys |= {k for k in status_initial if (k[0] or 0) > 0}
    connectors = []
    faults: list[dict[str, Any]] = []
    for key in sorted(keys):
        rows = [r for r in history.rows if r["category"] in STATUS_CATEGORIES
                and (r["evse_id"], r["connector_id"]) == key]
        first = status_initial.get(key)
        changes = sorted(conn_changes + [(r["timestamp"], "status", r["kind"]) for r in rows], key=lambda c: c[0])
        states = timeline(start, end, {"conn": conn_initial, "status": first["kind"] if first else None},
                          changes, _connector_state)
        available = sum(v for k, v in states.items() if k in OPERATIVE)
        known = period - states.get(UNKNOWN, 0.0)
        previous = _fault_key(first) if first else None
        count = 0
        for r in rows:
            current = _fault_key(r)
            if current is not None and current != previous:
                count += 1
                faults.append({"at": r["timestamp"].isoformat(), "evse_id": key[0], "connector_id": key[1],
                               "code": current[1] or current[0], "status": r["kind"],
                               "info": _details(r).get("info", "")})
            previous = current
        count += sum(1 for p in problems if (p["evse_id"], p["connector_id"]) == key)
        connectors.append({
            "evse_id": key[0], "connector_id": key[1], "time_in_status": dict(sorted(states.items())),
            "available_s": available, "known_s": known, "unknown_s": states.get(UNKNOWN, 0.0),
            "availability_pct": pct(available, known), "faults": count,
        })
    for key in sorted({k for k in status_initial if (k[0] or 0) == 0}):  # 1.6 connector 0: the station
        previous = _fault_key(status_initial[key])
        for r in history.rows:
            if r["category"] in STATUS_CATEGORIES and (r["evse_id"], r["connector_id"]) == key:
                current = _fault_key(r)
                if current is not None and current != previous:
                    faults.append({"at": r["timestamp"].isoformat(), "evse_id": 0, "connector_id": 0,
                                   "code": current[1] or current[0], "status": r["kind"],
                                   "info": _details(r).get("info", "")})
                previous = current
    faults.extend({**p, "status": ""} for p in problems)
    faults.sort(key=lambda f: f["at"])
    by_code: dict[str, int] = defaultdict(int)
    for f in faults:
        by_code[f["code"]] += 1
    known_conn = period - connection.get(UNKNOWN, 0.0)
    available_total = sum(c["available_s"] for c in connectors)
    known_total = sum(c["known_s"] for c in connectors)
    return {
        "station_id": history.station_id, "from": start.isoformat(), "to": end.isoformat(), "period_s": period,
        "connected_s": connected_s, "offline_s": offline_s, "unknown_s": connection.get(UNKNOWN, 0.0),
        "uptime_pct": pct(connected_s, known_conn),
        "available_s": available_total, "connector_known_s": known_total,
        "availability_pct": pct(available_total, known_total),
        "connection_drops": drops, "boots": dict(boots), "boot_count": sum(boots.values()),
        "heartbeat_interval_s": heartbeat_interval,
        "heartbeats_missed": int(offline_s // heartbeat_interval) if heartbeat_interval > 0 else 0,
        "fault_count": len(faults), "faults_by_code": dict(by_code), "faults": faults[-100:],
        "connectors": connectors,
    }


def _fault_key(row: dict[str, Any]) -> tuple[str, str] | None:
    """(status, error code) when the row reports a fault, else None."""
    if row["category"] != "fault":
        return None
    code = _details(row).get("error_code", "")
    return (row["kind"], "" if code == "NoError" else code)


def rollup(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over several station reports (a site, the fleet)."""
    connected = sum(r["connected_s"] for r in reports)
    known = sum(r["period_s"] - r["unknown_s"] for r in reports)
    available = sum(r["available_s"] for r in reports)
    known_connectors = sum(r["connector_known_s"] for r in reports)
    boots: dict[str, int] = defaultdict(int)
    faults: dict[str, int] = defaultdict(int)
    for r in reports:
        for k, v in r["boots"].items():
            boots[k] += v
        for k, v in r["faults_by_code"].items():
            faults[k] += v
    return {
        "stations": len(reports), "connectors": sum(len(r["connectors"]) for r in reports),
        "connected_s": connected, "offline_s": sum(r["offline_s"] for r in reports),
        "uptime_pct": pct(connected, known), "available_s": available, "connector_known_s": known_connectors,
        "availability_pct": pct(available, known_connectors),
        "connection_drops": sum(r["connection_drops"] for r in reports), "boots": dict(boots),
        "boot_count": sum(boots.values()), "heartbeats_missed": sum(r["heartbeats_missed"] for r in reports),
        "fault_count": sum(r["fault_count"] for r in reports), "faults_by_code": dict(faults),
    }


def station_summary(report: dict[str, Any]) -> dict[str, Any]:
    return {k: report[k] for k in ("station_id", "uptime_pct", "availability_pct", "connection_drops",
                                   "boot_count", "fault_count", "heartbeats_missed", "offline_s")}


# -- loading ----------------------------------------------------------------------------------------


async def load_histories(station_ids: list[str], start: datetime, end: datetime) -> dict[str, StationHistory]:
    """The history of ``station_ids`` around ``[start, end)``, in a handful of queries."""
    histories = {sid: StationHistory(sid) for sid in station_ids}
    if not station_ids:
        return histories
    writer = get_core().writer
    if writer is not None:
        await writer.flush()  # status rows are written in batches
    columns = (StationEvent.id, StationEvent.station_id, StationEvent.category, StationEvent.kind,
               StationEvent.evse_id, StationEvent.connector_id, StationEvent.summary, StationEvent.details,
               StationEvent.timestamp)
    categories = ["connection", "boot", *STATUS_CATEGORIES, "event"]
    for chunk in _chunks(station_ids, 500):
        rows = await StationEvent.select(*columns).where(
            StationEvent.station_id.is_in(chunk) & StationEvent.category.is_in(categories)
            & (StationEvent.timestamp >= start) & (StationEvent.timestamp < end)
        ).order_by(StationEvent.timestamp).order_by(StationEvent.id)
        for r in rows:
            r["timestamp"] = _utc(r["timestamp"])
            histories[r["station_id"]].rows.append(r)
        last_ids: list[int] = []
        for cats in (["connection"], list(STATUS_CATEGORIES)):
            groups = await StationEvent.select(Max(StationEvent.id, alias="last")).where(
                StationEvent.station_id.is_in(chunk) & StationEvent.category.is_in(cats)
                & (StationEvent.timestamp < start)
            ).group_by(StationEvent.station_id, StationEvent.evse_id, StationEvent.connector_id)
            last_ids += [g["last"] for g in groups if g["last"] is not None]
        for ids in _chunks(last_ids, 500):
            for r in await StationEvent.select(*columns).where(StationEvent.id.is_in(ids)):
                r["timestamp"] = _utc(r["timestamp"])
                histories[r["station_id"]].before.append(r)
        pks = {r["id"]: r["station_id"] for r in await Station.select(Station.id, Station.station_id).where(
            Station.station_id.is_in(chunk))}
        if pks:
            for c in await Connector.select(Connector.station, Connector.evse_id, Connector.connector_id).where(
                    Connector.station.is_in(list(pks))):
                histories[pks[c["station"]]].connectors.add((c["evse_id"], c["connector_id"]))
    return histories


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


async def station_health(station_id: str, start: datetime, end: datetime) -> dict[str, Any]:
    histories = await load_histories([station_id], start, end)
    return station_report(histories[station_id], start, end,
                          heartbeat_interval=get_core().settings.heartbeat_interval)


async def group_health(station_ids: list[str], start: datetime, end: datetime) -> list[dict[str, Any]]:
    histories = await load_histories(station_ids, start, end)
    interval = get_core().settings.heartbeat_interval
    return [station_report(histories[s], start, end, heartbeat_interval=interval) for s in station_ids]


async def site_health(site_id: int, start: datetime, end: datetime) -> dict[str, Any] | None:
    site = await Site.select(Site.id, Site.name).where(Site.id == site_id).first()
    if site is None:
        return None
    ids = [r["station_id"] for r in await Station.select(Station.station_id).where(Station.site == site_id)
           .order_by(Station.station_id)]
    reports = await group_health(ids, start, end)
    return {"site": site, "from": start.isoformat(), "to": end.isoformat(), **rollup(reports),
            "station_reports": [station_summary(r) for r in reports]}


async def fleet_health(start: datetime, end: datetime, station_ids: list[str] | None = None) -> dict[str, Any]:
    """Health of every station (``station_ids``: of those only), by site."""
    query = Station.select(Station.station_id, Station.site)
    if station_ids is not None:
        query = query.where(Station.station_id.is_in(station_ids or [""]))
    stations = await query.order_by(Station.station_id)
    sites = {s["id"]: s["name"] for s in await Site.select(Site.id, Site.name)}
    reports = await group_health([s["station_id"] for s in stations], start, end)
    by_site: dict[int | None, list[dict[str, Any]]] = defaultdict(list)
    for station, report in zip(stations, reports):
        by_site[station["site"]].append(report)
    return {
        "from": start.isoformat(), "to": end.isoformat(), **rollup(reports),
        "sites": [{"site": {"id": sid, "name": sites.get(sid, "") if sid is not None else "(no site)"},
                   **rollup(rs)} for sid, rs in sorted(by_site.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))],
        "station_reports": [station_summary(r) for r in reports],
    }
