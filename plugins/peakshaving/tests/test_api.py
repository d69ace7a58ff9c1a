"""Peak shaving through the running server: schedules and the external signal over REST, the core
taking the minimum with the grid, and price shifting with a tariff from ``select_tariff``."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from csms.plugin_api import hookimpl, ocpp_ts, utcnow
from csms.testing import SimStation, SmartChargingSettings, pm


async def make_site(api: Any, limit: float = 32.0) -> dict[str, Any]:
    r = await api.post("/sites", json={"name": "Depot", "grid_limit_l1_a": limit, "grid_limit_l2_a": limit,
                                       "grid_limit_l3_a": limit})
    assert r.status_code == 201, r.text
    return r.json()


async def capacity_now(api: Any, site_id: int) -> list[float | None]:
    r = await api.get(f"/sites/{site_id}/smart-charging")
    assert r.status_code == 200, r.text
    return r.json()["capacity_a"]


async def eventually(check, timeout: float = 15.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert loop.time() < deadline, f"{check} not met within {timeout} s"
        await asyncio.sleep(0.1)


async def test_signal_and_schedules_over_rest(any_server):
    api = any_server.api
    site = await make_site(api)
    base = f"/sites/{site['id']}/peak-shaving"
    until = ocpp_ts(utcnow() + timedelta(hours=1))

    r = await api.put(f"{base}/signal", json={"limit_a": [16, None, 40], "until": until, "source": "DSO"})
    assert r.status_code == 200, r.text
    assert r.json()["active"] is True
    # the core takes the minimum of the signal and the grid limit, phase by phase
    assert await capacity_now(api, site["id"]) == [16.0, 32.0, 32.0]
    overview = (await api.get(base)).json()
    assert overview["signal"]["source"] == "DSO" and overview["signal"]["limit_a"] == [16.0, None, 40.0]
    assert overview["capacity"][0]["limit_a"] == [16.0, 32.0, 32.0]
    assert overview["capacity"][1]["limit_a"] == [32.0, 32.0, 32.0]  # when the signal ends

    r = await api.put(f"{base}/signal", json={"limit_a": [10, 10, 10], "until": until})
    assert r.status_code == 200
    assert await capacity_now(api, site["id"]) == [10.0, 10.0, 10.0]  # it replaced the previous one
    assert (await api.delete(f"{base}/signal")).status_code == 204
    assert await capacity_now(api, site["id"]) == [32.0, 32.0, 32.0]

    r = await api.post(f"{base}/schedules", json={"days": "Mon-Sun", "start_time": "00:00", "end_time": "00:00",
                                                    "limit_a": [None, 20, None], "label": "always"})
    assert r.status_code == 201, r.text
    schedule = r.json()
    assert schedule["days"] == "Mon,Tue,Wed,Thu,Fri,Sat,Sun"
    assert await capacity_now(api, site["id"]) == [32.0, 20.0, 32.0]
    assert (await api.get(base)).json()["schedules"][0]["label"] == "always"
    assert (await api.delete(f"{base}/schedules/{schedule['id']}")).status_code == 204
    assert (await api.delete(f"{base}/schedules/{schedule['id']}")).status_code == 404
    assert await capacity_now(api, site["id"]) == [32.0, 32.0, 32.0]

    r = await api.put(f"{base}/settings", json={"price_shifting": False, "default_departure_h": 4})
    assert r.json() == {"price_shifting": False, "default_departure_h": 4.0, "default_energy_wh": None}

    for path, body in ((f"{base}/schedules", {"days": "Someday", "limit_a": [1, 1, 1]}),
                       (f"{base}/schedules", {"start_time": "7:00", "limit_a": [1, 1, 1]}),
                       (f"{base}/schedules", {"limit_a": [1, 1]}),
                       (f"{base}/schedules", {"limit_a": [-1, 1, 1]})):
        assert (await api.post(path, json=body)).status_code == 400, body
    r = await api.put(f"{base}/signal", json={"limit_a": [1, 1, 1], "until": "2030-01-01T00:00:00"})
    assert r.status_code == 400
    assert (await api.get("/sites/999999/peak-shaving")).status_code == 404
    # the plugin's rows go with their site
    await api.put(f"{base}/signal", json={"limit_a": [1, 1, 1], "until": until})
    assert (await api.delete(f"/sites/{site['id']}")).status_code == 204


class TimeOfDayTariff:
    """A throwaway pricing plugin: energy is dear for the next two hours, cheap afterwards."""

    def __init__(self) -> None:
        start = utcnow().replace(minute=0, second=0, microsecond=0)
        self.tariff = {"id": "TOU", "currency": "EUR", "elements": [
            {"price_components": [{"type": "ENERGY", "price": 0.60, "step_size": 1}],
             "restrictions": {"start_time": start.strftime("%H:%M"),
                              "end_time": (start + timedelta(hours=2)).strftime("%H:%M")}},
            {"price_components": [{"type": "ENERGY", "price": 0.12, "step_size": 1}]},
        ]}

    @hookimpl
    def select_tariff(self, session):
        return self.tariff


@pytest.fixture
def time_of_day_tariff():
    plugin = TimeOfDayTariff()
    pm.register(plugin, name="test-time-of-day-tariff")
    try:
        yield plugin
    finally:
        pm.unregister(name="test-time-of-day-tariff")


async def test_energy_is_shifted_to_the_cheap_hours(server, time_of_day_tariff, monkeypatch):
    monkeypatch.setenv("CSMS_LOADBALANCING_MIN_OFF_S", "0")  # a paused car may start again at once
    api = server.api
    server.core.smart_charging.config = SmartChargingSettings(measure_settle_s=0, boot_grace_s=0.5)
    site = await make_site(api)
    assert (await api.post("/stations", json={"station_id": "PS-1", "site": site["id"]})).status_code == 201
    await api.post("/tokens", json={"id_token": "CAR-PS"})
    st = SimStation("PS-1", server.ws_url("PS-1"), "2.0.1", evses=1, check_frames=True)
    try:
        await st.connect()
        await st.boot()
        await st.announce()
        await st.start_session(1, "CAR-PS")
        session = (await api.get("/sessions", params={"station": "PS-1"})).json()["items"][0]
        departure = ocpp_ts(utcnow() + timedelta(hours=6))
        r = await api.put(f"/sessions/{session['id']}/smart-charging",
                          json={"departure_at": departure, "energy_target_wh": 5000})
        assert r.status_code == 200, r.text

        async def paused() -> dict[str, Any] | None:
            view = (await api.get(f"/sites/{site['id']}/smart-charging")).json()
            c = view["connectors"][0] if view["connectors"] else None
            return view if c and c["allocated_a"] == 0.0 and st.limit_a(1) == 0.0 else None

        view = await eventually(paused)
        # 5 kWh fit in the cheap hours before the departure: nothing is bought at the dear price
        assert view["capacity_a"] == [0.0, 0.0, 0.0]
        later = [p for p in view["capacity_schedule"][1:] if p["limit_a"][0]]
        assert later and later[0]["limit_a"] == [32.0, 32.0, 32.0]

        # without shifting the car charges at once
        await api.put(f"/sites/{site['id']}/peak-shaving/settings", json={"price_shifting": False})
        await eventually(lambda: _limit_is(st, 32.0))
    finally:
        await st.close()


async def _limit_is(st: SimStation, amps: float) -> bool:
    return st.limit_a(1) == amps
