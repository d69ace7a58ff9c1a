"""The dashboard's last-hour power chart: rebuilt from the stored meter values (it survives a
restart), the caller's stations only; its y axis starts at 0 and its time labels do not overlap,
on a desktop and on a phone."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from ocpp.v16 import call as call16
from playwright.async_api import expect

from csms.admin.dashboard import power_points
from csms.core.tables import Organization, Station
from csms.testing import admin_browser, screenshot, server_on
from tests.stations import connect

POWER, ENERGY = "Power.Active.Import", "Energy.Active.Import.Register"


def ts(seconds_ago: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)


def row(session: int, seconds_ago: float, measurand: str, value: float, unit: str = "W") -> dict:
    return {"session": session, "timestamp": ts(seconds_ago), "measurand": measurand, "phase": "", "unit": unit,
            "value": value}


def test_power_points_add_sessions_and_derive_power_from_energy():
    now = datetime.now(timezone.utc).timestamp()
    rows = [row(1, 1800, POWER, 7.2, "kW"), row(1, 600, POWER, 3000),  # session 1: 7.2 kW, then 3 kW
            row(2, 1200, ENERGY, 10000), row(2, 600, ENERGY, 11000)]   # session 2: 1 kWh in 10 min = 6 kW
    points = power_points(rows, {1: None, 2: now - 300}, now)
    assert len(points) == 60 and all(b[0] - a[0] == 60 for a, b in zip(points, points[1:]))
    by_age = {round(now - t): w for t, w in points}

    def at(seconds_ago: int) -> float:
        return min(by_age.items(), key=lambda kv: abs(kv[0] - seconds_ago))[1]

    assert at(3000) == 0 and at(1500) == 7200 and at(450) == 3000 + 6000 and at(100) == 3000  # 2 stopped
    assert power_points([row(1, 3500, POWER, 5000)], {1: None}, now)[-1][1] == 0  # stale after 15 minutes


async def power_session(server, station_id: str, token: str, organization: int | None) -> None:
    async with connect(server.ws_url(station_id), station_id, "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="Test", charge_point_model="Power"))
        await Station.update({Station.organization: organization}).where(Station.station_id == station_id)
        tx = (await cp.call(call16.StartTransaction(connector_id=1, id_tag=token, meter_start=0,
                                                    timestamp=ts(1500).isoformat()))).transaction_id
        for ago, watts in ((1400, 11000), (900, 11200), (400, 200)):
            await cp.call(call16.MeterValues(connector_id=1, transaction_id=tx, meter_value=[
                {"timestamp": ts(ago).isoformat(), "sampledValue": [
                    {"value": str(watts), "measurand": POWER, "unit": "W"}]}]))
    await server.core.writer.flush()


@pytest.mark.parametrize("device", [("desktop", 1280, 900), ("phone", 390, 844)], ids=["desktop", "phone"])
async def test_history_survives_a_restart(tmp_path, device):
    name, width, height = device
    async with server_on(tmp_path, unknown_stations="accept") as first:
        alpha = Organization(name="Alpha", kind="customer")
        await alpha.save()
        await power_session(first, "CP-POWER", "CARD-P", None)
        await power_session(first, "CP-ALPHA", "CARD-A", alpha.id)
    async with server_on(tmp_path, unknown_stations="accept") as second:  # a restart: memory is empty
        async with admin_browser(second, "admin", width=width, height=height) as page:
            await page.goto("/")
            chart = page.locator("#power-chart")
            await expect(chart.locator("canvas")).to_be_visible()
            peak = await page.evaluate("Math.max.apply(null, document.getElementById('power-chart').uplot.data[1])")
            assert peak == pytest.approx(22.4)  # kW: both stations' 11.2 kW from before the restart
            y_min = await page.evaluate("document.getElementById('power-chart').uplot.scales.y.min")
            assert y_min == 0
            gaps = await page.evaluate("""(() => { const u = document.getElementById('power-chart').uplot;
                const xs = u.axes[0]._splits.map(v => u.valToPos(v, 'x'));
                return xs.slice(1).map((x, i) => x - xs[i]); })()""")
            assert gaps and min(gaps) >= 80, gaps
            await screenshot(page, f"dashboard-power-history-{name}")
        async with admin_browser(second, "viewer", organization=alpha.id, width=width, height=height) as page:
            await page.goto("/")
            await expect(page.locator("#power-chart canvas")).to_be_visible()
            peak = await page.evaluate("Math.max.apply(null, document.getElementById('power-chart').uplot.data[1])")
            assert peak == pytest.approx(11.2)  # Alpha's station only
