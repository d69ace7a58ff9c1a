"""One cost per session wherever the admin shows it: the session page's Cost card (the billing
panel no longer repeats a total that went stale while the card updated), lines in minutes and
rounded kWh, the sessions list with duration and cost, the sessions CSV with tariff and cost."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.async_api import expect

from csms.testing import admin_browser, admin_client, csv_rows, screenshot
from plugins.billing.tests.helpers import Session, default_tariff, minutes_ago, session_id_of, settled, station

TIMED = {"id": "TIMED", "currency": "EUR", "elements": [{"price_components": [
    {"type": "ENERGY", "price": 0.30, "vat": 21, "step_size": 1},
    {"type": "TIME", "price": 3.00, "vat": 21, "step_size": 60}]}]}


@pytest.mark.parametrize("device", [("desktop", 1280, 900), ("phone", 390, 844)], ids=["desktop", "phone"])
async def test_cost_is_shown_once_and_for_people(server, device):
    name, width, height = device
    await default_tariff(server, TIMED)
    started = minutes_ago(65)
    async with station(server, f"CP-COST-{name}", "2.0.1") as cp:
        s = Session(cp, "2.0.1", "CARD-C", tx=f"cost-{name}")
        await s.start(started, 1000)
        await s.meter(started + timedelta(minutes=1), 1500)
        sid = await session_id_of(server, f"CP-COST-{name}")
        async with admin_browser(server, "operator", width=width, height=height) as page:
            await page.goto(f"/admin/sessions/{sid}")
            card = page.locator("#cost")
            await expect(card).to_contain_text("So far")
            text = await card.inner_text()
            assert "0.0166" not in text and re.search(r"\d+:\d\d h|\d+ min", text), text
            panel = page.locator(".plugin-panel", has_text="Billing")
            await expect(panel).to_contain_text("the amounts are in the Cost card")
            assert "EUR" not in await panel.inner_text()  # no second, possibly different, total
            await screenshot(page, f"billing-live-session-{name}")
        await s.stop(started + timedelta(minutes=61), 2000)
    await settled(server, sid)

    async with admin_browser(server, "operator", width=width, height=height) as page:
        await page.goto(f"/admin/sessions/{sid}")
        card_text = await page.locator("#cost").inner_text()
        assert "Charging time 1:01 h at 3.00/h" in card_text, card_text  # 61 started minutes
        total = re.search(r"Final: (\d+\.\d\d) EUR", card_text).group(1)
        await page.goto("/admin/sessions")
        row = page.locator(f"tr[data-session='{sid}']")
        await expect(row).to_contain_text("1:01 h")
        await expect(row.locator("[data-cost]")).to_have_text(f"{total} EUR")
        await screenshot(page, f"sessions-list-cost-{name}")

    client = await admin_client(server, "viewer")
    try:
        rows = csv_rows((await client.get("/admin/sessions.csv")).text)
    finally:
        await client.aclose()
    header = rows[0]
    mine = next(r for r in rows[1:] if r[0] == str(sid))
    as_dict = dict(zip(header, mine))
    assert (as_dict["tariff"], as_dict["cost_incl_vat"], as_dict["currency"], as_dict["cost_final"]) == (
        "TIMED", total, "EUR", "yes")
