"""Invoices (issue 15): a gap-free number series per seller allocated in the issuing transaction
(concurrent issues on SQLite and PostgreSQL never share or skip a number; a failed issue gives
its number back), drafts of open periods (no number, DRAFT watermark, regenerated, issued once
the period ends or when closed early), credit notes that name the invoice they correct, and
amounts formatted per locale on the PDF."""

from __future__ import annotations

import asyncio
import io
from datetime import datetime, timedelta, timezone

import pypdf
import pytest

from plugins.billing import statements as stm
from plugins.billing.tables import InvoiceSeries, Statement
from plugins.billing.tests.helpers import Session, create, default_tariff, minutes_ago, session_id_of, settled, station


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(content)).pages)


def seller_env(monkeypatch, locale: str = "en") -> None:
    monkeypatch.setenv("CSMS_BILLING_OPERATOR_NAME", "ACME Charging BV")
    monkeypatch.setenv("CSMS_BILLING_OPERATOR_ADDRESS", "Kade 1; 1011 AA Amsterdam")
    monkeypatch.setenv("CSMS_BILLING_OPERATOR_VAT_ID", "NL123456789B01")
    monkeypatch.setenv("CSMS_BILLING_INVOICE_PREFIX", "ACME")
    monkeypatch.setenv("CSMS_BILLING_INVOICE_LOCALE", locale)
    stm.billing_settings.cache_clear()


async def fleet_with_session(server, station_id: str = "CP-INV") -> dict:
    """A customer organization with a card and one settled session (10 kWh: 4.00 + 0.84 VAT)."""
    fleet = await create(server, "/organizations", {"name": "Fleet GmbH", "kind": "customer",
                                                    "vat_id": "DE811111111", "address": "Hafenstr. 5\n20457 Hamburg"})
    await create(server, "/tokens", {"id_token": "FLEET-1", "organization": fleet["id"]})
    await default_tariff(server)
    started = minutes_ago(40)
    async with station(server, station_id, "1.6") as cp:
        s = Session(cp, "1.6", "FLEET-1")
        await s.start(started, 1000)
        await s.stop(started + timedelta(minutes=30), 11000)
    await settled(server, await session_id_of(server, station_id))
    return fleet


def this_month() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m")


