"""The dashboard and the station pages update live (SSE) when a real station connects."""

from __future__ import annotations

import asyncio

from playwright.async_api import expect

from tests.admin.conftest import screenshot
from tests.admin.station import online_station


async def test_login_page(browser, server, users):
    context = await browser.new_context(base_url=server.base_url, viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    await page.goto("/admin/stations")
    await expect(page).to_have_url(f"{server.base_url}/login?next=/admin/stations")
    await page.get_by_label("Username").fill("admin")
    await page.get_by_label("Password").fill("wrong")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator("#login-error")).to_contain_text("incorrect")
    await screenshot(page, "login")
    await page.get_by_label("Password").fill("correct-horse-battery-staple")
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(f"{server.base_url}/admin/stations")


async def test_dashboard_updates_live_when_a_station_comes_online(page_as, server):
    page = await page_as("operator")
    await expect(page.locator("#stations-online")).to_have_text("0")
    await page.wait_for_function("document.getElementById('power-chart').querySelector('canvas') !== null")
    async with online_station(server.ws_url("CP-LIVE"), "CP-LIVE"):
        await expect(page.locator("#stations-online")).to_have_text("1")
        await expect(page.locator("#connector-status")).to_contain_text("Available")
        await expect(page.locator("#recent-events")).to_contain_text("CP-LIVE")
        await screenshot(page, "dashboard")
    await expect(page.locator("#stations-online")).to_have_text("0")
    await expect(page.locator("#stations-offline")).to_have_text("1")


async def test_station_list_and_detail_update_live(page_as, server):
    page = await page_as("operator")
    await page.goto("/admin/stations")
    await expect(page.get_by_text("No stations match")).to_be_visible()
    async with online_station(server.ws_url("CP-A"), "CP-A") as station:
        row = page.locator("tr[data-station='CP-A']")
        await expect(row.locator(".connection")).to_contain_text("online")
        await expect(row).to_contain_text("AdminTest AT-22")
        await expect(row).to_contain_text("1/1 Available")
        await screenshot(page, "stations")
        await page.get_by_label("Search").fill("nothing-like-this")
        await expect(page.get_by_text("No stations match")).to_be_visible()
        await page.get_by_label("Search").fill("CP-A")
        await expect(row).to_be_visible()

        await row.get_by_role("link", name="CP-A").click()
        await expect(page.get_by_role("heading", name="CP-A", level=1)).to_be_visible()
        await expect(page.locator("#station-connection")).to_contain_text("online")
        status_cell = page.locator("tr[data-connector='1/1'] .connector-status")
        await expect(status_cell).to_contain_text("Available")
        await expect(page.locator("body[data-live='open']")).to_have_count(1)  # the live stream is connected
        await station.status("Faulted")
        await expect(status_cell).to_contain_text("Faulted")
        await expect(page.locator("#station-events")).to_contain_text("Faulted")  # the event log is live too
        await station.status("Available")
        await expect(status_cell).to_contain_text("Available")
        await screenshot(page, "station")
    await expect(page.locator("#station-connection")).to_contain_text("offline")


async def test_station_logs_and_configuration(page_as, server):
    page = await page_as("admin")
    async with online_station(server.ws_url("CP-LOG"), "CP-LOG"):
        await page.goto("/admin/stations/CP-LOG?tab=messages")
        log = page.locator("#message-log")
        await expect(log).to_contain_text("BootNotification")
        await page.get_by_label("Direction").select_option("out")
        await page.get_by_role("button", name="Filter").click()
        await expect(log).not_to_contain_text("← from station")
        await page.get_by_label("Action").select_option("StatusNotification")
        await page.get_by_label("Direction").select_option("in")
        await page.get_by_role("button", name="Filter").click()
        await expect(log.locator("tbody tr")).to_have_count(1)
        await screenshot(page, "station-messages")

        await page.goto("/admin/stations/CP-LOG?tab=configuration")
        await page.get_by_text("Change any variable").click()
        await page.get_by_label("Component/Variable", exact=True).fill("OCPPCommCtrlr/HeartbeatInterval")
        await page.get_by_label("Value", exact=True).fill("120")
        await page.get_by_role("button", name="Set", exact=True).click()
        await expect(page.locator("#action-result")).to_contain_text("answered Accepted")
        await page.goto("/admin/stations/CP-LOG?tab=configuration")
        await expect(page.locator("#device-variables")).to_contain_text("HeartbeatInterval")
        await page.goto("/admin/stations/CP-LOG?tab=commands")
        await expect(page.locator("#commands")).to_contain_text("SetVariables")
        await expect(page.locator("#commands")).to_contain_text("user:admin")
        await asyncio.sleep(0)


async def test_a_change_before_the_stream_opens_is_shown(page_as, server):
    """A status change between the page's render and its live stream's first open: the stream's
    hello says a change came after the render, so the page refreshes once."""
    page = await page_as("operator")
    async with online_station(server.ws_url("CP-B"), "CP-B") as station:
        release = asyncio.Event()

        async def hold(route):  # the stream connects only once the station has changed
            await release.wait()
            await route.continue_()

        await page.route("**/admin/stream", hold)
        await page.goto("/admin/stations/CP-B")
        status_cell = page.locator("tr[data-connector='1/1'] .connector-status")
        await expect(status_cell).to_contain_text("Available")
        await station.status("Faulted")
        for _ in range(100):
            detail = (await server.api.get("/stations/CP-B")).json()
            if "Faulted" in str(detail):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the station's status was not stored: {detail}")
        release.set()
        await expect(page.locator("body[data-live='open']")).to_have_count(1)
        await expect(status_cell).to_contain_text("Faulted")
