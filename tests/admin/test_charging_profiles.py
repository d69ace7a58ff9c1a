"""The charging profiles panel on the station page, in Chromium: ask a 2.0.1 station for its
profiles, clear one by id and the rest by criteria, the station refusing (nothing changes), an
offline station; a 1.6 station's panel clears but cannot ask; a viewer on a phone only reads."""

from __future__ import annotations

from ocpp.v201 import call as call201
from playwright.async_api import expect

from csms.testing.stations import now_iso
from tests.admin.conftest import SCREENSHOTS, screenshot
from tests.test_charging_profiles import profile_station, schedule, send_profile


def tx_default(profile_id: int, limit: float, stack_level: int = 1) -> dict:
    return {"id": profile_id, "stack_level": stack_level, "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Relative", "charging_schedule": [{"id": 1, **schedule(limit)}]}


async def test_ask_and_clear_charging_profiles(page_as, server):
    async with profile_station(server, "CP-PROF", "2.0.1") as cp:
        cp.keep(1, tx_default(31, 16), 31)
        cp.keep(1, tx_default(32, 10, stack_level=2), 32)
        cp.keep(0, {"id": 30, "stack_level": 0, "charging_profile_purpose": "ChargingStationMaxProfile",
                    "charging_profile_kind": "Relative", "charging_schedule": [{"id": 1, **schedule(63)}]}, 30)
        page = await page_as("operator")
        await page.goto("/admin/stations/CP-PROF")
        panel = page.locator("#charging-profiles")
        await expect(panel).to_contain_text("Charging profiles")
        await expect(panel.locator("[data-field=empty]")).to_be_visible()

        await panel.get_by_role("button", name="Ask the station for its profiles").click()
        await expect(panel.locator("[data-outcome]")).to_contain_text("Asked the station for its charging profiles.")
        await expect(panel.locator("tr[data-profile-id='31']")).to_contain_text("TxDefaultProfile")
        await expect(panel.locator("tr[data-profile-id='31']")).to_contain_text("16 A")
        await expect(panel.locator("tr[data-profile-id='30']")).to_contain_text("ChargingStationMaxProfile")
        await expect(panel.locator("tr[data-profile-id]")).to_have_count(3)
        await panel.scroll_into_view_if_needed()
        await screenshot(page, "station-charging-profiles")

        await panel.get_by_role("button", name="Clear profile 32").click()
        await expect(panel.locator("[data-outcome]")).to_contain_text("The station cleared the profiles.")
        await expect(panel.locator("tr[data-profile-id='32']")).to_have_count(0)
        assert 32 not in cp.held

        # the station refuses: a readable message, the list unchanged
        cp.refuse_clear = True
        await panel.get_by_role("button", name="Clear profile 31").click()
        await expect(panel.locator("[data-outcome]")).to_contain_text("The station knows no matching profile")
        await expect(panel.locator("tr[data-profile-id='31']")).to_have_count(1)
        cp.refuse_clear = False

        await panel.locator("summary", has_text="Clear profiles").click()
        await panel.get_by_label("EVSE (empty = any, 0 = the station)").fill("1")
        await panel.locator("#cp-purpose").select_option(label="Default for transactions")
        await panel.get_by_role("button", name="Clear matching profiles").click()
        await expect(panel.locator("[data-outcome]")).to_contain_text("The station cleared the profiles.")
        await expect(panel.locator("tr[data-profile-id]")).to_have_count(1)
        assert list(cp.held) == [30]

        # a bad number is said in words, nothing is sent
        sent = len(cp.received)
        await panel.locator("summary", has_text="Clear profiles").click()
        await panel.get_by_label("Stack level (empty = any)").fill("two")
        await panel.get_by_role("button", name="Clear matching profiles").click()
        await expect(panel.locator("[data-outcome]")).to_contain_text("is not a number")
        assert len(cp.received) == sent

        viewer = await page_as("viewer", width=390, height=844)
        await viewer.goto("/admin/stations/CP-PROF")
        await expect(viewer.locator("tr[data-profile-id='30']")).to_contain_text("ChargingStationMaxProfile")
        await expect(viewer.locator("#charging-profiles").get_by_role("button")).to_have_count(0)
        await viewer.locator("#charging-profiles").scroll_into_view_if_needed()
        await screenshot(viewer, "station-charging-profiles-phone")

    # the station went away: the panel says so
    await page.goto("/admin/stations/CP-PROF")
    await panel.get_by_role("button", name="Clear profile 30").click()
    await expect(panel.locator("[data-outcome]")).to_contain_text("The station is offline.")
    await expect(panel.locator("tr[data-profile-id='30']")).to_have_count(1)


async def test_16_station_panel_clears_but_cannot_ask(page_as, server):
    async with profile_station(server, "CP-PROF16", "1.6") as cp:
        await send_profile(server, "CP-PROF16", "1.6", evse_id=1, profile_id=7, purpose="TxDefaultProfile",
                           stack_level=0, limit=20)
        page = await page_as("operator", width=390, height=844)
        await page.goto("/admin/stations/CP-PROF16")
        panel = page.locator("#charging-profiles")
        await expect(panel.locator("tr[data-profile-id='7']")).to_contain_text("20 A")
        await expect(panel).to_contain_text("OCPP 1.6 stations cannot list their profiles")
        await expect(panel.get_by_role("button", name="Ask the station for its profiles")).to_have_count(0)
        await panel.get_by_role("button", name="Clear profile 7").click()
        await expect(panel.locator("[data-outcome]")).to_contain_text("The station cleared the profiles.")
        await expect(panel.locator("[data-field=empty]")).to_be_visible()
        assert cp.held == {}
        await panel.scroll_into_view_if_needed()
        await screenshot(page, "station-charging-profiles-16-phone")


