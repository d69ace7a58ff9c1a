"""Statements in the driver portal (issue 18): a signed-in driver lists their own invoices
(number, period, amount, status) and downloads each PDF; anyone else's statement, a draft and an
unknown id answer the same 404; without the driver's sign-in (an operator's login included) the
pages lead to the portal's sign-in. About 3 s."""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta, timezone

import httpx
import pypdf

from csms.testing import admin_client, driver_client
from plugins.billing.tests.helpers import Session, create, default_tariff, minutes_ago, session_id_of, settled, station


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(content)).pages)


def month(offset: int = 0) -> str:
    now = datetime.now(timezone.utc).replace(day=15) + timedelta(days=31 * offset)
    return now.strftime("%Y-%m")


async def two_drivers_with_statements(server) -> dict:
    """Flo, who charged once (10 kWh: 4.84 incl. VAT) and has an invoice, a draft of next month and
    no other; Max, with an (empty) invoice of last month."""
    await default_tariff(server)
    flo = await create(server, "/drivers", {"name": "Flo Driver", "email": "flo@example.org", "kind": "customer"})
    other = await create(server, "/drivers", {"name": "Max Other", "email": "max@example.org", "kind": "customer"})
    await create(server, "/tokens", {"id_token": "FLO-CARD", "driver": flo["id"]})
    started = minutes_ago(40)
    async with station(server, "CP-PORTAL-BILL", "1.6") as cp:
        s = Session(cp, "1.6", "FLO-CARD")
        await s.start(started, 1000)
        await s.stop(started + timedelta(minutes=30), 11000)
    await settled(server, await session_id_of(server, "CP-PORTAL-BILL"))
    invoice = await create(server, "/billing/statements", {"party_kind": "driver", "party_id": flo["id"],
                                                           "month": month(), "close_early": True})
    draft = await create(server, "/billing/statements", {"party_kind": "driver", "party_id": flo["id"],
                                                         "month": month(1), "draft": True})
    others = await create(server, "/billing/statements", {"party_kind": "driver", "party_id": other["id"],
                                                          "month": month(-1)})
    return {"flo": flo, "other": other, "invoice": invoice, "draft": draft, "others": others}


async def test_a_driver_lists_and_downloads_only_their_own_statements(server):
    world = await two_drivers_with_statements(server)
    invoice, others = world["invoice"], world["others"]
    assert invoice["line_count"] == 1 and invoice["total_incl_vat"] == "4.84"

    flo = await driver_client(server, world["flo"]["id"])
    max_ = await driver_client(server, world["other"]["id"])
    operator = await admin_client(server, "admin")
    try:
        page = await flo.get("/driver/statements")
        assert page.status_code == 200, page.text
        html = page.text
        assert "My statements" in html and invoice["number"] in html and "€4.84" in html and "Issued" in html
        start = datetime.fromisoformat(invoice["period_start"]).strftime("%Y-%m-%d")
        assert start in html
        assert f'href="/driver/statements/{invoice["id"]}/pdf"' in html
        assert others["number"] not in html and "DRAFT" not in html  # nobody else's, no drafts
        assert re.search(r'href="/driver/statements" aria-current="page">Statements<', html)  # the menu entry
        assert 'href="/driver/statements"' in (await flo.get("/driver/cards")).text  # on every portal page

        pdf = await flo.get(f"/driver/statements/{invoice['id']}/pdf")
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        assert f'statement-{invoice["number"]}.pdf' in pdf.headers["content-disposition"]
        text = pdf_text(pdf.content)
        assert invoice["number"] in text and "Flo Driver" in text and "CP-PORTAL-BILL" in text

        # anyone else's statement, a draft, an unknown id: the same 404, the portal's page
        for statement_id in (others["id"], world["draft"]["id"], 999999):
            r = await flo.get(f"/driver/statements/{statement_id}/pdf")
            assert r.status_code == 404 and "There is no such statement." in r.text, (statement_id, r.text[:200])
        assert (await max_.get(f"/driver/statements/{invoice['id']}/pdf")).status_code == 404
        mine = (await max_.get("/driver/statements")).text
        assert others["number"] in mine and invoice["number"] not in mine
        assert (await max_.get(f"/driver/statements/{others['id']}/pdf")).status_code == 200

        # not signed in to the portal (an operator's admin login grants nothing here): to the sign-in
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as anonymous:
            for client in (anonymous, operator):
                for path in ("/driver/statements", f"/driver/statements/{invoice['id']}/pdf"):
                    r = await client.get(path)
                    assert r.status_code == 303 and r.headers["location"] == "/driver", (path, r.status_code)
    finally:
        for client in (flo, max_, operator):
            await client.aclose()
