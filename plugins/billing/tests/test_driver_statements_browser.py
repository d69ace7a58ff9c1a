"""The driver portal's statements page in Debian's Chromium, on a desktop and on a phone: the menu
entry, the invoice's row and its PDF download. Screenshots driver-statements-desktop.png and
driver-statements-phone.png in test-artifacts/screenshots/. About 4 s."""

from __future__ import annotations

import shutil

import pytest
from playwright.async_api import async_playwright, expect

from csms.testing import CHROMIUM_ARGS, driver_cookie, screenshot
from plugins.billing.tests.test_driver_statements import two_drivers_with_statements

VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


async def test_statements_page_on_a_desktop_and_a_phone(server):
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    world = await two_drivers_with_statements(server)
    number = world["invoice"]["number"]
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            for name, viewport in VIEWPORTS.items():
                context = await browser.new_context(base_url=server.base_url, viewport=viewport,
                                                    accept_downloads=True)
                await context.add_cookies([{**await driver_cookie(world["flo"]["id"]),
                                            "url": f"{server.base_url}/driver"}])
                page = await context.new_page()
                page.set_default_timeout(15_000)
                await page.goto("/driver/cards")
                await page.get_by_role("navigation", name="Driver").get_by_role("link", name="Statements").click()
                await expect(page.get_by_role("heading", name="My statements")).to_be_visible()
                row = page.locator(".statement-row", has_text=number)
                await expect(row).to_be_visible()
                await expect(row).to_contain_text("€4.84")
                await expect(row.locator(".badge")).to_have_text("Issued")
                await expect(page.locator(".statement-row")).to_have_count(1)  # not Max's, not the draft
                # the menu fits the phone's width: no sideways scrolling
                assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
                await screenshot(page, f"driver-statements-{name}")
                async with page.expect_download() as download:
                    await row.get_by_role("link", name=f"Download invoice {number} (PDF)").click()
                saved = await (await download.value).path()
                assert saved is not None and open(saved, "rb").read(5) == b"%PDF-"
                assert (await download.value).suggested_filename == f"statement-{number}.pdf"
                await context.close()
        finally:
            await browser.close()
