"""The OCPP 2.1 DER and battery swap panel, and the customer data clears panel (N10), on the
station page in Chromium, on a desktop and on a phone: set a DER control (the settings as 2.1
JSON), ask for the controls and see the station's report, clear them, request a battery swap and
see its report; what goes wrong reads as words (settings that are no JSON or break the 2.1
schema, the station's NotFound, the station offline). A 2.0.1 station gets no DER panel; a
viewer gets no forms."""

from __future__ import annotations

from typing import Any

import pytest
from ocpp.routing import after
from ocpp.v21 import call as call21
from ocpp.v21.enums import Action as Action21
from playwright.async_api import expect

from csms.core.tables import StationDataClear
from csms.core.timeutil import utcnow
from csms.testing.stations import station
from tests.admin.conftest import screenshot
from tests.test_der_and_battery_swap import DROOP, DROOP_SNAKE, DerStation
from tests.test_ocpp_21 import library_station
from tests.test_ocpp_rpc_strict import eventually

DEVICES = [("desktop", 1280, 900), ("phone", 390, 844)]


class ReportingDerStation(DerStation):
    """Sends its report after a GetDERControl and the swap after a RequestBatterySwap."""

    @after(Action21.get_der_control)
    async def after_get_der_control(self, request_id, **kwargs):
        await self.call(call21.ReportDERControl(request_id=request_id, freq_droop=[
            {"id": "droop-1", "is_default": False, "is_superseded": False, "freq_droop": DROOP_SNAKE}]))

    @after(Action21.request_battery_swap)
    async def after_request_battery_swap(self, request_id, id_token, **kwargs):
        await self.call(call21.BatterySwap(
            event_type="BatteryOut", request_id=request_id, id_token=id_token,
            battery_data=[{"evse_id": 1, "serial_number": "B-7", "so_c": 80, "so_h": 95}]))


async def _reloaded(page: Any) -> None:
    """Wait for the panel's one reload after a request whose report follows its answer."""
    await page.wait_for_function("() => !document.querySelector('#der').hasAttribute('hx-get')")


async def _open(panel: Any, summary: str) -> None:
    """Open a form of the panel (each answer brings the panel back with its forms closed)."""
    details = panel.locator("details", has=panel.page.locator("summary", has_text=summary))
    if not await details.evaluate("d => d.open"):
        await panel.locator("summary", has_text=summary).click()


