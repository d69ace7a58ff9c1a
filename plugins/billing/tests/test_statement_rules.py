"""Statements are issued for periods that have ended (REST and admin alike), and their PDF reads
as an invoice: seller and buyer with addresses and VAT ids, number, issue date, period, lines, totals."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pypdf

from plugins.billing.statements import last_closed_month
from plugins.billing.tests.helpers import Session, create, default_tariff, minutes_ago, session_id_of, settled, station


async def test_open_period_is_refused_by_the_api(server):
    driver = await create(server, "/drivers", {"name": "Olga Open", "kind": "customer"})
    this_month = minutes_ago(0).strftime("%Y-%m")
    r = await server.api.post("/billing/statements", json={"party_kind": "driver", "party_id": driver["id"],
                                                           "month": this_month})
    assert r.status_code == 409 and "has not ended yet" in r.json()["detail"]
    r = await server.api.post("/billing/statements", json={
        "party_kind": "driver", "party_id": driver["id"], "period_start": minutes_ago(60).isoformat(),
        "period_end": minutes_ago(-5).isoformat()})
    assert r.status_code == 409 and "sessions that end later" in r.json()["detail"]
    r = await server.api.post("/billing/statements/run", json={"month": this_month})
    assert r.status_code == 409
    assert (await server.api.get("/billing/statements")).json()["total"] == 0  # nothing was issued
    last = await server.api.post("/billing/statements", json={"party_kind": "driver", "party_id": driver["id"],
                                                              "month": last_closed_month()})
    assert last.status_code == 201, last.text


def test_last_closed_month():
    assert last_closed_month(datetime.fromisoformat("2026-03-15T10:00:00+00:00")) == "2026-02"
    assert last_closed_month(datetime.fromisoformat("2026-01-01T00:00:00+00:00")) == "2025-12"


async def test_statement_pdf_is_an_invoice(server, monkeypatch):
    monkeypatch.setenv("CSMS_BILLING_OPERATOR_NAME", "Laadpunt BV")
    monkeypatch.setenv("CSMS_BILLING_OPERATOR_ADDRESS", "Kade 1; 1011 AA Amsterdam")
    monkeypatch.setenv("CSMS_BILLING_OPERATOR_VAT_ID", "NL123456789B01")
    fleet = await create(server, "/organizations", {"name": "Fleet GmbH", "kind": "customer",
                                                    "vat_id": "DE811111111", "address": "Hafenstr. 5\n20457 Hamburg"})
    await create(server, "/tokens", {"id_token": "FLEET-1", "organization": fleet["id"]})
    await default_tariff(server)
    started = minutes_ago(60)
    async with station(server, "CP-INV", "1.6") as cp:
        s = Session(cp, "1.6", "FLEET-1")
        await s.start(started, 1000)
        await s.stop(started + timedelta(minutes=30), 11000)
    await settled(server, await session_id_of(server, "CP-INV"))
    statement = await create(server, "/billing/statements", {
        "party_kind": "organization", "party_id": fleet["id"], "period_start": minutes_ago(120).isoformat(),
        "period_end": minutes_ago(0).isoformat()})
    r = await server.api.get(f"/billing/statements/{statement['id']}.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(r.content)).pages)
    for expected in ("Seller", "Laadpunt BV", "Kade 1", "1011 AA Amsterdam", "VAT id: NL123456789B01",
                     "Bill to", "Fleet GmbH", "Hafenstr. 5", "20457 Hamburg", "VAT id: DE811111111",
                     f"Invoice {statement['number']}", f"Invoice number: {statement['number']}", "Issue date:",
                     "Period:", "CP-INV", "21 %", "Total net, excl. VAT (EUR)", "4.00", "0.84", "4.84"):
        assert expected in text, (expected, text)