async def test_remote_start_with_a_charging_limit(page_as, server):
    async with profile_station(server, "CP-PROFRS", "2.0.1") as cp:
        page = await page_as("operator")
        await page.goto("/admin/stations/CP-PROFRS")
        remote_start = page.locator("details", has_text="Remote start")
        result = page.locator("#action-result")

        await remote_start.get_by_text("Remote start").click()
        await remote_start.get_by_label("…or another token").fill("CARD-9")
        await remote_start.get_by_label("Charging limit (optional)").fill("16")
        await remote_start.get_by_role("button", name="Start charging").click()
        await expect(result).to_contain_text("names its EVSE")  # the station would not know where
        assert not [m for m in cp.received if m[0] == "RequestStartTransaction"]

        await remote_start.get_by_label("Charging limit (optional)").fill("sixteen")
        await remote_start.get_by_role("button", name="Start charging").click()
        await expect(result).to_contain_text("Charging limit must be a number")

        # the station's EVSEs are known once it reported a status
        await cp.call(call201.StatusNotification(timestamp=now_iso(), connector_status="Available", evse_id=1,
                                                 connector_id=1))
        await page.goto("/admin/stations/CP-PROFRS")
        await remote_start.get_by_text("Remote start").click()
        await remote_start.get_by_label("…or another token").fill("CARD-9")
        await remote_start.get_by_label("EVSE").select_option("1")
        await remote_start.get_by_label("Charging limit (optional)").fill("13,5")
        await remote_start.get_by_role("button", name="Start charging").click()
        await expect(result).to_contain_text("Remote start: the station answered Accepted")
        sent = [m[1] for m in cp.received if m[0] == "RequestStartTransaction"][-1]
        assert sent["evse_id"] == 1 and sent["charging_profile"]["charging_schedule"][0][
            "charging_schedule_period"] == [{"start_period": 0, "limit": 13.5}]
        await page.goto("/admin/stations/CP-PROFRS")
        await expect(page.locator("#charging-profiles tr[data-profile-id='1']")).to_contain_text("TxProfile")
        await expect(page.locator("#charging-profiles tr[data-profile-id='1']")).to_contain_text("13.5 A")

        phone = await page_as("operator", width=390, height=844)
        await phone.goto("/admin/stations/CP-PROFRS")
        form = phone.locator("details", has_text="Remote start")
        await form.get_by_text("Remote start").click()
        await expect(form.get_by_label("Charging limit (optional)")).to_be_visible()
        await form.scroll_into_view_if_needed()
        await screenshot(phone, "station-remote-start-limit-phone")


async def test_set_a_charging_profile_from_the_panel(page_as, server):
    """An operator sets a recurring default profile from the panel; a mistake reads as words and
    keeps what was typed; the profile lands at the station and in the list (desktop and phone)."""
    for name, width, height in (("desktop", 1280, 900), ("phone", 390, 844)):
        sid = f"CP-SET-{name}"
        async with profile_station(server, sid, "2.0.1") as cp:
            page = await page_as("operator", width=width, height=height)
            await page.goto(f"/admin/stations/{sid}")
            panel = page.locator("#charging-profiles")
            await panel.locator("summary", has_text="Set a profile").click()
            await panel.get_by_label("EVSE (0 = the station)").fill("1")
            await panel.get_by_label("Kind").select_option("Recurring")
            await panel.get_by_label("Periods, one per line: seconds from the start, limit, phases (optional)").fill(
                "0 16\n3600 eight")
            await panel.get_by_role("button", name="Send profile").click()
            outcome = panel.locator("[data-outcome]")
            await expect(outcome).to_contain_text("period line 2: write seconds from the start and the limit")
            periods = panel.get_by_label("Periods, one per line: seconds from the start, limit, phases (optional)")
            await expect(periods).to_have_value("0 16\n3600 eight")  # kept
            await periods.fill("0 16\n3600 8")
            await panel.get_by_role("button", name="Send profile").click()
            await expect(outcome).to_contain_text("a Recurring profile recurs Daily or Weekly")
            await panel.get_by_label("Recurs (Recurring only)").select_option("Daily")
            await panel.get_by_role("button", name="Send profile").click()
            await expect(outcome).to_contain_text("The station accepted profile 1.")
            await expect(panel.locator("tr[data-profile-id='1']")).to_contain_text("TxDefaultProfile")
            await expect(panel.locator("tr[data-profile-id='1']")).to_contain_text("Recurring")
            evse, held = cp.held[1]
            assert evse == 1 and held["recurrency_kind"] == "Daily"
            assert [p["limit"] for p in held["charging_schedule"][0]["charging_schedule_period"]] == [16.0, 8.0]
            await panel.scroll_into_view_if_needed()
            await screenshot(page, f"station-charging-profile-set-{name}")
            await panel.screenshot(path=str(SCREENSHOTS / f"station-charging-profile-set-{name}-panel.png"))
