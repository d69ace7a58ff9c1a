"""Start and stop a session from the admin on a real station, then find it with its charts."""

from __future__ import annotations

import asyncio

from playwright.async_api import expect

from csms.core.tables import ChargingSession, IdToken
from tests.admin.conftest import screenshot
from tests.admin.station import online_station


async def test_remote_start_and_stop_from_the_station_page(page_as, server):
    await IdToken(id_token="CARD-0042", type="ISO14443", label="Fleet car 42").save()
    page = await page_as("operator")
    async with online_station(server.ws_url("CP-RS"), "CP-RS") as station:
        await page.goto("/admin/stations/CP-RS")
        remote_start = page.locator("details", has_text="Remote start")
        await remote_start.get_by_text("Remote start").click()
        await remote_start.get_by_label("Card or token").select_option("CARD-0042")
        await remote_start.get_by_label("EVSE").select_option("1")
        await remote_start.get_by_role("button", name="Start charging").click()
        result = page.locator("#action-result")
        await expect(result).to_contain_text("Remote start: the station answered Accepted")
        await result.get_by_text("The station's answer").click()
        await expect(result.locator("pre")).to_contain_text(station.transaction_id)

        active = page.locator("#active-sessions")  # appears live, without a reload
        await expect(active).to_contain_text("CARD-0042")
        await expect(page.locator("tr[data-connector='1/1'] .connector-status")).to_contain_text("Occupied")
        await expect(active).to_contain_text("11.00 kW")  # the station's periodic samples, pushed live
        await screenshot(page, "station-charging")

        page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))  # stopping asks first
        await page.get_by_role("button", name="Stop session").click()
        await expect(result).to_contain_text("Remote stop: the station answered Accepted")
        await expect(page.get_by_text("No session running.")).to_be_visible()
        assert station.events[0] == "Started" and station.events[-1] == "Ended"

    row = await ChargingSession.select().where(ChargingSession.id_token == "CARD-0042").first()
    assert row["state"] == "completed" and row["stop_reason"] == "Remote"
    assert row["energy_wh"] == 500.0  # 3 x 150 Wh while charging and 50 Wh at the end

    await page.goto("/admin/sessions")
    await page.get_by_label("Token").fill("CARD-0042")
    await page.get_by_role("button", name="Filter").click()
    sessions = page.locator("#sessions tbody tr")
    await expect(sessions).to_have_count(1)
    await expect(sessions).to_contain_text("completed")
    await expect(sessions).to_contain_text("0.50 kWh")
    await screenshot(page, "sessions")

    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Export CSV").click()
    download = await download_info.value
    text = open(await download.path(), encoding="utf-8").read()
    assert text.splitlines()[0].startswith("id,station_id,")
    assert "CARD-0042" in text and len(text.splitlines()) == 2

    await sessions.get_by_role("link", name=f"#{row['id']}").click()
    await expect(page.get_by_role("heading", name=f"Session #{row['id']}")).to_be_visible()
    for chart in ("chart-power", "chart-energy", "chart-current"):
        await expect(page.locator(f"#{chart} canvas")).to_have_count(1)
    await expect(page.locator("#chart-current")).to_contain_text("L3")  # one series per phase
    await expect(page.locator("#session-energy")).to_have_text("0.50 kWh")
    await screenshot(page, "session")


async def test_session_filters_and_cost_panel(page_as, server):
    from csms import SessionCost, hookimpl
    from csms.core.domain import CostLine
    from decimal import Decimal
    from csms.plugins import pm

    class FlatPrice:
        @hookimpl(tryfirst=True)
        def price_session(self, session, final):
            kwh = Decimal(str(session["energy_wh"] or 0)) / 1000
            amount = (kwh * Decimal("0.40")).quantize(Decimal("0.01"))
            line = CostLine("ENERGY", "Energy", kwh, "kWh", Decimal("0.40"), amount, Decimal("0"))
            return SessionCost("EUR", amount, amount, (line,), final=final, tariff_id="flat-40")

    plugin = FlatPrice()
    pm.register(plugin, name="test-flat-price")
    try:
        await IdToken(id_token="CARD-7", type="ISO14443").save()
        page = await page_as("admin")
        async with online_station(server.ws_url("CP-P"), "CP-P"):
            await page.goto("/admin/stations/CP-P")
            await page.get_by_text("Remote start").click()
            await page.get_by_label("…or another token").fill("CARD-7")
            await page.get_by_role("button", name="Start charging").click()
            await expect(page.locator("#active-sessions")).to_contain_text("CARD-7")
            session_link = page.locator("#active-sessions a").first
            await session_link.click()
            await expect(page.locator("#cost")).to_contain_text("So far")
            await expect(page.locator("#cost")).to_contain_text("flat-40")
        await page.goto("/admin/sessions?state=active")
        await expect(page.locator("#sessions tbody tr")).to_have_count(1)
        await page.goto("/admin/sessions?from=not-a-date")
        await expect(page.get_by_role("alert")).to_contain_text("is not a date")
    finally:
        pm.unregister(plugin)


async def test_a_session_with_one_reading_has_a_readable_time_axis(page_as, server):
    """One stored reading: the chart shows minutes around it, not an axis stretched over years."""
    from datetime import datetime, timezone

    from ocpp.v16 import call as call16

    from tests.stations import connect

    await IdToken(id_token="CARD-ONE", type="ISO14443").save()
    now = datetime.now(timezone.utc).isoformat()
    async with connect(server.ws_url("CP-ONE"), "CP-ONE", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="Test", charge_point_model="One"))
        tx = (await cp.call(call16.StartTransaction(connector_id=1, id_tag="CARD-ONE", meter_start=0,
                                                    timestamp=now))).transaction_id
        await cp.call(call16.MeterValues(connector_id=1, transaction_id=tx, meter_value=[
            {"timestamp": now, "sampledValue": [{"value": "7400", "measurand": "Power.Active.Import", "unit": "W"}]}]))
    await server.core.writer.flush()
    row = await ChargingSession.select(ChargingSession.id).where(ChargingSession.id_token == "CARD-ONE").first()
    page = await page_as("viewer")
    await page.goto(f"/admin/sessions/{row['id']}")
    await expect(page.locator("#chart-power canvas")).to_have_count(1)
    span = await page.evaluate("(() => { const x = document.getElementById('chart-power').uplot.scales.x;"
                               " return x.max - x.min; })()")
    assert 0 < span <= 3600, span  # seconds
    await screenshot(page, "session-one-reading")
