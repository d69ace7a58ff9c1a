"""Issuing and crediting in the admin, in headless Chromium (desktop and phone): a draft of the
running month, refused as an invoice until the period is closed early, issued with its number,
then corrected by a credit note that names it. Screenshots of each step."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import pypdf
import pytest
from playwright.async_api import expect

from csms.testing import admin_browser, screenshot
from plugins.billing.tables import Statement
from plugins.billing.tests.test_admin_browser import DEVICES, submit
from plugins.billing.tests.test_invoices import fleet_with_session, seller_env


@pytest.mark.parametrize("device", DEVICES, ids=[d[0] for d in DEVICES])
async def test_issue_and_credit_in_the_admin(server, monkeypatch, device):
    name, width, height = device
    seller_env(monkeypatch, "de_DE")
    fleet = await fleet_with_session(server, f"CP-{name.upper()}")
    year = datetime.now(timezone.utc).year
    async with admin_browser(server, "operator", width=width, height=height) as page:
        page.on("dialog", lambda dialog: dialog.accept())  # the data-confirm questions
        await page.goto("/admin/billing/statements")
        await page.get_by_label("For").select_option(f"organization:{fleet['id']}")
        await page.get_by_label("Month").fill(datetime.now(timezone.utc).strftime("%Y-%m"))
        assert await submit(page, "Save as draft", "/admin/billing/statements") == 303
        await expect(page.get_by_role("heading", name="Draft statement")).to_be_visible()
        await expect(page.locator(".draft-note")).to_contain_text("The period has not ended")
        await expect(page.locator("tfoot")).to_contain_text("4,84 €")
        await screenshot(page, f"billing-invoice-draft-{name}")
        draft = await Statement.select().where(Statement.status == "draft").first()

        # issuing while the month runs: refused on the same page, until closed early
        assert await submit(page, "Issue", f"/admin/billing/statements/{draft['id']}/issue") == 409
        await expect(page.locator("#err-issue")).to_contain_text("has not ended yet")
        await screenshot(page, f"billing-invoice-issue-refused-{name}")
        await page.get_by_label("Close the period early").check()
        assert await submit(page, "Issue", f"/admin/billing/statements/{draft['id']}/issue") == 303
        number = f"ACME-{year}-000001"
        await expect(page.get_by_role("heading", name=f"Invoice {number}")).to_be_visible()
        await expect(page.get_by_text("Period closed early")).to_be_visible()
        await screenshot(page, f"billing-invoice-issued-{name}")

        # the credit note: its own number, the invoice named, amounts negated
        await page.get_by_label("Reason").fill("wrong tariff")
        assert await submit(page, "Create credit note", f"/admin/billing/statements/{draft['id']}/credit") == 303
        note_number = f"ACME-{year}-000002"
        await expect(page.get_by_role("heading", name=f"Credit note {note_number}")).to_be_visible()
        await expect(page.get_by_text("Credit note correcting invoice")).to_contain_text(number)
        await expect(page.locator("tfoot")).to_contain_text("-4,84 €")
        await screenshot(page, f"billing-credit-note-{name}")
        note = await Statement.select().where(Statement.number == note_number).first()
        pdf = await page.request.get(f"/api/v1/billing/statements/{note['id']}.pdf")
        text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(await pdf.body())).pages)
        for expected in (f"Credit note {note_number}", f"Corrects invoice {number}", "ACME Charging BV",
                         "Fleet GmbH", "VAT id: DE811111111", "-4,84 €"):
            assert expected in text, (expected, text)

        # the invoice shows its correction and offers no second one
        await page.goto(f"/admin/billing/statements/{draft['id']}")
        await expect(page.get_by_text("Corrected by credit note")).to_contain_text(note_number)
        await expect(page.get_by_role("button", name="Create credit note")).to_have_count(0)
        await screenshot(page, f"billing-invoice-credited-{name}")
    # every step is in the audit log
    r = await server.api.get("/audit", params={"object_type": "statement"})
    assert r.status_code == 200, r.text
    text = str(r.json()["items"])
    assert f"issued as {number}" in text and f"credit note {note_number}" in text, text