async def test_draft_issue_credit_note_and_pdfs(any_server, monkeypatch):
    server = any_server
    seller_env(monkeypatch)
    fleet = await fleet_with_session(server)
    year = datetime.now(timezone.utc).year
    party = {"party_kind": "organization", "party_id": fleet["id"], "month": this_month()}

    # the running month: refused as an invoice, saved as a draft (no number, watermark)
    r = await server.api.post("/billing/statements", json=party)
    assert r.status_code == 409 and "save it as a draft" in r.json()["detail"]
    draft = await create(server, "/billing/statements", {**party, "draft": True})
    assert draft["status"] == "draft" and draft["number"] == f"DRAFT-{draft['id']}" and draft["line_count"] == 1
    assert (await Statement.select(Statement.number).where(Statement.id == draft["id"]).first())["number"] is None
    assert await InvoiceSeries.count() == 0  # a draft uses no number
    text = pdf_text((await server.api.get(f"/billing/statements/{draft['id']}.pdf")).content)
    assert "Draft statement (not an invoice)" in text and "DRAFT" in text and "ACME-" not in text
    r = await server.api.post("/billing/statements", json={**party, "draft": True})
    assert r.status_code == 409 and "draft" in r.json()["detail"]  # one draft per party and period
    r = await server.api.post(f"/billing/statements/{draft['id']}/regenerate")
    assert r.status_code == 200 and r.json()["status"] == "draft"

    # issuing the draft: only once the period ends, or closing it early
    r = await server.api.post(f"/billing/statements/{draft['id']}/issue", json={})
    assert r.status_code == 409 and "has not ended yet" in r.json()["detail"]
    r = await server.api.post(f"/billing/statements/{draft['id']}/issue", json={"close_early": True})
    assert r.status_code == 200, r.text
    invoice = r.json()
    assert invoice["status"] == "issued" and invoice["number"] == f"ACME-{year}-000001"
    assert invoice["scheduled_end"] is not None and invoice["period_end"] < invoice["scheduled_end"]
    text = pdf_text((await server.api.get(f"/billing/statements/{invoice['id']}.pdf")).content)
    for expected in (f"Invoice ACME-{year}-000001", "Seller", "ACME Charging BV", "Kade 1", "VAT id: NL123456789B01",
                     "Bill to", "Fleet GmbH", "Hafenstr. 5", "VAT id: DE811111111", "21 %", "€4.00", "€0.84", "€4.84",
                     "closed early"):
        assert expected in text, (expected, text)
    assert "DRAFT" not in text
    r = await server.api.post(f"/billing/statements/{invoice['id']}/issue", json={})
    assert r.status_code == 409  # issued once

    # a credit note: the next number of the series, lines negated, naming the invoice; the invoice unchanged
    before = (await server.api.get(f"/billing/statements/{invoice['id']}")).json()
    r = await server.api.post(f"/billing/statements/{invoice['id']}/credit", json={"reason": "wrong tariff"})
    assert r.status_code == 201, r.text
    note = r.json()
    assert note["kind"] == "credit_note" and note["title"] == "Credit note"
    assert note["number"] == f"ACME-{year}-000002" and note["corrects"] == invoice["id"]
    assert note["corrects_number"] == invoice["number"] and note["total_incl_vat"] == "-4.84"
    assert [ln["amount_incl_vat"] for ln in note["lines"]] == ["-4.84"]
    after = (await server.api.get(f"/billing/statements/{invoice['id']}")).json()
    assert after.pop("credited_by") == [{"id": note["id"], "number": note["number"]}]
    before.pop("credited_by")
    assert after == before
    text = pdf_text((await server.api.get(f"/billing/statements/{note['id']}.pdf")).content)
    for expected in (f"Credit note ACME-{year}-000002", f"Corrects invoice ACME-{year}-000001", "Reason: wrong tariff",
                     "ACME Charging BV", "Fleet GmbH", "VAT id: DE811111111", "-€4.84", "Credited to"):
        assert expected in text, (expected, text)
    r = await server.api.post(f"/billing/statements/{invoice['id']}/credit", json={})
    assert r.status_code == 409 and note["number"] in r.json()["detail"]
    r = await server.api.post(f"/billing/statements/{note['id']}/credit", json={})
    assert r.status_code == 409  # a credit note is not credited

    # the credited period can be invoiced again: the next number
    again = await create(server, "/billing/statements", {
        "party_kind": "organization", "party_id": fleet["id"], "period_start": invoice["period_start"],
        "period_end": invoice["period_end"]})
    assert again["number"] == f"ACME-{year}-000003" and again["total_incl_vat"] == "4.84"

    # amounts in the PDF follow the locale
    seller_env(monkeypatch, "de_DE")
    text = pdf_text((await server.api.get(f"/billing/statements/{again['id']}.pdf")).content)
    assert "4,84 €" in text and "0,84 €" in text, text

    # a draft is discarded, never voided; an issued statement is never discarded
    d2 = await create(server, "/billing/statements", {"party_kind": "organization", "party_id": fleet["id"],
                                                      "period_start": minutes_ago(-60).isoformat(),
                                                      "period_end": minutes_ago(-120).isoformat(), "draft": True})
    assert (await server.api.post(f"/billing/statements/{d2['id']}/void")).status_code == 409
    assert (await server.api.delete(f"/billing/statements/{again['id']}")).status_code == 409
    assert (await server.api.delete(f"/billing/statements/{d2['id']}")).status_code == 204
    assert (await server.api.get(f"/billing/statements/{d2['id']}")).status_code == 404
    numbers = [r["number"] for r in await Statement.select(Statement.number).where(Statement.number.is_not_null())]
    assert sorted(numbers) == [f"ACME-{year}-{n:06d}" for n in (1, 2, 3)]


