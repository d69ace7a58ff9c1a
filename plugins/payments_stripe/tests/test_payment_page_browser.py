"""The driver portal's Payment page in Debian's Chromium, on a desktop and on a phone: the menu
entry, *Save a payment method* through the Checkout stand-in and back, the saved method charged
for the next statement. Screenshots driver-payment-desktop.png and driver-payment-phone.png in
test-artifacts/screenshots/."""

from __future__ import annotations

import shutil

import pytest
from playwright.async_api import async_playwright, expect

from csms.testing import CHROMIUM_ARGS, driver_cookie, running_server, screenshot
from plugins.billing.tests.helpers import default_tariff
from plugins.payments_stripe.tests.test_payments import charged_driver, issue, payment_status

VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


async def test_driver_saves_a_card_and_the_statement_is_paid(tmp_path, fake_stripe):
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    # no CSMS_PUBLIC_URL: Checkout sends the driver back to the address the portal was opened at
    async with running_server(tmp_path, unknown_stations="accept") as srv:
        fake_stripe.webhook_url = f"{srv.base_url}/api/v1/payments/stripe/webhook"
        await default_tariff(srv)
        drivers = [await charged_driver(srv, name, f"CP-{name}") for name in ("Desk", "Phil")]
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                for (name, viewport), driver in zip(VIEWPORTS.items(), drivers):
                    context = await browser.new_context(base_url=srv.base_url, viewport=viewport)
                    await context.add_cookies([{**await driver_cookie(driver["id"]), "url": f"{srv.base_url}/driver"}])
                    page = await context.new_page()
                    page.set_default_timeout(15_000)
                    await page.goto("/driver/cards")
                    await page.get_by_role("navigation", name="Driver").get_by_role("link", name="Payment").click()
                    await expect(page.get_by_role("heading", name="Payment")).to_be_visible()
                    await page.get_by_role("button", name="Save a payment method").click()  # a link styled as one
                    await expect(page).to_have_title("Stripe Checkout")
                    await page.get_by_role("button", name="Save card").click()
                    await expect(page.get_by_role("status")).to_contain_text("your payment method is saved")
                    assert page.url == f"{srv.base_url}/driver/payment?setup=done"
                    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
                    statement = await issue(srv, driver)
                    await payment_status(srv, statement["id"], "paid")
                    await page.reload()
                    row = page.locator("li", has_text=statement["number"])
                    await expect(row.locator(".badge")).to_have_text("paid")
                    await screenshot(page, f"driver-payment-{name}")
                    await context.close()
            finally:
                await browser.close()
