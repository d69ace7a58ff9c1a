"""What an operator is told when a station is offline, rejects, fails to answer, or is pending."""

from __future__ import annotations

import asyncio

import websockets
from playwright.async_api import expect

from csms.core.tables import Station
from csms.testing import running_server
from tests.admin.conftest import create_users, login, screenshot
from tests.admin.station import online_station


async def test_offline_and_rejected_answers(page_as, server):
    page = await page_as("operator")
    async with online_station(server.ws_url("CP-X"), "CP-X") as station:
        await page.goto("/admin/stations/CP-X")
        station.reset_answer = "Rejected"
        reset = page.locator("details", has_text="Reset")
        await reset.locator("summary").click()
        asked: list[str] = []

        def answer(dialog, accept: bool) -> None:
            asked.append(dialog.message)
            asyncio.ensure_future(dialog.accept() if accept else dialog.dismiss())

        page.once("dialog", lambda d: answer(d, False))  # a reset asks first; "Cancel" sends nothing
        await reset.get_by_role("button", name="Reset station").click()
        await expect(page.locator("#action-result .outcome")).to_have_count(0)
        assert asked and "Reset CP-X?" in asked[0]
        page.on("dialog", lambda d: answer(d, True))
        await reset.get_by_role("button", name="Reset station").click()
        result = page.locator("#action-result .outcome")
        await expect(result).to_have_attribute("data-outcome", "rejected")
        await expect(result).to_contain_text("Reset: the station answered Rejected.")
        station.reset_answer = "Accepted"
        await reset.get_by_role("button", name="Reset station").click()
        await expect(result).to_contain_text("Reset: the station answered Accepted.")

        unlock = page.locator("details", has_text="Unlock connector")
        await unlock.locator("summary").click()
        await unlock.get_by_role("button", name="Unlock").click()  # the station has no handler: CALLERROR
        await expect(result).to_have_attribute("data-outcome", "error")
        await expect(result).to_contain_text("The station answered with an error: NotImplemented")

        firmware = page.locator("details", has_text="Update firmware")
        await firmware.locator("summary").click()
        await firmware.get_by_label("Firmware URL").fill("https://example.org/fw.bin")
        await firmware.get_by_label("Retrieve at (UTC; empty: now)").fill("2030-01-01T00:00")
        await firmware.get_by_label("Retries").fill("many")
        await firmware.get_by_role("button", name="Update firmware").click()
        await expect(result).to_have_attribute("data-outcome", "invalid")
        await expect(result).to_contain_text("Retries must be a whole number")
    await expect(page.locator("#station-connection")).to_contain_text("offline")
    cache = page.locator("details", has_text="Clear authorization cache")
    await cache.locator("summary").click()
    await cache.get_by_role("button", name="Clear cache").click()
    await expect(result).to_have_attribute("data-outcome", "offline")
    await expect(result).to_contain_text("CP-X is offline: the command was not sent.")
    await screenshot(page, "station-offline-action")


async def test_no_answer_shows_progress_then_a_timeout(chromium, tmp_path, monkeypatch):
    monkeypatch.setenv("CSMS_MAP_TILE_URL", "")
    async with running_server(tmp_path, unknown_stations="accept", call_timeout=2.0) as srv:
        await create_users()
        page = await login(chromium, srv.base_url, "operator")
        async with websockets.connect(srv.ws_url("CP-MUTE"), subprotocols=["ocpp2.0.1"]):  # never answers
            await page.goto("/admin/stations/CP-MUTE")
            await expect(page.locator("#station-connection")).to_contain_text("online")
            cache = page.locator("details", has_text="Clear authorization cache")
            await cache.locator("summary").click()
            await cache.get_by_role("button", name="Clear cache").click()
            await expect(page.locator("#action-progress")).to_be_visible()  # the hx-indicator while waiting
            await expect(cache.get_by_role("button", name="Clear cache")).to_be_disabled()
            result = page.locator("#action-result .outcome")
            await expect(result).to_have_attribute("data-outcome", "timeout")
            await expect(result).to_contain_text("did not answer within 2 s")
            await expect(page.locator("#action-progress")).to_be_hidden()
        await page.context.close()


async def test_approve_a_pending_station_and_set_its_password(chromium, tmp_path, monkeypatch):
    monkeypatch.setenv("CSMS_MAP_TILE_URL", "")
    async with running_server(tmp_path, unknown_stations="pending") as srv:
        await create_users()
        page = await login(chromium, srv.base_url, "admin")
        async with online_station(srv.ws_url("CP-NEW"), "CP-NEW", status=None) as station:
            assert station.last_boot_status == "Pending"
            await page.goto("/admin/stations?status=pending")
            await expect(page.locator("tr[data-station='CP-NEW']")).to_contain_text("Pending")
            await page.get_by_role("link", name="CP-NEW").click()
            await page.get_by_role("button", name="Approve").click()
            await expect(page.get_by_role("button", name="Approve")).to_have_count(0)
            for _ in range(50):  # the station was asked to boot again, and now is accepted
                if station.last_boot_status == "Accepted":
                    break
                await asyncio.sleep(0.1)
            assert station.last_boot_status == "Accepted"

            await page.get_by_placeholder("16-40 characters").fill("short")
            await page.get_by_role("button", name="Set password").click()
            await expect(page.locator("#station-password")).to_contain_text("at least 16 characters")
            await page.get_by_placeholder("16-40 characters").fill("a-strong-station-secret")
            await page.get_by_role("button", name="Set password").click()
            await expect(page.locator("#station-password")).to_contain_text("Password set")
            row = await Station.select(Station.password_hash, Station.registration_status).where(
                Station.station_id == "CP-NEW").first()
            assert row["password_hash"] and row["registration_status"] == "Accepted"
        await page.context.close()



async def test_rejecting_a_station_asks_first(page_as, server):
    await server.api.post("/stations", json={"station_id": "CP-R"})
    page = await page_as("operator")
    await page.goto("/admin/stations/CP-R")
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.dismiss()))
    await page.get_by_role("button", name="Reject").click()
    await page.wait_for_timeout(300)
    assert (await Station.select(Station.registration_status).where(Station.station_id == "CP-R").first()
            )["registration_status"] == "Accepted"
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.get_by_role("button", name="Reject").click()
    await expect(page.get_by_role("button", name="Approve")).to_be_visible()
    assert (await Station.select(Station.registration_status).where(Station.station_id == "CP-R").first()
            )["registration_status"] == "Rejected"
