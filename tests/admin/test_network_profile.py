"""The network profile panel on a 2.0.1 station's page, in Chromium: store a profile, move the
station onto one (priority and reset), a refusal and a bad URL told in words, an offline station;
none on a 1.6 station's page."""

from __future__ import annotations

from playwright.async_api import expect

from csms.testing.stations import station
from tests.admin.conftest import screenshot
from tests.test_network_profiles import network_station


async def fill(panel, *, slot: str, url: str, profile: str) -> None:
    if not await panel.get_by_label("Slot").is_visible():
        await panel.locator("summary", has_text="Set a network profile").click()
    await panel.get_by_label("Slot").fill(slot)
    await panel.get_by_label("CSMS URL (without the station id)").fill(url)
    await panel.get_by_label("Security profile").select_option(profile)


async def test_network_profile_panel(page_as, server):
    async with network_station(server, "CP-NET") as cp:
        page = await page_as("operator")
        await page.goto("/admin/stations/CP-NET")
        panel = page.locator("#network-profile")
        await expect(panel).to_contain_text("Network profile")

        await fill(panel, slot="1", url="wss://new.example.org/ocpp", profile="2")
        await panel.get_by_label("Interface").select_option("Wireless0")
        await panel.get_by_role("button", name="Send to the station").click()
        await expect(panel.locator("[data-outcome]")).to_contain_text("The station stored the profile in slot 1.")
        assert cp.profiles[1]["ocpp_csms_url"] == "wss://new.example.org/ocpp"
        assert cp.profiles[1]["ocpp_interface"] == "Wireless0" and cp.profiles[1]["security_profile"] == 2

        await fill(panel, slot="2", url="wss://new.example.org/ocpp", profile="3")
        await panel.get_by_label("Try it first and restart the station when idle").check()
        await panel.get_by_role("button", name="Send to the station").click()
        await expect(panel.locator("[data-outcome]")).to_contain_text(
            "The station stored the profile, tries it first (priority 2,0) and resets when idle.")
        assert cp.priority == "2,0" and cp.received[-1] == ("Reset", {"type": "OnIdle"})
        await panel.scroll_into_view_if_needed()
        await screenshot(page, "station-network-profile")

        cp.refuse = "SetVariables"
        await fill(panel, slot="3", url="wss://new.example.org/ocpp", profile="3")
        await panel.get_by_label("Try it first and restart the station when idle").check()
        await panel.get_by_role("button", name="Send to the station").click()
        await expect(panel.locator("[data-outcome]")).to_contain_text(
            "The station answered Rejected to making its slot first.")

        phone = await page_as("operator", width=390, height=844)
        await phone.goto("/admin/stations/CP-NET")
        panel = phone.locator("#network-profile")
        count = len(cp.received)
        await fill(panel, slot="1", url="https://new.example.org/ocpp", profile="2")
        await panel.get_by_role("button", name="Send to the station").click()
        await expect(panel.locator("[data-outcome]")).to_contain_text("must be a ws:// or wss:// URL")
        assert len(cp.received) == count
        await panel.scroll_into_view_if_needed()
        await screenshot(phone, "station-network-profile-phone")

    await fill(panel, slot="1", url="wss://new.example.org/ocpp", profile="2")
    await panel.get_by_role("button", name="Send to the station").click()
    await expect(panel.locator("[data-outcome]")).to_contain_text("The station is offline.")

    async with station(server, "CP-NET16", "1.6"):
        await page.goto("/admin/stations/CP-NET16")
        await expect(page.locator("h1")).to_contain_text("CP-NET16")
        await expect(page.locator("#network-profile")).to_have_count(0)
