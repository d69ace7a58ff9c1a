"""The reservations panel on a station's page, in Chromium (desktop and phone)."""

from __future__ import annotations

import asyncio

from playwright.async_api import expect

from csms.testing.stations import station
from tests.admin.conftest import screenshot


async def test_station_page_reserves_and_cancels(page_as, server):
    async with station(server, "CP-RES", "2.0.1") as cp:
        page = await page_as("operator")
        await page.goto("/admin/stations/CP-RES")
        panel = page.locator("#reservations")
        await expect(panel).to_contain_text("No active reservation.")

        form = panel.locator("[data-form=reserve]")
        await form.get_by_label("Card").fill("PANEL-CARD")
        await form.get_by_label("EVSE").fill("1")
        await form.get_by_label("Connector type").fill("cType2")
        await form.get_by_label("Minutes").fill("45")
        await form.get_by_role("button", name="Reserve").click()
        await expect(panel.locator("[data-outcome]")).to_contain_text("Reserved: reservation 1 for PANEL-CARD")
        row = panel.locator("tr[data-reservation='1']")
        await expect(row).to_contain_text("accepted")
        await expect(row).to_contain_text("cType2")
        assert cp.reservations[1]["connector_type"] == "cType2"

        cp.reserve_answer = "Occupied"  # the station refuses: said in words, the form keeps its values
        await form.get_by_label("Card").fill("SECOND-CARD")
        await form.get_by_role("button", name="Reserve").click()
        await expect(panel.locator("[data-outcome]")).to_contain_text("Not reserved: the station answered Occupied.")
        await expect(panel.locator("[data-form=reserve]").get_by_label("Card")).to_have_value("SECOND-CARD")

        await panel.locator("[data-form=reserve]").get_by_label("Connector type").fill("cBogus")
        await panel.locator("[data-form=reserve]").get_by_role("button", name="Reserve").click()
        await expect(panel.locator("[data-outcome]")).to_contain_text("Not reserved: unknown connector_type 'cBogus'")
        await panel.scroll_into_view_if_needed()
        await screenshot(page, "station-reservations")

        asked: list[str] = []

        def answer(dialog, accept: bool) -> None:
            asked.append(dialog.message)
            asyncio.ensure_future(dialog.accept() if accept else dialog.dismiss())

        page.once("dialog", lambda d: answer(d, False))  # "Cancel" in the confirmation sends nothing
        await panel.locator("tr[data-reservation='1']").get_by_role("button", name="Cancel").click()
        await asyncio.sleep(0.3)
        assert asked and "Cancel reservation 1 for PANEL-CARD?" in asked[0] and 1 in cp.reservations
        page.once("dialog", lambda d: answer(d, True))
        await panel.locator("tr[data-reservation='1']").get_by_role("button", name="Cancel").click()
        await expect(panel.locator("[data-outcome]")).to_contain_text("Reservation 1 cancelled.")
        await expect(panel.locator("[data-list=active]")).to_contain_text("No active reservation.")
        assert 1 not in cp.reservations
        await panel.locator("summary", has_text="Recent").click()
        await expect(panel.locator("table[data-list=recent] tr[data-reservation='1']")).to_contain_text("cancelled")

        phone = await page_as("viewer", width=390, height=844)
        await phone.goto("/admin/stations/CP-RES")
        phone_panel = phone.locator("#reservations")
        await expect(phone_panel).to_contain_text("Reservations")
        await expect(phone_panel.locator("[data-form=reserve]")).to_have_count(0)
        await screenshot(phone, "station-reservations-phone")

    # offline: the operator is told so, as text in the panel
    await asyncio.sleep(0.3)
    await page.goto("/admin/stations/CP-RES")
    form = page.locator("#reservations [data-form=reserve]")
    await form.get_by_label("Card").fill("LATE-CARD")
    await form.get_by_role("button", name="Reserve").click()
    await expect(page.locator("#reservations [data-outcome]")).to_contain_text("The station is offline")
