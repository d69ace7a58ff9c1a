"""The driver portal in Debian's Chromium on a phone: ask for a link, open it from the mail, report
a card lost, see the sessions a test station charged (priced by a throwaway plugin), watch a
running one update without a reload, sign out. Screenshots in test-artifacts/screenshots/."""

from __future__ import annotations

import shutil
from decimal import Decimal

import pytest
from ocpp.v201 import call as call201
from playwright.async_api import async_playwright, expect

from csms.core.tables import IdToken
from csms.plugin_api import SessionCost, hookimpl
from csms.testing import CHROMIUM_ARGS, pm, screenshot
from csms.testing.stations import now_iso, station
from tests.driver.conftest import make_driver

PHONE = {"width": 390, "height": 844}


class FlatPricing:
    """A throwaway pricing plugin: 0.40 per kWh plus 21 % VAT."""

    @hookimpl(tryfirst=True)
    def price_session(self, session, final):
        kwh = Decimal(str(session["energy_wh"] or 0)) / 1000
        net = (kwh * Decimal("0.40")).quantize(Decimal("0.01"))
        return SessionCost("EUR", net, (net * Decimal("1.21")).quantize(Decimal("0.01")), final=final)


@pytest.fixture
def pricing():
    pm.register(FlatPricing(), name="test-driver-flat-pricing")
    yield
    pm.unregister(name="test-driver-flat-pricing")


def energy(wh: float, *, power_w: float | None = None) -> list[dict]:
    values = [{"value": wh}] + ([{"value": power_w, "measurand": "Power.Active.Import"}] if power_w else [])
    return [{"timestamp": now_iso(), "sampledValue": values}]


async def charge_once(cp, card: str, tx: str) -> None:
    await cp.call(call201.TransactionEvent(
        event_type="Started", timestamp=now_iso(), trigger_reason="Authorized", seq_no=0,
        transaction_info={"transactionId": tx, "chargingState": "Charging"},
        id_token={"idToken": card, "type": "ISO14443"}, evse={"id": 1, "connectorId": 1}, meter_value=energy(10000)))
    await cp.call(call201.TransactionEvent(
        event_type="Ended", timestamp=now_iso(), trigger_reason="EVDeparted", seq_no=1,
        transaction_info={"transactionId": tx, "stoppedReason": "EVDisconnected"}, meter_value=energy(20000)))


async def test_driver_portal_on_a_phone(server, mailbox, pricing):
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    _, (card_pk, _) = await make_driver(server, "Flo Driver", "flo@example.org", "CARD-FLO", "FOB-FLO")
    async with station(server, "CP-DRIVER", "2.0.1") as cp, async_playwright() as p:
        await charge_once(cp, "CARD-FLO", "tx-done")
        await cp.call(call201.TransactionEvent(
            event_type="Started", timestamp=now_iso(), trigger_reason="Authorized", seq_no=0,
            transaction_info={"transactionId": "tx-live", "chargingState": "Charging"},
            id_token={"idToken": "FOB-FLO", "type": "ISO14443"}, evse={"id": 1, "connectorId": 1},
            meter_value=energy(10000, power_w=7400)))

        browser = await p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(base_url=server.base_url, viewport=PHONE)
            page = await context.new_page()
            page.set_default_timeout(15_000)

            await page.goto("/driver")
            await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            await screenshot(page, "driver-sign-in-phone")
            await page.get_by_label("Your e-mail address").fill("flo@example.org")
            await page.get_by_role("button", name="Send me a link").click()
            await expect(page.get_by_role("heading", name="Check your e-mail")).to_be_visible()
            await screenshot(page, "driver-link-sent-phone")

            await page.goto(await mailbox.link_for("flo@example.org"))
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url("**/driver/cards")
            cards = page.locator(".driver-card")
            await expect(cards).to_have_count(2)
            await expect(cards.first).to_contain_text("CARD-FLO")
            await screenshot(page, "driver-cards-phone")

            first = page.locator(f"#card-{card_pk}")
            await first.get_by_text("Name this card").click()
            await first.get_by_label("Name").fill("Blue card")
            await first.get_by_role("button", name="Save").click()
            await expect(page.locator(f"#card-{card_pk} .card-name")).to_have_text("Blue card")

            page.once("dialog", lambda dialog: dialog.accept())
            await page.locator(f"#card-{card_pk}").get_by_role("button", name="Report lost").click()
            await expect(page.locator(f"#card-{card_pk} .badge")).to_have_text("Blocked")
            await expect(page.locator(f"#card-{card_pk}")).to_contain_text("nobody can charge with this card")
            assert (await IdToken.select(IdToken.status).where(IdToken.id == card_pk).first())["status"] == "Blocked"
            await screenshot(page, "driver-card-lost-phone")

            await page.get_by_role("link", name="My sessions").click()
            rows = page.locator(".session-row")
            await expect(rows).to_have_count(2)
            await expect(rows.nth(1)).to_contain_text("10.00 kWh")
            await expect(rows.nth(1)).to_contain_text("4.84 EUR")  # 10 kWh at 0.40 + 21 % VAT
            await expect(rows.nth(0)).to_contain_text("charging")
            await screenshot(page, "driver-sessions-phone")

            await rows.nth(0).click()
            await expect(page.get_by_role("heading", name="Charging now")).to_be_visible()
            await expect(page.locator("#live-power")).to_have_text("7.40 kW")
            await page.evaluate("window.notReloaded = true")
            await cp.call(call201.TransactionEvent(
                event_type="Updated", timestamp=now_iso(), trigger_reason="MeterValuePeriodic", seq_no=1,
                transaction_info={"transactionId": "tx-live", "chargingState": "Charging"},
                meter_value=energy(13500, power_w=11000)))
            await expect(page.locator("#live-energy")).to_have_text("3.50 kWh", timeout=20_000)
            await expect(page.locator("#live-power")).to_have_text("11.00 kW")
            await expect(page.locator("#live-cost")).to_have_text("1.69 EUR")  # 3.5 kWh: 1.40 + VAT
            assert await page.evaluate("window.notReloaded === true")
            await screenshot(page, "driver-session-live-phone")

            await page.set_viewport_size({"width": 1280, "height": 900})
            await page.goto("/driver/sessions")
            await screenshot(page, "driver-sessions-desktop")
            await page.goto("/driver/cards")
            await screenshot(page, "driver-cards-desktop")
            await page.set_viewport_size(PHONE)

            await page.get_by_role("button", name="Sign out").click()
            await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            await page.goto("/driver/cards")
            await expect(page).to_have_url(f"{server.base_url}/driver")
        finally:
            await browser.close()
