"""Cards: a search matches what was typed (``%`` and ``_`` are not wildcards), the list exports
as CSV (filtered, the caller's organizations only) and imports again, semicolon- and
tab-separated files import, and a file without a header gets a message that says so."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from csms.admin.cards import csv_delimiter
from csms.core.tables import IdToken, Organization
from csms.testing import admin_browser, admin_client, csv_rows, screenshot


async def tokens(server) -> tuple[int, int]:
    alpha = Organization(name="Alpha", kind="customer")
    bravo = Organization(name="Bravo", kind="customer")
    await alpha.save()
    await bravo.save()
    for token, label, org in (("50PCT", "50% off", alpha.id), ("A_B", "card", alpha.id), ("AXB", "card", alpha.id),
                              ("PLAIN", "other", alpha.id), ("BRAVO-1", "b", bravo.id)):
        await IdToken(id_token=token, label=label, organization=org).save()
    return alpha.id, bravo.id


async def test_search_is_literal_and_export_is_filtered(any_server):
    server = any_server  # ILIKE ... ESCAPE on PostgreSQL, LIKE ... ESCAPE on SQLite
    alpha, bravo = await tokens(server)
    client = await admin_client(server, "operator")
    try:
        page = await client.get("/admin/tokens", params={"q": "%"})
        assert "50PCT" in page.text and "PLAIN" not in page.text and "A_B" not in page.text
        page = await client.get("/admin/tokens", params={"q": "_"})
        assert "A_B" in page.text and "AXB" not in page.text
        assert (await client.get("/admin/stations", params={"q": "%"})).status_code == 200
        assert (await client.get("/admin/sessions", params={"station": "_", "token": "%"})).status_code == 200
        r = await client.get("/admin/tokens.csv", params={"q": "card"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        rows = csv_rows(r.text)
        assert rows[0][:2] == ["id_token", "type"] and sorted(row[0] for row in rows[1:]) == sorted(["A_B", "AXB"])
        assert rows[1][7] == "Alpha"
    finally:
        await client.aclose()
    api = await server.api.get("/tokens", params={"q": "%"})
    assert [t["id_token"] for t in api.json()["items"]] == ["50PCT"]

    org_user = await admin_client(server, "viewer", organization=bravo)
    try:
        rows = csv_rows((await org_user.get("/admin/tokens.csv")).text)
        assert [row[0] for row in rows[1:]] == ["BRAVO-1"]  # another organization's cards are not exported
    finally:
        await org_user.aclose()


def test_delimiter_is_sniffed():
    assert csv_delimiter("id_token;label\nA;x\n") == ";"
    assert csv_delimiter("id_token\tlabel\nA\tx\n") == "\t"
    assert csv_delimiter("id_token,label\nA,x\n") == ","
    assert csv_delimiter("id_token\nA\n") == ","  # one column: nothing to tell, a comma


@pytest.mark.parametrize("device", [("desktop", 1280, 900), ("phone", 390, 844)], ids=["desktop", "phone"])
async def test_semicolon_import_and_missing_header(server, device):
    name, width, height = device
    async with admin_browser(server, "operator", width=width, height=height) as page:
        await page.goto("/admin/tokens/import")
        await page.get_by_label("…or paste CSV").fill(
            f"id_token;type;status;label\nSEMI-{name};ISO14443;Accepted;Karte 1\nTAB-{name};ISO14443;Blocked;x\n")
        await page.get_by_role("button", name="Import").click()
        await expect(page.locator("#import-summary")).to_have_text("2 created, 0 updated, 0 rejected.")
        assert (await IdToken.select(IdToken.label).where(IdToken.id_token == f"SEMI-{name}").first())["label"] == \
            "Karte 1"

        await page.get_by_label("…or paste CSV").fill("04A1B2C3;ISO14443;Accepted\n04A1B2C4;ISO14443;Accepted\n")
        await page.get_by_role("button", name="Import").click()
        reason = page.locator("tr.report-rejected td").nth(3)
        await expect(reason).to_contain_text("the first line must be a header naming the columns")
        await expect(reason).to_contain_text("separated by semicolons")
        await screenshot(page, f"cards-import-no-header-{name}")

        await page.goto("/admin/tokens?q=%25")
        await expect(page.locator("#csv-export")).to_be_visible()
        await screenshot(page, f"cards-list-{name}")
