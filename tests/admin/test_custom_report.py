"""B08 Get Custom Report from a 2.0.1 station's configuration tab, in Chromium: the variables
reported appear below without a reload; a report with nothing matching and an offline station
are said in words; a 1.6 station's tab has no such form."""

from __future__ import annotations

from playwright.async_api import expect

from csms.testing.stations import station
from tests.admin.conftest import screenshot
from tests.test_custom_report import report_station


async def test_custom_report_from_the_configuration_tab(page_as, server):
    async with report_station(server, "CP-CREP") as cp:
        page = await page_as("operator")
        await page.goto("/admin/stations/CP-CREP?tab=configuration")
        result = page.locator("#action-result .outcome")
        form = page.locator("details", has_text="Custom report")
        await form.locator("summary").click()
        await form.get_by_label("Components (one a line: Component or Component/Variable)").fill(
            "EVSE\nOCPPCommCtrlr/HeartbeatInterval")
        await form.get_by_role("button", name="Ask for the report").click()
        await expect(result).to_contain_text("Custom report: the station answered Accepted.")
        table = page.locator("#device-variables")
        await expect(table).to_contain_text("HeartbeatInterval")  # pushed live, no reload
        await expect(table).to_contain_text("AvailabilityState")
        await expect(table).not_to_contain_text("NetworkConfigurationPriority")
        assert cp.received[-1][1]["component_variable"] == [
            {"component": {"name": "EVSE"}}, {"component": {"name": "OCPPCommCtrlr"},
                                             "variable": {"name": "HeartbeatInterval"}}]
        await screenshot(page, "station-custom-report")

        phone = await page_as("operator", width=390, height=844)
        await phone.goto("/admin/stations/CP-CREP?tab=configuration")
        form = phone.locator("details", has_text="Custom report")
        await form.locator("summary").click()
        await form.get_by_label("Components (one a line: Component or Component/Variable)").fill("Nothing")
        await form.get_by_label("Only components that are").select_option("Problem")
        await form.get_by_role("button", name="Ask for the report").click()
        await expect(phone.locator("#action-result .outcome")).to_contain_text(
            "Custom report: the station has nothing that matches (EmptyResultSet).")
        assert cp.received[-1][1]["criteria"] == ["Problem"]
        await screenshot(phone, "station-custom-report-phone")

        await form.get_by_label("Components (one a line: Component or Component/Variable)").fill("")
        await form.get_by_label("Only components that are").select_option("")
        await form.get_by_role("button", name="Ask for the report").click()
        await expect(phone.locator("#action-result .outcome")).to_contain_text("name components or criteria")

    await form.get_by_label("Only components that are").select_option("Active")
    await form.get_by_role("button", name="Ask for the report").click()
    await expect(phone.locator("#action-result .outcome")).to_contain_text("CP-CREP is offline")

    async with station(server, "CP-CREP16", "1.6"):
        await page.goto("/admin/stations/CP-CREP16?tab=configuration")
        await expect(page.get_by_role("button", name="Read from station")).to_be_visible()
        await expect(page.locator("details", has_text="Custom report")).to_have_count(0)
