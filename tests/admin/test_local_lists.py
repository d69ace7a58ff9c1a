"""The local authorization list panel on a station's page, in Chromium (desktop and phone)."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect

from csms.core.tables import IdToken
from tests.admin.conftest import SCREENSHOTS, screenshot
from tests.test_local_lists import add_card, eventually, keeper


@pytest.fixture(autouse=True)
def quick_lists(monkeypatch):
    monkeypatch.setenv("CSMS_LOCAL_LISTS_DEBOUNCE_S", "0.3")
    monkeypatch.setenv("CSMS_LOCAL_LISTS_CONNECT_DELAY_S", "0.1")


async def test_station_page_shows_the_list_and_sends_it_on_request(page_as, server):
    for n, fields in enumerate(({"group_id": "FLEET"}, {}, {"status": "Blocked"})):
        await add_card(server, f"PANEL-{n}", **fields)
    async with keeper(server, "CP-LL", "2.0.1") as cp:
        await eventually(lambda: cp.list_version == 1)
        await asyncio.sleep(1.0)  # the cards' own debounced pass is over (nothing left to send)
        assert cp.updates == [("Full", 1, 3)]
        # a change made behind the CSMS's back (no audit, so no automatic update): shown as waiting
        await IdToken.update({IdToken.status: "Blocked"}).where(IdToken.id_token == "PANEL-1")

        page = await page_as("operator")
        await page.goto("/admin/stations/CP-LL")
        panel = page.locator("#local-list")
        await expect(panel).to_contain_text("Local authorization list")
        await expect(panel.locator("[data-field=version]")).to_have_text("1")
        await expect(panel.locator("[data-field=entries]")).to_have_text("3")
        await expect(panel.locator("[data-field=pending]")).to_have_text("1 change to send")
        await expect(panel.locator("[data-field=last-result]")).to_have_text("Accepted")

        await panel.get_by_role("button", name="Send full list now").click()
        await expect(panel.locator("[data-outcome]")).to_contain_text("Sent: the station accepted version 2.")
        await expect(panel.locator("[data-field=version]")).to_have_text("2")
        await expect(panel.locator("[data-field=pending]")).to_have_text("nothing to send")
        assert cp.updates[-1] == ("Full", 2, 3) and cp.entries["PANEL-1"]["status"] == "Blocked"
        await panel.locator("summary", has_text="Entries the station acknowledged").click()
        await expect(panel.locator("tbody tr")).to_have_count(3)
        await panel.scroll_into_view_if_needed()
        await screenshot(page, "station-local-list")

        phone = await page_as("viewer", width=390, height=844)
        await phone.goto("/admin/stations/CP-LL")
        phone_panel = phone.locator("#local-list")
        await expect(phone_panel.locator("[data-field=version]")).to_have_text("2")
        await expect(phone_panel.get_by_role("button", name="Send full list now")).to_have_count(0)
        await screenshot(phone, "station-local-list-phone")

    # offline: the operator is told so, as text in the panel
    await asyncio.sleep(0.2)
    await page.goto("/admin/stations/CP-LL")
    await page.locator("#local-list").get_by_role("button", name="Send full list now").click()
    await expect(page.locator("#local-list [data-outcome]")).to_contain_text("The station is offline")


async def test_a_station_without_local_lists_is_shown_as_such(page_as, server):
    """A station that answers GetLocalListVersion with NotImplemented (the test station of
    ``csms.testing``): the panel says it takes no list instead of counting changes to send."""
    from csms.testing.stations import station
    from tests.test_local_lists import _state_if

    await add_card(server, "NOLIST-1")
    async with station(server, "CP-NOLL", "2.0.1"):
        await eventually(lambda: _state_if(server, "CP-NOLL", lambda s: s["supported"] is False))
        page = await page_as("operator")
        await page.goto("/admin/stations/CP-NOLL")
        panel = page.locator("#local-list")
        await expect(panel.locator("[data-field=pending]")).to_have_text("not sent: the station takes no list")
        await expect(panel).to_contain_text("Support: no")
        await expect(panel.locator("[data-field=last-result]")).to_have_text("Not supported")
        # no "Send full list now" for a station that said no: the operator may ask again
        assert await panel.get_by_role("button", name="Send full list now").count() == 0
        await expect(panel.locator("[data-field=retry-hint]")).to_contain_text("asks it again")
        await panel.scroll_into_view_if_needed()
        await screenshot(page, "station-local-list-unsupported")
        await panel.get_by_role("button", name="Check again and send").click()
        await expect(panel.locator("[data-outcome]")).to_have_attribute("data-outcome", "NotSupported")
        await expect(panel.locator("[data-outcome]")).to_contain_text("Not sent in full (NotSupported): the station answered NotImplemented")
        await expect(panel.locator("[data-field=last-result]")).to_have_text("Not supported")
        await panel.screenshot(path=str(SCREENSHOTS / "station-local-list-unsupported-checked.png"))
        phone = await page_as("viewer", width=390, height=844)
        await phone.goto("/admin/stations/CP-NOLL")
        phone_panel = phone.locator("#local-list")
        await expect(phone_panel.locator("[data-field=pending]")).to_have_text("not sent: the station takes no list")
        await phone_panel.screenshot(path=str(SCREENSHOTS / "station-local-list-unsupported-phone-panel.png"))
