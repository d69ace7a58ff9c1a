"""A driver's personal data in billing (GDPR), end to end: a driver charges, is settled and gets
a statement; their data export carries the statement (number, period, totals, lines) and their
home station; erasing them over the REST API anonymises the statement's party (row, PDF, audit
log) while numbers, amounts and lines stay; a second erasure changes nothing."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pypdf

from csms.testing import running_server  # noqa: F401 (the fixtures come from conftest)
from plugins.billing.tables import HomeStation, Settlement, Statement, StatementLine
from plugins.billing.tests.helpers import Session, create, default_tariff, minutes_ago, session_id_of, settled, station


async def _audit_text(srv, statement_id: int) -> str:
    entries = (await srv.api.get("/audit", params={"object_type": "statement", "object_id": str(statement_id)})).json()
    assert entries["items"], entries
    return json.dumps(entries["items"])


async def test_statements_exported_and_their_party_anonymised_on_erasure(any_server):
    srv = any_server
    driver = await create(srv, "/drivers", {"name": "Dana Erase", "email": "dana@example.org", "kind": "customer"})
    other = await create(srv, "/drivers", {"name": "Omar Other", "email": "omar@example.org", "kind": "customer"})
    await create(srv, "/tokens", {"id_token": "CARD-DANA-E", "driver": driver["id"]})
    await create(srv, "/tokens", {"id_token": "CARD-OMAR-E", "driver": other["id"]})
    await default_tariff(srv)
    started = minutes_ago(60)
    async with station(srv, "CP-GDPR", "1.6") as cp:
        s = Session(cp, "1.6", "CARD-DANA-E")
        await s.start(started, 1000)
        await s.stop(started + timedelta(minutes=30), 11000)
    sid = await session_id_of(srv, "CP-GDPR")
    async with station(srv, "CP-GDPR-2", "1.6") as cp:
        s = Session(cp, "1.6", "CARD-OMAR-E", tx="tx-omar")
        await s.start(started, 1000)
        await s.stop(started + timedelta(minutes=30), 6000)
    settlement = await settled(srv, sid)
    await settled(srv, await session_id_of(srv, "CP-GDPR-2"))
    assert await create(srv, "/stations", {"station_id": "CP-DANA-HOME"})
    # Dana was a customer when she charged; now employed, her employer reimburses charging at home
    assert (await srv.api.patch(f"/drivers/{driver['id']}", json={"kind": "employee"})).status_code == 200
    employer = await create(srv, "/organizations", {"name": "Dana's employer"})
    home = await create(srv, "/billing/home-stations", {"station_id": "CP-DANA-HOME", "driver_id": driver["id"],
                                                        "organization_id": employer["id"], "rate_per_kwh": "0.25"})
    period = {"period_start": (started - timedelta(hours=1)).isoformat(), "period_end": minutes_ago(0).isoformat()}
    statement = await create(srv, "/billing/statements", {"party_kind": "driver", "party_id": driver["id"], **period})
    theirs = await create(srv, "/billing/statements", {"party_kind": "driver", "party_id": other["id"], **period})
    assert statement["party_name"] == "Dana Erase" and statement["total_incl_vat"] == "4.84"
    assert "Dana Erase" in await _audit_text(srv, statement["id"])

    # the export: the statement with its lines and the home station; nothing of Omar's
    exported = await srv.api.get(f"/drivers/{driver['id']}/export")
    assert exported.status_code == 200, exported.text
    billing = exported.json()["plugins"]["billing"]
    [mine] = billing["statements"]
    assert (mine["number"], mine["party_name"], mine["currency"], mine["status"]) == (
        statement["number"], "Dana Erase", "EUR", "issued")
    assert (mine["total_excl_vat"], mine["total_vat"], mine["total_incl_vat"]) == ("4.00", "0.84", "4.84")
    assert mine["period_start"] == statement["period_start"] and mine["period_end"] == statement["period_end"]
    assert [(ln["session_id"], ln["station_id"], ln["amount_incl_vat"]) for ln in mine["lines"]] == [
        (sid, "CP-GDPR", "4.84")]
    assert [(h["station_id"], h["rate_per_kwh"], h["mode"]) for h in billing["home_stations"]] == [
        ("CP-DANA-HOME", "0.25", "fixed_rate")]
    assert theirs["number"] not in exported.text and "CP-GDPR-2" not in exported.text
    nothing = (await srv.api.get(f"/drivers/{(await create(srv, '/drivers', {'name': 'N'}))['id']}/export")).json()
    assert "billing" not in nothing["plugins"]  # a driver billing knows nothing of

    before = await Statement.select().where(Statement.id == statement["id"]).first()
    lines_before = await StatementLine.select().where(StatementLine.statement == statement["id"])

    erased = await srv.api.post(f"/drivers/{driver['id']}/erase")
    assert erased.status_code == 200 and erased.json()["failed_plugins"] == [], erased.text

    after = await Statement.select().where(Statement.id == statement["id"]).first()
    assert after["party_name"] == "Erased driver"
    assert {k: v for k, v in after.items() if k != "party_name"} == {k: v for k, v in before.items()
                                                                     if k != "party_name"}
    assert await StatementLine.select().where(StatementLine.statement == statement["id"]) == lines_before
    shown = (await srv.api.get(f"/billing/statements/{statement['id']}")).json()
    assert (shown["number"], shown["total_incl_vat"], shown["line_count"]) == (statement["number"], "4.84", 1)
    assert (await srv.api.get(f"/billing/settlements/{sid}")).json()["due"] == settlement["due"] == "4.84"
    assert await Settlement.count().where(Settlement.driver_id == driver["id"]) == 1
    assert await HomeStation.count().where(HomeStation.id == home["id"]) == 1  # the reimbursement terms stay
    pdf = await srv.api.get(f"/billing/statements/{statement['id']}.pdf")
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Erased driver" in text and "4.84" in text
    assert "Dana" not in text and "dana@example.org" not in text
    assert "Dana Erase" not in (await srv.api.get(f"/billing/statements/{statement['id']}.csv")).text
    audit = await _audit_text(srv, statement["id"])
    assert "Dana Erase" not in audit and "(erased)" in audit
    # Omar's statement is untouched
    assert (await srv.api.get(f"/billing/statements/{theirs['id']}")).json()["party_name"] == "Omar Other"
    assert "Omar Other" in await _audit_text(srv, theirs["id"])

    again = await srv.api.post(f"/drivers/{driver['id']}/erase")
    assert again.status_code == 200 and again.json()["already_erased"] is True
    assert again.json()["failed_plugins"] == []
    assert await Statement.select().where(Statement.id == statement["id"]).first() == after
    export = (await srv.api.get(f"/drivers/{driver['id']}/export")).json()["plugins"]["billing"]
    assert export["statements"][0]["party_name"] == "Erased driver"
    assert export["statements"][0]["total_incl_vat"] == "4.84"
