"""Asking for a log from the station page, in Chromium: a 2.0.1 station's security log with
GetLog, its upload status stored; a 1.6 station whose security extension is not known is told in
words why it has no security log; phone viewport."""

from __future__ import annotations

from playwright.async_api import expect

from csms.core.tables import Station
from tests.admin.conftest import screenshot
from tests.test_display_messages import eventually
from tests.test_get_log import log_station


async def ask_for_log(page, log: str) -> None:
    form = page.locator("details", has_text="Get diagnostics / logs")
    if await form.get_attribute("open") is None:
        await form.locator("summary").click()
    await form.get_by_label("Upload to (URL)").fill("ftp://logs.example.org/upload/")
    await form.locator("#log-type").select_option(label=log)
    await form.get_by_role("button", name="Request upload").click()


async def test_security_log_from_the_station_page(page_as, server):
    async with log_station(server, "CP-LOG", "2.0.1") as cp:
        page = await page_as("operator")
        await page.goto("/admin/stations/CP-LOG")
        await ask_for_log(page, "Security log (GetLog)")
        await expect(page.locator("#action-result")).to_contain_text(
            "Get diagnostics / logs: the station answered Accepted.")
        assert cp.received[-1][0] == "GetLog" and cp.received[-1][1]["log_type"] == "SecurityLog"

        async def uploaded() -> bool:
            row = await Station.select(Station.log_status).where(Station.station_id == "CP-LOG").first()
            return row["log_status"] == "Uploaded"

        await eventually(uploaded)

    async with log_station(server, "CP-LOG16", "1.6") as cp:
        phone = await page_as("operator", width=390, height=844)
        await phone.goto("/admin/stations/CP-LOG16")
        await ask_for_log(phone, "Security log (GetLog)")
        await expect(phone.locator("#action-result")).to_contain_text("its security extension is not known")
        assert not [m for m in cp.received if m[0] in ("GetLog", "GetDiagnostics")]
        await phone.locator("#action-result").scroll_into_view_if_needed()
        await screenshot(phone, "station-security-log-16-phone")
        await ask_for_log(phone, "Diagnostics")
        await expect(phone.locator("#action-result")).to_contain_text("the station answered Accepted")
        assert cp.received[-1][0] == "GetDiagnostics"
