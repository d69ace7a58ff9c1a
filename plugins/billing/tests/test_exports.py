"""Statement exports as users fetch them: the CSV over REST (API key, and the admin's link with a
login cookie) neutralises spreadsheet formulas planted in idTags, card labels and the driver's
name, while a credit's negative amounts stay numbers; the PDF still renders."""

from __future__ import annotations

import io
from datetime import timedelta

import pypdf

from csms.testing import FORMULA_PAYLOADS, csv_rows, formula_cells
from plugins.billing.tests.helpers import Session, create, default_tariff, minutes_ago, settled, station
from plugins.billing.tests.test_admin_pages import operator_client


async def test_statement_csv_neutralises_formulas_and_keeps_credits_numeric(server):
    employer = await create(server, "/organizations", {"name": "@Acme", "kind": "employer"})
    name = FORMULA_PAYLOADS[0]
    emma = await create(server, "/drivers", {"name": name, "kind": "employee", "organization": employer["id"]})
    await create(server, "/stations", {"station_id": "CP-HOME"})
    await default_tariff(server)
    await create(server, "/billing/home-stations", {"station_id": "CP-HOME", "driver_id": emma["id"],
                                                     "rate_per_kwh": "0.25"})
    tokens = FORMULA_PAYLOADS[1:]
    started = minutes_ago(200)
    async with station(server, "CP-HOME", "1.6") as cp:
        for i, token in enumerate(tokens):
            await create(server, "/tokens", {"id_token": token, "label": token, "driver": emma["id"]})
            s = Session(cp, "1.6", token)
            at = started + timedelta(minutes=30 * i)
            await s.start(at, 1000)
            await s.stop(at + timedelta(minutes=20), 9000)  # 8 kWh x 0.25 = 2.00 owed to Emma
    sessions = (await server.api.get("/sessions", params={"station": "CP-HOME"})).json()["items"]
    for sess in sessions:
        await settled(server, sess["id"])
    statement = await create(server, "/billing/statements", {
        "party_kind": "driver", "party_id": emma["id"], "period_start": (started - timedelta(hours=1)).isoformat(),
        "period_end": minutes_ago(0).isoformat()})
    assert statement["line_count"] == len(tokens) and statement["total_incl_vat"] == "-10.00"

    client = await operator_client(server)
    try:
        by_key = await server.api.get(f"/billing/statements/{statement['id']}.csv")
        by_login = await client.get(f"/api/v1/billing/statements/{statement['id']}.csv")  # the admin's link
        pdf = await client.get(f"/api/v1/billing/statements/{statement['id']}.pdf")
    finally:
        await client.aclose()
    for r in (by_key, by_login):
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert formula_cells(r.text) == []
    assert by_login.text == by_key.text
    rows = csv_rows(by_key.text)
    lines = [dict(zip(rows[0], row)) for row in rows[1:]]
    *charges, total = lines
    assert sorted(ln["id_token"] for ln in charges) == sorted("'" + t for t in tokens)
    assert {(ln["amount_excl_vat"], ln["vat"], ln["amount_incl_vat"]) for ln in charges} == {
        ("-2.00", "0.00", "-2.00")}
    assert {ln["energy_kwh"] for ln in charges} == {"8.000"}
    assert (total["kind"], total["description"]) == ("TOTAL", "'" + name)
    assert (total["amount_incl_vat"], total["energy_kwh"]) == ("-10.00", "40.000")

    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
    assert statement["number"] in text and "-€10.00" in text  # formatted for the invoice locale (en)