async def test_concurrent_issues_get_every_number_once(any_server, monkeypatch):
    """Drafts issued at once, statements created at once, and one draft issued twice at once:
    each issue gets its own number, none is skipped; a failed issue gives its number back."""
    server = any_server
    seller_env(monkeypatch)
    year = datetime.now(timezone.utc).year
    period = {"period_start": minutes_ago(3 * 24 * 60).isoformat(), "period_end": minutes_ago(1).isoformat()}
    drivers = [await create(server, "/drivers", {"name": f"Driver {i}", "kind": "customer"}) for i in range(12)]
    drafts = [await create(server, "/billing/statements", {"party_kind": "driver", "party_id": d["id"], "draft": True,
                                                           **period}) for d in drivers[:6]]

    # a failing issue (after its number was allocated) rolls back and uses none
    real = stm._replace_lines

    async def broken(statement_id, lines):
        raise RuntimeError("disk full")

    monkeypatch.setattr(stm, "_replace_lines", broken)
    with pytest.raises(RuntimeError):
        await stm.issue_draft(drafts[0]["id"])
    monkeypatch.setattr(stm, "_replace_lines", real)
    assert (await stm.statement_row(drafts[0]["id"]))["status"] == "draft"
    assert await InvoiceSeries.count() == 0 or (await InvoiceSeries.select().first())["last_number"] == 0

    issues = [server.api.post(f"/billing/statements/{d['id']}/issue", json={}) for d in drafts]
    issues.append(server.api.post(f"/billing/statements/{drafts[0]['id']}/issue", json={}))  # the same draft twice
    creates = [server.api.post("/billing/statements", json={"party_kind": "driver", "party_id": d["id"], **period})
               for d in drivers[6:]]
    answers = await asyncio.gather(*issues, *creates)
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 6 + [201] * 6 + [409], [a.text for a in answers if a.status_code >= 400]
    numbers = sorted(a.json()["number"] for a in answers if a.status_code < 300)
    assert numbers == [f"ACME-{year}-{n:06d}" for n in range(1, 13)]
    stored = sorted(r["number"] for r in await Statement.select(Statement.number).where(
        Statement.number.is_not_null()))
    assert stored == numbers
    assert (await InvoiceSeries.select().where(InvoiceSeries.series == f"operator:{year}").first())["last_number"] == 12

    # concurrent credit notes of one invoice: one wins, the other is refused, the series stays gap-free
    target = next(a.json() for a in answers if a.status_code == 201)
    credits = await asyncio.gather(*(server.api.post(f"/billing/statements/{target['id']}/credit", json={})
                                     for _ in range(3)))
    assert sorted(c.status_code for c in credits) == [201, 409, 409]
    assert next(c.json()["number"] for c in credits if c.status_code == 201) == f"ACME-{year}-000013"


async def test_a_draft_issued_while_it_is_discarded_stays_and_the_discard_is_refused(any_server, monkeypatch):
    """discard_draft reads the draft, then deletes it where it is still a draft; an issue landing
    in between keeps the invoice, and the discard must answer 409, not "discarded"."""
    server = any_server
    seller_env(monkeypatch)
    driver = await create(server, "/drivers", {"name": "Dora Discard", "kind": "customer"})
    draft = await create(server, "/billing/statements", {"party_kind": "driver", "party_id": driver["id"],
                                                         "month": this_month(), "draft": True})
    real = stm.statement_row
    issued: list[dict] = []

    async def read_then_issue(statement_id):
        row = await real(statement_id)
        if not issued:  # the discard's read: now another operator issues the draft
            monkeypatch.setattr(stm, "statement_row", real)
            issued.append(await stm.issue_draft(statement_id, close_early=True))
        return row

    monkeypatch.setattr(stm, "statement_row", read_then_issue)
    answer = await server.api.delete(f"/billing/statements/{draft['id']}")
    assert answer.status_code == 409, answer.text
    assert "is issued" in answer.json()["detail"]
    assert (await stm.statement_row(draft["id"]))["status"] == "issued"


