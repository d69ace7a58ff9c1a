"""The billing admin in headless Chromium, desktop and phone, as an operator sees it: refused
forms come back as HTML pages with the message next to the field and what was typed kept
(never JSON or page source); the simple tariff form; a statement for a month that has not ended
is refused with a clear message."""

from __future__ import annotations

import json

import pytest
from playwright.async_api import expect

from csms.testing import admin_browser, screenshot
from plugins.billing.tables import Tariff, TariffVersion

DEVICES = [("desktop", 1280, 900), ("phone", 390, 844)]


async def submit(page, button: str, path: str) -> int:
    """Press ``button``; the answer to the POST to ``path`` must be an HTML page. Its status."""
    async with page.expect_response(lambda r: r.request.method == "POST" and r.url.split("?")[0].endswith(path)) as a:
        await page.get_by_role("button", name=button).click()
    response = await a.value
    await page.wait_for_load_state()
    if 300 <= response.status < 400:  # saved: the browser follows to the page
        return response.status
    assert response.headers["content-type"].startswith("text/html"), response.headers["content-type"]
    assert "<!doctype" not in (await page.locator("body").inner_text()).lower()  # not shown as source
    return response.status


@pytest.mark.parametrize("device", DEVICES, ids=[d[0] for d in DEVICES])
async def test_tariff_forms_and_statements_answer_html(server, device):
    name, width, height = device
    code = f"STD-{name.upper()}"
    async with admin_browser(server, "operator", width=width, height=height) as page:
        await page.goto("/admin/billing/tariffs/new")
        await page.get_by_label("Tariff id (OCPI)").fill(code)
        await page.get_by_label("Name").fill("Standard")
        await page.get_by_label("Price per kWh").fill("-0.30")
        await page.get_by_label("Start fee").fill("1")
        await page.get_by_label("Row 1 from").fill("17:00")
        await page.get_by_label("Row 1 to").fill("7pm")
        assert await submit(page, "Save", "/admin/billing/tariffs/new") == 400
        await expect(page.locator("#err-energy")).to_have_text("Price per kWh cannot be negative.")
        await expect(page.locator("#err-row0_end_time")).to_contain_text("must be HH:MM")
        await expect(page.locator("#err-row0_energy")).to_contain_text("give at least one price")
        await expect(page.get_by_label("Price per kWh")).to_have_value("-0.30")  # what was typed is kept
        await expect(page.get_by_label("Row 1 from")).to_have_value("17:00")
        await screenshot(page, f"billing-tariff-form-errors-{name}")

        await page.get_by_label("Price per kWh").fill("0.30")
        await page.get_by_label("Row 1 to").fill("21:00")
        await page.get_by_label("Row 1 energy price").fill("0.45")
        await page.locator("input[name=row0_days][value=SATURDAY]").check()
        assert await submit(page, "Save", "/admin/billing/tariffs/new") == 303
        await expect(page.get_by_role("heading", name=f"Tariff {code}")).to_be_visible()
        tariff = await Tariff.select().where(Tariff.code == code).first()
        stored = json.loads((await TariffVersion.select().where(TariffVersion.tariff == tariff["id"]).first())["ocpi"])
        assert stored["elements"][0]["restrictions"] == {"start_time": "17:00", "end_time": "21:00",
                                                         "day_of_week": ["SATURDAY"]}
        await screenshot(page, f"billing-tariff-detail-{name}")

        # the simple form reads the tariff back; saving it unchanged adds no version
        await page.goto(f"/admin/billing/tariffs/{tariff['id']}/edit")
        await expect(page.get_by_label("Price per kWh")).to_have_value("0.3")
        await expect(page.get_by_label("Row 1 energy price")).to_have_value("0.45")
        assert await submit(page, "Save", f"/admin/billing/tariffs/{tariff['id']}/edit") == 303
        assert await TariffVersion.count().where(TariffVersion.tariff == tariff["id"]) == 1

        # the JSON editor, with bad JSON: the same page again, the text kept, the message under it
        await page.goto(f"/admin/billing/tariffs/{tariff['id']}/edit?editor=json")
        await page.get_by_label("OCPI 2.2.1 Tariff (JSON)").fill('{"id": "' + code + '", ')
        assert await submit(page, "Save", f"/admin/billing/tariffs/{tariff['id']}/edit") == 400
        await expect(page.locator("#err-ocpi")).to_contain_text("not valid JSON")
        await expect(page.get_by_label("OCPI 2.2.1 Tariff (JSON)")).to_have_value('{"id": "' + code + '",')
        await page.get_by_label("OCPI 2.2.1 Tariff (JSON)").fill(json.dumps({"id": code, "currency": "EUR", "elements": [
            {"price_components": [{"type": "ENERGY", "price": -1, "step_size": 1}]}]}))
        assert await submit(page, "Save", f"/admin/billing/tariffs/{tariff['id']}/edit") == 400
        await expect(page.locator("#err-ocpi")).to_contain_text("price")
        await screenshot(page, f"billing-tariff-json-errors-{name}")

        # an assignment whose validity ends before it starts: the tariff page again, the form open
        await page.goto(f"/admin/billing/tariffs/{tariff['id']}")
        await page.get_by_text("Assign this tariff").click()
        await page.get_by_label("Valid from (UTC)").fill("2026-05-01T00:00")
        await page.get_by_label("Valid to (UTC)").fill("2026-04-01T00:00")
        await page.get_by_label("Note").fill("spring")
        assert await submit(page, "Assign", "/admin/billing/assignments") == 400
        await expect(page.locator("#err-valid_to")).to_have_text("Valid_to must be after valid_from.")
        await expect(page.get_by_label("Note")).to_have_value("spring")
        await screenshot(page, f"billing-assignment-error-{name}")

        # a statement for the running month is refused: it would lock the month and leave sessions out
        await server.api.post("/drivers", json={"name": f"Dana {name}", "kind": "customer"})
        await page.goto("/admin/billing/statements")
        month = page.get_by_label("Month")
        running = (await page.evaluate("new Date().toISOString().slice(0, 7)"))
        await month.fill(running)
        assert await submit(page, "Issue", "/admin/billing/statements") == 409
        await expect(page.locator("#err-month")).to_contain_text("has not ended yet")
        await expect(month).to_have_value(running)
        await screenshot(page, f"billing-statement-open-period-{name}")
