"""Uptime and availability from a recorded status history, checked against hand-computed values."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from csms.plugin_api import Site, Station, StationEvent
from plugins.stationops.health import StationHistory, station_report

T0 = datetime(2024, 5, 1, 0, 0, tzinfo=timezone.utc)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# One station over 10 hours (T0 .. T0+600 min), a 1.6 station with one connector:
#   before T0:  connected (at -60), connector Available (at -30)
#   +60  Charging            +120 Finishing -> +125 Available
#   +200 Faulted (GroundFailure)  +230 Available
#   +300 disconnected       +330 connected (boot PowerUp at +331)
#   +400 Unavailable        +460 Available
#   +500 Faulted (GroundFailure) again (a new fault)  +510 Faulted (same) +520 Available
# NotifyEvent-like problem rows are not in a 1.6 history.
HISTORY = [
    (-60, "connection", "connected", None, None, {}),
    (-30, "status", "Available", 1, 1, {"error_code": "NoError"}),
    (60, "status", "Charging", 1, 1, {"error_code": "NoError"}),
    (120, "status", "Finishing", 1, 1, {"error_code": "NoError"}),
    (125, "status", "Available", 1, 1, {"error_code": "NoError"}),
    (200, "fault", "Faulted", 1, 1, {"error_code": "GroundFailure"}),
    (230, "status", "Available", 1, 1, {"error_code": "NoError"}),
    (300, "connection", "disconnected", None, None, {}),
    (330, "connection", "connected", None, None, {}),
    (331, "boot", "PowerUp", None, None, {}),
    (400, "status", "Unavailable", 1, 1, {"error_code": "NoError"}),
    (460, "status", "Available", 1, 1, {"error_code": "NoError"}),
    (500, "fault", "Faulted", 1, 1, {"error_code": "GroundFailure"}),
    (510, "fault", "Faulted", 1, 1, {"error_code": "GroundFailure"}),
    (520, "status", "Available", 1, 1, {"error_code": "NoError"}),
]

# By hand, in minutes over 600:
#   connected: 0-300 and 330-600 = 570; offline 30          -> uptime 95 %
#   Available: 0-60, 125-200, 230-300, 460-500, 520-600 = 60+75+70+40+80 = 325
#   Charging 60-120 = 60; Finishing 120-125 = 5; Faulted 200-230 + 500-520 = 50
#   Offline 300-330 = 30; Unavailable: 330-400 (last status before going offline was Available,
#   so 330-400 is Available again) -> Available += 70 = 395; Unavailable 400-460 = 60
#   check: 395 + 60 + 5 + 50 + 30 + 60 = 600
#   operative = Available + Charging + Finishing = 395 + 60 + 5 = 460 -> availability 460/600
EXPECTED_MINUTES = {"Available": 395, "Charging": 60, "Finishing": 5, "Faulted": 50, "Offline": 30, "Unavailable": 60}


def rows(station_id: str) -> list[dict]:
    return [{"id": i, "station_id": station_id, "category": cat, "kind": kind, "evse_id": evse,
             "connector_id": conn, "summary": "", "details": details, "timestamp": at(m)}
            for i, (m, cat, kind, evse, conn, details) in enumerate(HISTORY)]


def check_report(report: dict) -> None:
    assert report["period_s"] == 600 * 60
    assert report["connected_s"] == 570 * 60 and report["offline_s"] == 30 * 60
    assert report["uptime_pct"] == 95.0
    (connector,) = report["connectors"]
    assert connector["time_in_status"] == {k: v * 60.0 for k, v in sorted(EXPECTED_MINUTES.items())}
    assert connector["availability_pct"] == round(100 * 460 / 600, 3)
    assert connector["faults"] == 2 and report["fault_count"] == 2
    assert report["faults_by_code"] == {"GroundFailure": 2}
    assert report["connection_drops"] == 1
    assert report["boots"] == {"PowerUp": 1}
    assert report["heartbeats_missed"] == 30 * 60 // 300


def test_report_from_history_matches_hand_computed_values():
    history = StationHistory("H1", connectors={(1, 1)})
    all_rows = rows("H1")
    history.before = [r for r in all_rows if r["timestamp"] < T0]
    history.rows = [r for r in all_rows if r["timestamp"] >= T0]
    check_report(station_report(history, T0, at(600), heartbeat_interval=300))


def test_unknown_time_is_left_out():
    history = StationHistory("H2", connectors={(1, 1)})
    history.rows = [r for r in rows("H2") if r["timestamp"] >= at(60)]  # nothing known before +60
    report = station_report(history, T0, at(600), heartbeat_interval=300)
    assert report["unknown_s"] == 300 * 60  # connection known only from +300 (the disconnect)
    assert report["uptime_pct"] == round(100 * 270 / 300, 3)
    (connector,) = report["connectors"]
    assert connector["unknown_s"] == 60 * 60
    assert connector["known_s"] == 540 * 60


async def test_rest_reports_from_the_recorded_history(any_server):
    server = any_server
    site = Site(name="Depot", timezone="Europe/Berlin")
    await site.save()
    await Station(station_id="H1", site=site.id).save()
    await Station(station_id="H0", site=site.id).save()  # nothing recorded: all unknown
    await StationEvent.insert(*[
        StationEvent(station_id="H1", category=cat, kind=kind, evse_id=evse, connector_id=conn,
                     details=json.dumps(details), timestamp=at(m)) for m, cat, kind, evse, conn, details in HISTORY])
    params = {"from": T0.isoformat(), "to": at(600).isoformat()}
    response = await server.api.get("/health/stations/H1", params=params)
    assert response.status_code == 200, response.text
    check_report(response.json())

    site_report = (await server.api.get(f"/health/sites/{site.id}", params=params)).json()
    assert site_report["stations"] == 2 and site_report["uptime_pct"] == 95.0
    assert site_report["availability_pct"] == round(100 * 460 / 600, 3)
    fleet = (await server.api.get("/health/fleet", params=params)).json()
    assert fleet["fault_count"] == 2 and fleet["connection_drops"] == 1
    assert [s["site"]["name"] for s in fleet["sites"]] == ["Depot"]
    assert (await server.api.get("/health/stations/NOPE", params=params)).status_code == 404
    bad = await server.api.get("/health/fleet", params={"from": at(10).isoformat(), "to": T0.isoformat()})
    assert bad.status_code == 400
