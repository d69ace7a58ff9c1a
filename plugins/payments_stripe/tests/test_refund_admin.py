"""The Stripe payment on the billing plugin's statement page, in Debian's Chromium (desktop and
phone): status and attempts, a partial refund through the form (confirmed, audited, at the Stripe
stand-in), amounts refused in words, Stripe's own refusal in words, the rest refunded and the
form gone; a viewer sees the payment without the form; an organization's user no panel. The
admin talks to the plugin only through the ``admin_panels`` hook. Screenshots
admin-stripe-refund-desktop.png and admin-stripe-refund-phone.png in test-artifacts/screenshots/."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from csms.testing import admin_browser, admin_client, screenshot
from plugins.billing.tests.helpers import default_tariff
from plugins.payments_stripe.tests.fake_stripe import sign
from plugins.payments_stripe.tests.test_payments import charged_driver, issue, payment_status, save_card, webhook

VIEWPORTS = {"desktop": (1280, 900), "phone": (390, 844)}


async def paid_statement(srv, fake, name: str) -> dict:
    await default_tariff(srv)
    driver = await charged_driver(srv, name, f"CP-{name}")
    await save_card(srv, fake, driver["id"], "pm_card_visa")
    statement = await issue(srv, driver)
    return await payment_status(srv, statement["id"], "paid")


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
async def test_operator_refunds_part_then_the_rest_from_the_statement_page(server, fake_stripe, viewport):
    statement = await paid_statement(server, fake_stripe, "Rita")
    url = f"/admin/billing/statements/{statement['id']}"
    width, height = VIEWPORTS[viewport]
    async with admin_browser(server, "operator", width=width, height=height) as page:
        dialogs: list[str] = []

        async def confirm(dialog):
            dialogs.append(dialog.message)
            await dialog.accept()

        page.on("dialog", confirm)
        await page.goto(url)
        panel = page.locator("#stripe-payment")
        await expect(panel.get_by_role("heading", name="Payment through Stripe")).to_be_visible()
        await expect(panel.locator("#stripe-status")).to_have_text("Paid")
        await expect(panel).to_contain_text("4.84 EUR")
        await expect(panel.get_by_role("row", name="Attempts")).to_contain_text("1")
        amount = panel.get_by_label("Amount (EUR)")
        await expect(amount).to_have_value("4.84")  # all that is left, by default

        # refused in words, nothing sent to Stripe
        for typed, words in (("ten", "Enter the amount as a number, like 12.50."),
                             ("1.005", "Enter the amount with at most 2 decimals"),
                             ("9", "at most 4.84 EUR, what is left to refund")):
            await amount.fill(typed)
            await panel.get_by_role("button", name="Refund").click()
            await expect(page.locator("#stripe-payment [role=alert]")).to_contain_text(words)
            await expect(page.locator("#refund-amount")).to_have_attribute("aria-invalid", "true")
            await expect(page.locator("#refund-amount")).to_have_value(typed)  # what was typed stays
        assert fake_stripe.of("POST", "/v1/refunds") == []

        await page.locator("#refund-amount").fill("1,00")
        await page.locator("#refund-reason").fill("station fault")
        await page.locator("#stripe-payment").get_by_role("button", name="Refund").click()
        await expect(page.locator("#stripe-payment [role=status]")).to_have_text("Refunded 1.00 EUR through Stripe.")
        await expect(page.locator("#stripe-status")).to_have_text("Partly refunded")
        await expect(page.locator("#stripe-refunded")).to_have_text("1.00 EUR")
        assert dialogs[-1] == (f"Refund this amount to {statement['number']}’s payer through Stripe? "
                               "This cannot be undone.")
        [sent] = fake_stripe.of("POST", "/v1/refunds")
        assert sent["params"]["amount"] == "100"
        await payment_status(server, statement["id"], "partially_refunded")
        await expect(page.locator("#refund-amount")).to_have_value("3.84")
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        await screenshot(page, f"admin-stripe-refund-{viewport}")

        # refunded at Stripe by other means: Stripe's refusal is shown in words
        intent = statement["payment_reference"]
        fake_stripe.refund({"payment_intent": intent, "amount": "300"})
        await page.locator("#stripe-payment").get_by_role("button", name="Refund").click()
        await expect(page.locator("#stripe-payment [role=alert]")).to_contain_text(
            "Stripe did not refund: Refund amount is greater than what is left")
        await expect(page.locator("#stripe-status")).to_have_text("Partly refunded")
        # Stripe's webhook tells the CSMS of that refund; the page then offers what is really left
        charge = fake_stripe.objects[fake_stripe.objects[intent]["latest_charge"]]
        payload = fake_stripe.event("charge.refunded", charge)
        assert (await webhook(server, payload, sign(payload))).status_code == 200
        await page.reload()
        await expect(page.locator("#stripe-refunded")).to_have_text("4.00 EUR")
        await expect(page.locator("#refund-amount")).to_have_value("0.84")
        await page.locator("#stripe-payment").get_by_role("button", name="Refund").click()
        await expect(page.locator("#stripe-status")).to_have_text("Refunded")
        await expect(page.locator("#stripe-payment form")).to_have_count(0)  # nothing left to refund
        await page.reload()
        await expect(page.locator("#stripe-status")).to_have_text("Refunded")
    audit = (await server.api.get("/audit", params={"object_type": "stripe_payment",
                                                    "object_id": str(statement["id"])})).json()
    entries = audit["items"] if isinstance(audit, dict) else audit
    assert len(entries) == 2 and any("station fault" in (e.get("summary") or "") for e in entries)


async def test_viewer_sees_the_payment_without_the_form_and_organizations_see_none(server, fake_stripe):
    statement = await paid_statement(server, fake_stripe, "Vera")
    url = f"/admin/billing/statements/{statement['id']}"
    async with admin_browser(server, "viewer") as page:
        await page.goto(url)
        await expect(page.locator("#stripe-status")).to_have_text("Paid")
        await expect(page.locator("#stripe-payment form")).to_have_count(0)
    viewer = await admin_client(server, "viewer")
    page = await viewer.get(url)
    csrf = page.text.split('name="_csrf_token" value="', 1)[1].split('"', 1)[0] if "_csrf_token" in page.text else ""
    refused = await viewer.post(f"/admin/payments/stripe/statements/{statement['id']}/refund",
                                data={"amount": "1", "_csrf_token": csrf})
    assert refused.status_code == 403
    await viewer.aclose()
    assert fake_stripe.of("POST", "/v1/refunds") == []
    org = (await server.api.post("/organizations", json={"name": "Other Org"})).json()
    member = await admin_client(server, "operator", organization=org["id"])
    answer = await member.get(url)
    assert answer.status_code == 404 and "Payment through Stripe" not in answer.text
    await member.aclose()


async def test_a_plain_form_post_redirects_back_or_shows_the_refusal(server, fake_stripe):
    statement = await paid_statement(server, fake_stripe, "Nora")
    operator = await admin_client(server, "operator")
    page = await operator.get(f"/admin/billing/statements/{statement['id']}")
    csrf = page.text.split('name="_csrf_token" value="', 1)[1].split('"', 1)[0]
    bad = await operator.post(f"/admin/payments/stripe/statements/{statement['id']}/refund",
                              data={"amount": "-1", "_csrf_token": csrf})
    assert bad.status_code == 422 and "Nothing was refunded" in bad.text and "Back to the statement" in bad.text
    good = await operator.post(f"/admin/payments/stripe/statements/{statement['id']}/refund",
                               data={"amount": "", "reason": "goodwill", "_csrf_token": csrf})
    assert good.status_code == 303 and good.headers["location"] == f"/admin/billing/statements/{statement['id']}"
    await payment_status(server, statement["id"], "refunded")
    none = await operator.post("/admin/payments/stripe/statements/99999/refund", data={"_csrf_token": csrf})
    assert none.status_code == 404
    await operator.aclose()
