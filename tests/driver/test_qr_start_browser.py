"""Start by QR code in Debian's Chromium on a phone: open the code's URL signed out, ask for a
link, come back from the mail to the charger's page, start with the card, follow the answer until
the session runs, open it. Screenshots driver-qr-*.png in test-artifacts/screenshots/."""

from __future__ import annotations

import shutil

import pytest
from playwright.async_api import async_playwright, expect

from csms.admin.qr_labels import start_path
from csms.core.tables import ChargingSession
from csms.testing import CHROMIUM_ARGS, pm, screenshot
from tests.driver.conftest import make_driver
from tests.driver.qr_kit import START_LINK, TariffText, published_site, qr_station

PHONE = {"width": 390, "height": 844}


async def test_start_by_qr_code_on_a_phone(server, mailbox):
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    site = await published_site()
    await make_driver(server, "Flo Driver", "flo@example.org", "CARD-FLO", "FOB-FLO")
    pm.register(TariffText(), name="test-qr-browser-tariff")
    try:
        async with qr_station(server, "CP-PHONE", "2.0.1", site=site, evses=2) as cp, async_playwright() as p:
            browser = await p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                context = await browser.new_context(base_url=server.base_url, viewport=PHONE, is_mobile=True,
                                                    has_touch=True)
                page = await context.new_page()
                page.set_default_timeout(15_000)
                path = start_path("CP-PHONE", 2)

                await page.goto(path)  # the scanned code, signed out
                await expect(page.locator("#sign-in-to-start")).to_be_visible()
                await screenshot(page, "driver-qr-sign-in-phone")
                await page.get_by_label("Your e-mail address").fill("flo@example.org")
                await page.get_by_role("button", name="Send me a link").click()
                await expect(page.get_by_role("heading", name="Check your e-mail")).to_be_visible()

                await mailbox.link_for("flo@example.org")
                link = START_LINK.search(mailbox.to("flo@example.org")[-1].get_content()).group(1)
                await page.goto(link)
                await page.get_by_role("button", name="Sign in").click()
                await page.wait_for_url(f"**{path}")

                await expect(page.locator("#charger-name")).to_have_text("CP-PHONE · EVSE 2")
                await expect(page.locator("#evse-state")).to_have_text("Available")
                await expect(page.locator("#tariff")).to_contain_text("0.39 EUR per kWh incl. VAT")
                await expect(page.get_by_label("CARD-FLO")).to_be_checked()  # two cards: the first is chosen
                await page.get_by_label("FOB-FLO").check()
                await screenshot(page, "driver-qr-start-phone")

                await page.get_by_role("button", name="Start charging").click()
                await expect(page.locator("#to-session")).to_be_visible(timeout=20_000)
                await expect(page.locator("#start-outcome")).to_contain_text("Charging started")
                await expect(page.locator("#evse-state")).not_to_have_text("Available", timeout=10_000)
                await screenshot(page, "driver-qr-started-phone")
                assert cp.remote_starts[0]["evse_id"] == 2
                assert cp.remote_starts[0]["id_token"]["id_token"] == "FOB-FLO"

                await page.locator("#to-session").click()
                await expect(page.get_by_role("heading", name="Charging now")).to_be_visible()
                row = await ChargingSession.select(ChargingSession.id).where(
                    ChargingSession.id_token == "FOB-FLO").first()
                await expect(page).to_have_url(f"{server.base_url}/driver/sessions/{row['id']}")
                await screenshot(page, "driver-qr-session-phone")

                cp.start_answer = "Rejected"
                await page.goto(start_path("CP-PHONE", 1))
                await page.get_by_role("button", name="Start charging").click()
                await expect(page.locator("#start-outcome")).to_contain_text("The charger refused to start")
                await screenshot(page, "driver-qr-rejected-phone")

                await page.goto(start_path("CP-PHONE", 7))
                await expect(page.get_by_role("heading", name="Not found")).to_be_visible()
                await expect(page.locator("main")).to_contain_text("There is no charger with this code")
                await screenshot(page, "driver-qr-not-found-phone")
            finally:
                await browser.close()
    finally:
        pm.unregister(name="test-qr-browser-tariff")