async def test_two_voids_of_one_invoice_void_it_once(any_server, monkeypatch):
    server = any_server
    seller_env(monkeypatch)
    driver = await create(server, "/drivers", {"name": "Vic Void", "kind": "customer"})
    invoice = await create(server, "/billing/statements", {"party_kind": "driver", "party_id": driver["id"],
                                                           "month": this_month(), "close_early": True})
    assert invoice["status"] == "issued"
    answers = await asyncio.gather(*(server.api.post(f"/billing/statements/{invoice['id']}/void") for _ in range(3)))
    assert sorted(a.status_code for a in answers) == [200, 409, 409], [a.text for a in answers]
    voided_at = next(a.json()["voided_at"] for a in answers if a.status_code == 200)
    assert (await stm.statement_row(invoice["id"]))["voided_at"].isoformat().startswith(voided_at[:19])


async def test_closing_early_hands_the_rest_to_the_next_period(server, monkeypatch):
    seller_env(monkeypatch)
    driver = await create(server, "/drivers", {"name": "Carla Close", "kind": "customer"})
    planned_end = minutes_ago(-60)
    closed = await create(server, "/billing/statements", {
        "party_kind": "driver", "party_id": driver["id"], "period_start": minutes_ago(120).isoformat(),
        "period_end": planned_end.isoformat(), "close_early": True})
    assert closed["status"] == "issued" and closed["number"].startswith("ACME-")
    closed_at = datetime.fromisoformat(closed["period_end"])
    assert closed_at <= datetime.now(timezone.utc) < planned_end
    assert datetime.fromisoformat(closed["scheduled_end"]) == planned_end
    # the next period starts where the planned one would have ended; it covers the rest too
    following = await create(server, "/billing/statements", {
        "party_kind": "driver", "party_id": driver["id"], "period_start": planned_end.isoformat(),
        "period_end": minutes_ago(-120).isoformat(), "draft": True})
    assert datetime.fromisoformat(following["period_start"]) == closed_at


async def test_a_draft_issued_while_it_is_regenerated_keeps_the_lines_it_was_issued_with(any_server, monkeypatch):
    """regenerate_draft takes its snapshot before its transaction; a concurrent issue (here: the
    settlement voided, then the draft issued closing early) lands in between. The regenerate must
    then find the statement no longer a draft and leave the issued invoice's lines alone."""
    from plugins.billing import settlements as st
    from plugins.billing.tables import StatementLine

    server = any_server
    seller_env(monkeypatch)
    fleet = await fleet_with_session(server)
    session_id = await session_id_of(server, "CP-INV")
    draft = await create(server, "/billing/statements", {"party_kind": "organization", "party_id": fleet["id"],
                                                         "month": this_month(), "draft": True})
    assert draft["line_count"] == 1
    real = stm._snapshot
    issued: list[dict] = []

    async def snapshot_then_issue(*args, **kwargs):
        taken = await real(*args, **kwargs)
        if not issued:  # the regenerate's snapshot: now another operator voids the session and issues the draft
            monkeypatch.setattr(stm, "_snapshot", real)
            await st.void(session_id, "wrong card")
            issued.append(await stm.issue_draft(draft["id"], close_early=True))
        return taken

    monkeypatch.setattr(stm, "_snapshot", snapshot_then_issue)
    with pytest.raises(stm.BillingError):
        await stm.regenerate_draft(draft["id"])
    assert issued and issued[0]["status"] == "issued" and issued[0]["line_count"] == 0
    invoice = await stm.statement_row(draft["id"])
    assert invoice["status"] == "issued" and invoice["line_count"] == 0 and invoice["total_incl_minor"] == 0
    assert await StatementLine.count().where(StatementLine.statement == draft["id"]) == 0
