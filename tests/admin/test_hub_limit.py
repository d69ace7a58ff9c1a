"""The admin tells an operator, readably, that a hub is full (Chromium)."""

from __future__ import annotations

from playwright.async_api import expect

from csms.core.tables import Hub, Station
from tests.admin.conftest import screenshot


async def test_a_full_hub_is_explained(page_as, server):
    hub = Hub(name="Garage gateway")
    await hub.save()
    await Station.insert(*[Station(station_id=f"G-{i:02}", hub=hub.id) for i in range(20)],
                         Station(station_id="G-EXTRA"))
    page = await page_as("operator")

    await page.goto("/admin/stations/G-EXTRA")
    await page.get_by_label("Hub").select_option(label="Garage gateway")
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text(
        "hub 'Garage gateway' already has 20 stations, the most a hub can have")
    await screenshot(page, "hub-full-station-save")
    await page.get_by_role("link", name="Back to the page you came from").click()  # to the station, not the dashboard
    await page.wait_for_url("**/admin/stations/G-EXTRA")
    await expect(page.get_by_label("Hub")).to_be_visible()

    phone = await page_as("operator", width=390, height=844)
    await phone.goto("/admin/stations/G-EXTRA")
    await phone.get_by_label("Hub").select_option(label="Garage gateway")
    await phone.get_by_role("button", name="Save", exact=True).click()
    await expect(phone.get_by_role("alert")).to_contain_text("already has 20 stations")
    await screenshot(phone, "hub-full-station-save-phone")

    await page.goto(f"/admin/hubs/{hub.id}/edit")
    await page.get_by_label("G-EXTRA").check()
    await page.get_by_role("button", name="Save hub").click()
    await expect(page.locator("#err-stations")).to_have_text("The hub takes at most 20 stations; 21 are selected.")
    await screenshot(page, "hub-full-hub-form")
    assert await Station.count().where(Station.hub == hub.id) == 20
    assert (await Station.select(Station.hub).where(Station.station_id == "G-EXTRA").first())["hub"] is None
