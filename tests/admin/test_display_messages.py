"""The display messages panel on a 2.0.1 station's page, in Chromium: set a message, ask the
station for its messages, clear one; none on a 1.6 station's page."""

from __future__ import annotations

from playwright.async_api import expect

from csms.testing.stations import station
from tests.admin.conftest import screenshot
from tests.test_display_messages import display_station


async def test_set_refresh_and_clear_a_display_message(page_as, server):
    async with display_station(server, "CP-DM") as cp:
        cp.display[7] = {"id": 7, "priority": "NormalCycle",
                         "message": {"format": "UTF8", "content": "Welcome to the depot"}}
        page = await page_as("operator")
        await page.goto("/admin/stations/CP-DM")
        panel = page.locator("#display-messages")
        await expect(panel).to_contain_text("Display messages")
        await expect(panel.locator("[data-field=empty]")).to_be_visible()

        await panel.get_by_role("button", name="Ask the station for its messages").click()
        await expect(panel.locator("[data-outcome]")).to_contain_text("Asked the station for its messages.")
        await expect(panel.locator("tr[data-message-id='7']")).to_contain_text("Welcome to the depot")

        await panel.locator("summary", has_text="Show a message").click()
        await panel.get_by_label("Message", exact=True).fill("Free charging until noon")
        await panel.get_by_label("Priority").select_option("InFront")
        await panel.get_by_label("Only while the station is").select_option("Idle")
        await panel.get_by_role("button", name="Show message").click()
        await expect(panel.locator("[data-outcome]")).to_contain_text("Shown: the station accepted message 8.")
        row = panel.locator("tr[data-message-id='8']")
        await expect(row).to_contain_text("Free charging until noon")
        await expect(row).to_contain_text("InFront")
        await expect(row).to_contain_text("while Idle")
        assert cp.display[8]["priority"] == "InFront" and cp.display[8]["state"] == "Idle"
        await panel.scroll_into_view_if_needed()
        await screenshot(page, "station-display-messages")

        await panel.get_by_role("button", name="Clear message 7").click()
        await expect(panel.locator("[data-outcome]")).to_contain_text("Message 7 cleared.")
        await expect(panel.locator("tr[data-message-id='7']")).to_have_count(0)
        assert 7 not in cp.display

        await panel.locator("summary", has_text="Show a message").click()
        await panel.get_by_label("Message", exact=True).fill("REJECT")
        await panel.get_by_role("button", name="Show message").click()
        await expect(panel.locator("[data-outcome]")).to_contain_text("The station answered Rejected.")

        viewer = await page_as("viewer", width=390, height=844)
        await viewer.goto("/admin/stations/CP-DM")
        await expect(viewer.locator("tr[data-message-id='8']")).to_contain_text("Free charging until noon")
        await expect(viewer.locator("#display-messages").get_by_role("button")).to_have_count(0)
        await screenshot(viewer, "station-display-messages-phone")

    async with station(server, "CP-DM16", "1.6"):
        await page.goto("/admin/stations/CP-DM16")
        await expect(page.locator("h1")).to_contain_text("CP-DM16")
        await expect(page.locator("#display-messages")).to_have_count(0)
