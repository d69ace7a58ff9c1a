"""A priced session on a real server, both OCPP versions, SQLite and PostgreSQL: live cost while
it runs, final cost, exactly one settlement, a statement line, and the statement as CSV and PDF."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import timedelta

import pypdf
import pytest

from plugins.billing.assignments import session_row
from plugins.billing.settlements import settle
from plugins.billing.tables import Settlement
from plugins.billing.tests.helpers import Session, create, default_tariff, minutes_ago, session_id_of, settled, station


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_session_priced_settled_and_stated(any_server, version):
    srv = any_server
    driver = await create(srv, "/drivers", {"name": "Dana Driver", "kind": "customer"})
    await create(srv, "/tokens", {"id_token": "CARD-DANA", "driver": driver["id"]})
    tariff = await default_tariff(srv)
    started = minutes_ago(40)
    async with station(srv, "CP-E2E", version) as cp:
        s = Session(cp, version, "CARD-DANA")
        await s.start(started, 1000)
        await s.meter(started + timedelta(minutes=10), 6000)
        sid = await session_id_of(srv, "CP-E2E")

        live = (await srv.api.get(f"/billing/sessions/{sid}/cost")).json()
        assert live["state"] == "active" and live["source"] == "live"
        assert live["cost"]["final"] is False
        assert (live["cost"]["total_excl_vat"], live["cost"]["total_incl_vat"]) == ("2.50", "3.03")
        assert live["tariff"]["code"] == "STD" and live["tariff"]["version"] == 1
        core_view = (await srv.api.get(f"/sessions/{sid}")).json()["cost"]  # the core's session API asks us too
        assert core_view["total_incl_vat"] == "3.03"

        await s.stop(started + timedelta(minutes=30), 11000)

    settlement = await settled(srv, sid)
    assert settlement["kind"] == "customer" and settlement["status"] == "settled"
    assert settlement["payer_kind"] == "driver" and settlement["payer_id"] == driver["id"]
    assert (settlement["cost_excl_vat"], settlement["cost_vat"], settlement["due"]) == ("4.00", "0.84", "4.84")
    assert settlement["cost_incl_minor"] == 484 and settlement["tariff_code"] == "STD"
    final = (await srv.api.get(f"/billing/sessions/{sid}/cost")).json()
    assert final["source"] == "settlement" and final["cost"]["final"] is True
    assert final["cost"]["total_incl_vat"] == "4.84"
    assert [ln["component"] for ln in final["cost"]["lines"]] == ["FLAT", "ENERGY"]

    # settling again, twice at once, through the core and directly: still exactly one row
    session = await session_row(sid)
    await asyncio.gather(settle(session), settle(session), srv.core.settlement.settle(sid))
    assert await Settlement.count().where(Settlement.session_id == sid) == 1
    assert (await srv.api.get(f"/billing/settlements/{sid}")).json()["created_at"] == settlement["created_at"]

    period = {"period_start": (started - timedelta(hours=1)).isoformat(),
              "period_end": minutes_ago(0).isoformat()}  # a period that has ended
    statement = await create(srv, "/billing/statements", {"party_kind": "driver", "party_id": driver["id"], **period})
    assert statement["line_count"] == 1 and statement["lines"][0]["session_id"] == sid
    assert (statement["total_excl_vat"], statement["total_vat"], statement["total_incl_vat"]) == ("4.00", "0.84", "4.84")
    assert statement["lines"][0]["energy_kwh"] == "10.000"
    again = await srv.api.post("/billing/statements", json={"party_kind": "driver", "party_id": driver["id"], **period})
    assert again.status_code == 409 and f"statement {statement['id']}" in again.json()["detail"]

    r = await srv.api.get(f"/billing/statements/{statement['id']}.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["session_id"] for row in rows[:-1]] == [str(sid)]
    assert rows[0]["amount_incl_vat"] == "4.84" and rows[-1]["kind"] == "TOTAL"
    assert (rows[-1]["amount_excl_vat"], rows[-1]["vat"], rows[-1]["amount_incl_vat"]) == ("4.00", "0.84", "4.84")

    r = await srv.api.get(f"/billing/statements/{statement['id']}.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(r.content)).pages)
    assert statement["number"] in text and "Dana Driver" in text
    assert "Total incl. VAT (EUR)" in text and "4.84" in text and "0.84" in text and "CP-E2E" in text
    assert tariff["id"]


async def test_missing_meter_values_are_priced_from_what_exists(server):
    await default_tariff(server)
    started = minutes_ago(60)
    async with station(server, "CP-NOMV", "1.6") as cp:
        s = Session(cp, "1.6", "CARD-X")
        await s.start(started, 1000)
        await s.stop(started + timedelta(minutes=45), 11000)
    sid = await session_id_of(server, "CP-NOMV")
    settlement = await settled(server, sid)
    assert settlement["due"] == "4.84"  # 10 kWh from the start and stop readings
    assert "meter_values_missing" in settlement["flags"]

    async with station(server, "CP-NOMV2", "2.0.1") as cp:
        s = Session(cp, "2.0.1", "CARD-Y", tx="no-meter")
        await s.start(started, None)
        live = (await server.api.get(f"/billing/sessions/{await session_id_of(server, 'CP-NOMV2')}/cost")).json()
        assert live["cost"]["total_excl_vat"] == "1.00"  # the session fee; no energy known
        assert {"meter_values_missing", "no_meter_values"} <= set(live["cost"]["flags"])
        await s.stop(started + timedelta(minutes=5), None)


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
async def test_cost_updated_sent_to_2x_stations(server, monkeypatch, version):
    monkeypatch.setenv("CSMS_BILLING_COST_UPDATES", "1")
    monkeypatch.setenv("CSMS_BILLING_COST_UPDATE_INTERVAL", "0")
    from plugins.billing.config import billing_settings

    billing_settings.cache_clear()
    await default_tariff(server)
    started = minutes_ago(30)
    async with station(server, "CP-COST", version) as cp:
        s = Session(cp, version, "CARD-C", tx="cost-tx")
        await s.start(started, 1000)
        await s.meter(started + timedelta(minutes=10), 6000)
        for _ in range(200):
            if any(u["total_cost"] == pytest.approx(3.03) for u in cp.cost_updates):
                break
            await asyncio.sleep(0.05)
        assert {"total_cost": pytest.approx(3.03), "transaction_id": "cost-tx"} in cp.cost_updates
        await s.stop(started + timedelta(minutes=20), 11000)
