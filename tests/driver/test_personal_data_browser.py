"""A driver's data in Debian's Chromium: download the export from the Account page, try to delete
the account while a session runs, delete it with the confirmation; and the operator's erasure in
the admin. Screenshots (phone and desktop) in test-artifacts/screenshots/."""

from __future__ import annotations

import json
import shutil

import pytest
from playwright.async_api import async_playwright, expect

from csms.core.tables import Driver, IdToken
from csms.testing import CHROMIUM_ARGS, admin_browser, screenshot
from csms.testing.stations import station
from tests.driver.conftest import make_driver
from tests.driver.test_portal_browser import PHONE, pricing  # noqa: F401 (a fixture)

DESKTOP = {"width": 1280, "height": 900}


async def test_a_driver_downloads_their_data_and_deletes_their_account_on_a_phone(server, mailbox, pricing):  # noqa: F811
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    driver_id, (card_pk,) = await make_driver(server, "Lea Private", "lea@example.org", "CARD-LEA")
    async with station(server, "CP-GDPR", "1.6") as cp, async_playwright() as p:
        await cp.stop_session(await cp.start_session("CARD-LEA"))
        running = await cp.start_session("CARD-LEA")

        browser = await p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(base_url=server.base_url, viewport=PHONE, accept_downloads=True)
            page = await context.new_page()
            page.set_default_timeout(15_000)
            await page.goto("/driver")
            await page.get_by_label("Your e-mail address").fill("lea@example.org")
            await page.get_by_role("button", name="Send me a link").click()
            await expect(page.get_by_role("heading", name="Check your e-mail")).to_be_visible()
            await page.goto(await mailbox.link_for("lea@example.org"))
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url("**/driver/cards")

            await page.get_by_role("link", name="Account").click()
            await expect(page.get_by_role("heading", name="Your data")).to_be_visible()
            await screenshot(page, "driver-account-data-phone")
            async with page.expect_download() as download_info:
                await page.get_by_role("button", name="Download my data").click()
            download = await download_info.value
            assert download.suggested_filename.startswith("my-charging-data-")
            data = json.loads(open(await download.path()).read())
            assert data["driver"]["email"] == "lea@example.org"
            assert [c["id_token"] for c in data["cards"]] == ["CARD-LEA"]
            assert [s["station_id"] for s in data["sessions"]] == ["CP-GDPR", "CP-GDPR"]
            assert data["sessions"][0]["cost"]["total_incl_vat"] == "1.94"

            await page.get_by_role("button", name="Delete my account…").click()
            await expect(page.get_by_role("heading", name="Delete my account")).to_be_visible()
            await expect(page.get_by_role("alert")).to_contain_text("running at CP-GDPR")
            await screenshot(page, "driver-delete-blocked-phone")
            await page.get_by_label("I understand: delete my account for good.").check()
            await page.get_by_role("button", name="Delete my account").click()
            await expect(page.get_by_role("alert")).to_contain_text("it has to end before the account can be deleted")
            assert (await Driver.select(Driver.email).where(Driver.id == driver_id).first())["email"] == "lea@example.org"

            await cp.stop_session(running)
            await page.goto("/driver/account/delete")
            await expect(page.get_by_role("alert")).to_have_count(0)
            await page.set_viewport_size(DESKTOP)
            await screenshot(page, "driver-delete-confirm-desktop")
            await page.set_viewport_size(PHONE)
            await screenshot(page, "driver-delete-confirm-phone")
            await page.get_by_role("button", name="Delete my account").click()  # not ticked: the browser holds it
            await expect(page).to_have_url(f"{server.base_url}/driver/account/delete")
            assert (await Driver.select(Driver.email).where(Driver.id == driver_id).first())["email"] == "lea@example.org"
            await page.get_by_label("I understand: delete my account for good.").check()
            await page.get_by_role("button", name="Delete my account").click()
            await expect(page.get_by_role("heading", name="Account deleted")).to_be_visible()
            await screenshot(page, "driver-account-deleted-phone")

            assert (await Driver.select(Driver.email).where(Driver.id == driver_id).first())["email"] is None
            card = await IdToken.select(IdToken.status, IdToken.driver).where(IdToken.id == card_pk).first()
            assert card == {"status": "Blocked", "driver": None}
            await page.goto("/driver/cards")
            await expect(page).to_have_url(f"{server.base_url}/driver")
        finally:
            await browser.close()


async def test_the_admin_erases_a_driver_after_confirming(server):
    driver_id, _ = await make_driver(server, "Max Erasable", "max@example.org", "CARD-MAX")
    async with station(server, "CP-MAX", "2.0.1") as cp:  # the card was used there: its data is to be cleared
        await cp.stop_session(await cp.start_session("CARD-MAX"))
    async with admin_browser(server, "admin", width=DESKTOP["width"], height=DESKTOP["height"]) as page:
        await page.goto("/admin/drivers")
        row = page.locator("#drivers tr", has_text="Max Erasable")
        await expect(row.get_by_role("link", name="Export")).to_have_attribute(
            "href", f"/admin/drivers/{driver_id}/export")
        await row.get_by_role("link", name="Erase…").click()
        await expect(page.get_by_role("heading", name="Erase a driver's personal data")).to_be_visible()
        await screenshot(page, "admin-driver-erase-desktop")
        await page.get_by_label("Erase this driver's personal data for good").check()
        await page.get_by_role("button", name="Erase").click()
        await expect(page.locator("#erased")).to_contain_text("1 card blocked and unlinked")
        await expect(page.locator("#erased")).to_contain_text("1 request to clear a card's data on a station")
        await screenshot(page, "admin-driver-erased-desktop")
        await page.set_viewport_size(PHONE)
        await page.goto("/admin/drivers")
        await expect(page.locator("#drivers")).to_contain_text("Erased driver")
        await expect(page.locator("#drivers")).not_to_contain_text("max@example.org")
        await screenshot(page, "admin-drivers-after-erasure-phone")