@pytest.mark.parametrize("device", DEVICES, ids=[d[0] for d in DEVICES])
async def test_der_controls_and_battery_swap_panel(page_as, server, device):
    name, width, height = device
    sid = f"ADMDER-{name}"
    page = await page_as("operator", width=width, height=height)
    async with library_station(server, sid, "Der21", ReportingDerStation) as cp:
        cp.calls = []
        await page.goto(f"/admin/stations/{sid}")
        panel = page.locator("#der")
        await expect(panel.locator("[data-field=empty]")).to_be_visible()
        outcome = panel.locator("[data-outcome]")

        await _open(panel, "Set a DER control")
        await panel.get_by_label("Control id", exact=True).fill("droop-1")
        await panel.locator("#der-type").select_option("FreqDroop")
        await panel.get_by_label("Settings").fill('{"priority": 1')  # cut short: no JSON
        await panel.get_by_role("button", name="Set DER control").click()
        await expect(outcome).to_have_text("the settings are not a JSON object (e.g. {\"priority\": 1, ...})")
        await _open(panel, "Set a DER control")
        await panel.get_by_label("Control id", exact=True).fill("droop-1")
        await panel.get_by_label("Settings").fill('{"priority": 1}')  # a FreqDroop needs more
        await panel.get_by_role("button", name="Set DER control").click()
        await expect(outcome).to_contain_text("The request is not valid OCPP")
        assert cp.calls == []  # nothing reached the station
        await _open(panel, "Set a DER control")
        await panel.scroll_into_view_if_needed()
        await screenshot(page, f"station-der-form-{name}")

        await _open(panel, "Set a DER control")
        await panel.get_by_label("Control id", exact=True).fill("droop-1")
        await panel.get_by_label("Settings").fill(
            '{"priority": 1, "overFreq": 50.2, "underFreq": 49.8, "overDroop": 0.05, "underDroop": 0.05, '
            '"responseTime": 2}')
        await panel.get_by_role("button", name="Set DER control").click()
        await expect(outcome).to_have_text("DER control accepted; it supersedes old-1.")
        assert cp.calls[-1][0] == "SetDERControl" and cp.calls[-1][1]["freq_droop"]["over_freq"] == DROOP["overFreq"]

        await _open(panel, "Ask for DER controls")
        await panel.locator("#der-get-type").select_option("FreqDroop")
        await panel.get_by_role("button", name="Ask the station").click()
        await expect(outcome).to_contain_text("Asked the station for its DER controls")
        await _reloaded(page)
        await expect(panel.locator("tr[data-kind=ReportDERControl]")).to_contain_text("1 freqDroop")
        assert cp.calls[-1][0] == "GetDERControl" and cp.calls[-1][1]["control_type"] == "FreqDroop"

        await _open(panel, "Clear DER controls")
        await panel.locator("#der-clear-kind").select_option("default")
        await panel.locator("#der-clear-id").fill("nope")
        await panel.get_by_role("button", name="Clear DER controls").click()
        await expect(outcome).to_have_text("The station answered NotFound.")
        await expect(outcome).to_have_class("outcome error")
        await _open(panel, "Clear DER controls")
        await expect(panel.locator("#der-clear-kind")).to_have_value("default")  # kept after the error
        await expect(panel.locator("#der-clear-id")).to_have_value("nope")
        await panel.locator("#der-clear-kind").select_option("scheduled")
        await panel.locator("#der-clear-id").fill("droop-1")
        await panel.get_by_role("button", name="Clear DER controls").click()
        await expect(outcome).to_have_text("DER controls cleared.")
        assert cp.calls[-1] == ("ClearDERControl", {"is_default": False, "control_id": "droop-1"})

        await _open(panel, "Request a battery swap")
        await panel.get_by_label("Id token of the driver").fill("SWAP-7")
        await panel.get_by_role("button", name="Request battery swap").click()
        await expect(outcome).to_contain_text("Battery swap requested")
        await _reloaded(page)
        await expect(panel.locator("tr[data-kind=BatteryOut]")).to_contain_text("B-7 80 %")
        await panel.scroll_into_view_if_needed()
        await screenshot(page, f"station-der-{name}")

    # the station is gone: the form says so
    async def offline() -> bool:
        return (await server.api.get(f"/stations/{sid}")).json()["online"] is False

    await eventually(offline, what="the station offline")
    await _open(panel, "Request a battery swap")
    await panel.get_by_label("Id token of the driver").fill("SWAP-8")
    await panel.get_by_role("button", name="Request battery swap").click()
    await expect(outcome).to_have_text("The station is offline.")
    await screenshot(page, f"station-der-offline-{name}")

    viewer = await page_as("viewer", width=width, height=height)
    await viewer.goto(f"/admin/stations/{sid}")
    await expect(viewer.locator("#der tr[data-kind=BatteryOut]")).to_be_visible()
    await expect(viewer.locator("#der form")).to_have_count(0)

    async with station(server, f"ADMDER201-{name}", "2.0.1"):
        await page.goto(f"/admin/stations/ADMDER201-{name}")
        await expect(page.locator("h1")).to_contain_text("ADMDER201")
        await expect(page.locator("#der")).to_have_count(0)


@pytest.mark.parametrize("device", DEVICES, ids=[d[0] for d in DEVICES])
async def test_customer_data_clears_on_the_station_page(page_as, server, device):
    name, width, height = device
    async with station(server, "ADMCLR", "2.0.1"):
        page = await page_as("viewer", width=width, height=height)
        await page.goto("/admin/stations/ADMCLR")
        await expect(page.locator("h1")).to_contain_text("ADMCLR")
        await expect(page.locator("#data-clears")).to_have_count(0)  # no erasure reached it

        now = utcnow()
        await StationDataClear.insert(
            StationDataClear(station_id="ADMCLR", driver_id=4, id_token="CARD-A", token_type="ISO14443",
                             status="Accepted", detail="accepted (cleared)", attempts=1, request_id=11,
                             created_at=now, done_at=now),
            StationDataClear(station_id="ADMCLR", driver_id=4, id_token="CARD-B", token_type="ISO14443",
                             status="Timeout", detail="the station did not answer in time (3 tries)", attempts=3,
                             created_at=now, done_at=now),
            StationDataClear(station_id="ADMCLR", driver_id=5, id_token="CARD-C", token_type="ISO14443",
                             status="Pending", created_at=now),
            StationDataClear(station_id="OTHER", driver_id=5, id_token="CARD-D", status="Pending", created_at=now))
        await page.goto("/admin/stations/ADMCLR")
        panel = page.locator("#data-clears")
        await expect(panel.locator("tbody tr")).to_have_count(3)
        await expect(panel).to_contain_text("1 clear waits for the station to connect.")
        await expect(panel.locator("tr[data-clear-status=Accepted] [data-field=outcome]")).to_contain_text(
            "Accepted: accepted (cleared)")
        await expect(panel.locator("tr[data-clear-status=Timeout]")).to_contain_text("3 attempts")
        await expect(panel.locator("tr[data-clear-status=Pending] [data-field=outcome]")).to_have_text("waiting")
        await expect(panel).not_to_contain_text("CARD-D")
        await panel.scroll_into_view_if_needed()
        await screenshot(page, f"station-data-clears-{name}")
