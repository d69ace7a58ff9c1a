"""Tariff versions, assignment precedence and conflicts, the four payer cases, statements signs."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from csms.plugin_api import hookimpl
from csms.testing import pm
from plugins.billing.statements import PaymentRequest

from plugins.billing.tests.helpers import (
    FLAT_AND_ENERGY,
    closed_day,
    Session,
    create,
    default_tariff,
    minutes_ago,
    settled,
    station,
)


async def charge(srv, station_id: str, token: str, *, version: str = "1.6", kwh: float = 10.0,
                 started=None) -> int:
    """One finished session of ``kwh`` on ``station_id``; returns its id once settled."""
    started = started or minutes_ago(50)
    async with station(srv, station_id, version) as cp:
        s = Session(cp, version, token, tx=f"tx-{station_id}-{token}")
        await s.start(started, 1000)
        await s.stop(started + timedelta(minutes=30), 1000 + kwh * 1000)
    items = (await srv.api.get("/sessions", params={"station": station_id, "token": token})).json()["items"]
    await settled(srv, items[0]["id"])
    return items[0]["id"]


async def test_tariff_change_never_reprices_a_settled_session(any_server):
    srv = any_server
    tariff = await default_tariff(srv)
    sid = await charge(srv, "CP-V", "CARD-1")
    first = (await srv.api.get(f"/billing/settlements/{sid}")).json()
    assert first["due"] == "4.84"

    dearer = {**FLAT_AND_ENERGY, "elements": [{"price_components": [
        {"type": "ENERGY", "price": 0.50, "vat": 21, "step_size": 1},
        {"type": "FLAT", "price": 1.00, "vat": 21, "step_size": 1}]}]}
    r = await srv.api.put(f"/billing/tariffs/{tariff['id']}", json=dearer)
    assert r.status_code == 200 and r.json()["current_version"] == 2
    same = await srv.api.put(f"/billing/tariffs/{tariff['id']}", json=dearer)
    assert same.json()["current_version"] == 2  # unchanged prices add no version
    assert len((await srv.api.get(f"/billing/tariffs/{tariff['id']}/versions")).json()["items"]) == 2
    v1 = (await srv.api.get(f"/billing/tariffs/{tariff['id']}", params={"version": 1})).json()
    assert v1["tariff"]["elements"][0]["price_components"][0]["price"] == 0.3

    cost = (await srv.api.get(f"/billing/sessions/{sid}/cost")).json()
    assert cost["source"] == "settlement" and cost["cost"]["total_incl_vat"] == "4.84"
    assert (await srv.api.get(f"/sessions/{sid}")).json()["cost"]["total_incl_vat"] == "4.84"
    period = {"from": minutes_ago(120).isoformat(), "to": minutes_ago(-60).isoformat()}
    run = (await srv.api.post("/billing/settlements/run", json=period)).json()
    assert run["unchanged"] == [sid] and run["settled"] == [] and run["resettled"] == []
    assert (await srv.api.get(f"/billing/settlements/{sid}")).json() == first

    # a session that starts after the change gets the new version; one that started before, the old
    newer = await charge(srv, "CP-V", "CARD-2", started=minutes_ago(-1))
    assert (await srv.api.get(f"/billing/settlements/{newer}")).json()["due"] == "7.26"  # 10 kWh at 0.50 + 1.00
    older = await charge(srv, "CP-V", "CARD-3", started=minutes_ago(100))
    assert (await srv.api.get(f"/billing/settlements/{older}")).json()["due"] == "4.84"

    # only an explicit void lets a re-run settle the session again (at the version in force at its start)
    assert (await srv.api.post(f"/billing/settlements/{sid}/void", json={"reason": ""})).status_code == 400
    voided = (await srv.api.post(f"/billing/settlements/{sid}/void", json={"reason": "card was lost"})).json()
    assert voided["status"] == "void"
    assert (await srv.api.get(f"/billing/sessions/{sid}/cost")).json()["source"] == "final"
    run = (await srv.api.post("/billing/settlements/run", json=period)).json()
    assert run["resettled"] == [sid] and sorted(run["unchanged"]) == [newer, older]
    again = (await srv.api.get(f"/billing/settlements/{sid}")).json()
    assert again["status"] == "settled" and again["revision"] == 2 and again["revisions_voided"] == 1
    assert again["due"] == "4.84" and again["tariff_version"] == first["tariff_version"]


async def test_invalid_tariffs_and_contradictory_assignments_are_refused(server):
    bad = {"id": "BAD", "currency": "EUR", "elements": [{"price_components": [
        {"type": "ENERGY", "price": -1, "step_size": 1}],
        "restrictions": {"min_kwh": 50, "max_kwh": 20}}]}
    r = await server.api.post("/billing/tariffs", json=bad)
    assert r.status_code == 400
    problems = r.json()["extra"]["problems"]
    assert any("price is negative" in p for p in problems)
    assert any("min_kwh (50 kWh) is not below max_kwh (20 kWh)" in p for p in problems)
    r = await server.api.post("/billing/tariffs", json={"id": "X", "currency": "EUR", "elements": [
        {"price_components": [{"type": "VOLUME", "price": 1, "step_size": 1}]}]})
    assert r.status_code == 400 and "unknown value 'VOLUME'" in r.json()["detail"]
    checked = (await server.api.post("/billing/tariffs/validate", json=bad)).json()
    assert checked["valid"] is False and checked["problems"] == problems

    tariff = await create(server, "/billing/tariffs", FLAT_AND_ENERGY)
    assert (await server.api.post("/billing/tariffs", json=FLAT_AND_ENERGY)).status_code == 409
    other = await create(server, "/billing/tariffs", {**FLAT_AND_ENERGY, "id": "OTHER"})
    await create(server, "/stations", {"station_id": "CP-A"})
    first = await create(server, "/billing/assignments", {"tariff": tariff["id"], "station_id": "CP-A",
                                                           "valid_from": "2026-01-01T00:00:00Z"})
    r = await server.api.post("/billing/assignments", json={"tariff": other["id"], "station_id": "CP-A",
                                                            "valid_from": "2026-06-01T00:00:00Z"})
    assert r.status_code == 409
    assert f"conflicts with assignment {first['id']}" in r.json()["detail"]
    assert "everyone at station CP-A" in r.json()["detail"]
    r = await server.api.post("/billing/assignments", json={"tariff": other["id"], "station_id": "CP-A",
                                                            "valid_to": "2026-01-01T00:00:00Z"})
    assert r.status_code == 201  # ends where the other begins: no overlap
    for body, message in (
        ({"organization_id": 1, "driver_group": "guest"}, "not both"),
        ({"evse_id": 1}, "needs the station_id"),
        ({"site_id": 1, "station_id": "CP-A"}, "not both"),
        ({"driver_group": "vip"}, "driver_group must be one of"),
        ({"station_id": "NOPE"}, "no station 'NOPE'"),
        ({"valid_from": "2026-02-01", "valid_to": "2026-01-01"}, "valid_to must be after valid_from"),
    ):
        r = await server.api.post("/billing/assignments", json={"tariff": other["id"], **body})
        assert r.status_code == 400 and message in r.json()["detail"], (body, r.text)
    r = await server.api.delete(f"/billing/tariffs/{tariff['id']}")
    assert r.status_code == 409 and f"assignment {first['id']}" in r.json()["detail"]


async def test_precedence_audience_then_location(server):
    api = server.api
    org = await create(server, "/organizations", {"name": "Fleet Co", "kind": "customer"})
    site = await create(server, "/sites", {"name": "Depot", "timezone": "Europe/Amsterdam"})
    await create(server, "/stations", {"station_id": "CP-P", "site": site["id"]})
    guest = await create(server, "/drivers", {"name": "Gus", "kind": "guest"})
    fleet = await create(server, "/drivers", {"name": "Flo", "kind": "customer", "organization": org["id"]})
    await create(server, "/tokens", {"id_token": "GUEST", "driver": guest["id"]})
    await create(server, "/tokens", {"id_token": "FLEET", "driver": fleet["id"]})
    ids = {}
    for code in ("DEFAULT", "SITE", "STATION", "EVSE", "GUESTS", "FLEET"):
        ids[code] = (await create(server, "/billing/tariffs", {**FLAT_AND_ENERGY, "id": code}))["id"]

    async def resolved(token: str | None = None, evse: int = 1) -> str | None:
        params = {"station_id": "CP-P", "evse_id": evse, **({"id_token": token} if token else {})}
        answer = (await api.get("/billing/assignments/resolve", params=params)).json()
        return answer["tariff"]["code"] if answer["tariff"] else None

    assert await resolved() is None
    steps = [("DEFAULT", {}), ("SITE", {"site_id": site["id"]}), ("STATION", {"station_id": "CP-P"}),
             ("EVSE", {"station_id": "CP-P", "evse_id": 1})]
    for code, scope in steps:
        await create(server, "/billing/assignments", {"tariff": ids[code], **scope})
        assert await resolved() == code
    assert await resolved(evse=2) == "STATION"
    # a driver group's tariff anywhere beats the EVSE's public tariff; a named organization beats both
    await create(server, "/billing/assignments", {"tariff": ids["GUESTS"], "driver_group": "guest"})
    assert await resolved("GUEST") == "GUESTS" and await resolved() == "EVSE"
    await create(server, "/billing/assignments", {"tariff": ids["FLEET"], "organization_id": org["id"],
                                                   "site_id": site["id"]})
    assert await resolved("FLEET") == "FLEET" and await resolved("GUEST") == "GUESTS"


async def test_four_payer_cases_and_statement_signs(server):
    api = server.api
    operator = await create(server, "/organizations", {"name": "ChargeOp", "kind": "operator"})
    employer = await create(server, "/organizations", {"name": "Acme", "kind": "employer"})
    lessor = await create(server, "/organizations", {"name": "LeaseCo", "kind": "leasing_partner"})
    office = await create(server, "/sites", {"name": "Acme office", "organization": employer["id"]})
    await create(server, "/stations", {"station_id": "CP-WORK", "site": office["id"]})
    await create(server, "/stations", {"station_id": "CP-PUBLIC"})
    await create(server, "/stations", {"station_id": "CP-HOME"})
    emma = await create(server, "/drivers", {"name": "Emma Employee", "kind": "employee",
                                              "organization": employer["id"]})
    lars = await create(server, "/drivers", {"name": "Lars Lease", "kind": "leasing", "organization": lessor["id"]})
    await create(server, "/tokens", {"id_token": "EMMA", "driver": emma["id"]})
    await create(server, "/tokens", {"id_token": "LARS", "driver": lars["id"]})
    await default_tariff(server)
    home = await create(server, "/billing/home-stations", {"station_id": "CP-HOME", "driver_id": emma["id"],
                                                            "rate_per_kwh": "0.25"})
    assert home["organization_id"] is None  # reimbursed by the driver's own organization
    r = await api.post("/billing/home-stations", json={"station_id": "CP-HOME", "driver_id": emma["id"],
                                                       "rate_per_kwh": "0.20"})
    assert r.status_code == 409 and "already the home station" in r.json()["detail"]
    r = await api.post("/billing/home-stations", json={"station_id": "CP-PUBLIC", "driver_id": lars["id"],
                                                       "rate_per_kwh": "0.20"})
    assert r.status_code == 400 and "for employees" in r.json()["detail"]

    at_work = await charge(server, "CP-WORK", "EMMA")
    at_home = await charge(server, "CP-HOME", "EMMA", version="2.0.1", kwh=8)
    leased = await charge(server, "CP-PUBLIC", "LARS", version="2.0.1")
    public = await charge(server, "CP-PUBLIC", "STRANGER")
    s = {sid: (await api.get(f"/billing/settlements/{sid}")).json() for sid in (at_work, at_home, leased, public)}

    assert s[at_work]["kind"] == "staff_free" and s[at_work]["due"] == "0.00"
    assert s[at_work]["cost_incl_vat"] == "4.84" and s[at_work]["payer_id"] == employer["id"]
    assert s[at_home]["kind"] == "home_reimbursement" and s[at_home]["due"] == "2.00"  # 8 kWh x 0.25, no VAT
    assert (s[at_home]["payer_kind"], s[at_home]["payer_id"]) == ("organization", employer["id"])
    assert (s[at_home]["payee_kind"], s[at_home]["payee_id"]) == ("driver", emma["id"])
    assert s[leased]["kind"] == "leasing" and s[leased]["payer_id"] == lessor["id"] and s[leased]["due"] == "4.84"
    assert s[public]["kind"] == "customer" and s[public]["payer_kind"] == "token"
    assert s[public]["payer_ref"] == "STRANGER" and "anonymous" in s[public]["flags"]
    cost = (await api.get(f"/billing/sessions/{at_home}/cost")).json()
    assert cost["cost"]["tariff_id"] == f"HOME-{home['id']}"

    run = (await api.post("/billing/statements/run", json=closed_day())).json()
    by_party = {(x["party_kind"], x["party_id"]): x for x in run["created"]}
    assert set(by_party) == {("driver", emma["id"]), ("organization", employer["id"]),
                             ("leasing_partner", lessor["id"])}
    assert by_party[("driver", emma["id"])]["total_incl_vat"] == "-2.00"  # owed to Emma
    assert by_party[("driver", emma["id"])]["direction"] == "payout"
    assert by_party[("organization", employer["id"])]["total_incl_vat"] == "2.00"
    assert by_party[("organization", employer["id"])]["line_count"] == 2  # home charging + free work charging
    assert by_party[("leasing_partner", lessor["id"])]["total_incl_vat"] == "4.84"
    employer_lines = (await api.get(f"/billing/statements/{by_party[('organization', employer['id'])]['id']}")).json()
    free = next(ln for ln in employer_lines["lines"] if ln["kind"] == "staff_free")
    assert free["amount_incl_vat"] == "0.00" and "value 4.84 EUR" in free["description"]
    rerun = (await api.post("/billing/statements/run", json=closed_day())).json()
    assert rerun["created"] == [] and len(rerun["skipped"]) == 3
    assert operator["id"]


async def test_preview_endpoint(server):
    t = await create(server, "/billing/tariffs", {"id": "TOU", "currency": "EUR", "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.40, "vat": 21, "step_size": 1}],
         "restrictions": {"start_time": "17:00", "end_time": "21:00"}},
        {"price_components": [{"type": "ENERGY", "price": 0.20, "vat": 21, "step_size": 1}]}]})
    r = await server.api.get(f"/billing/tariffs/{t['id']}/preview", params={
        "energy_kwh": 20, "duration_min": 120, "start": "2026-11-27T18:00", "timezone": "Europe/Amsterdam"})
    assert r.status_code == 200, r.text
    b = r.json()["breakdown"]
    # 18:00-20:00 local, all peak: 20 kWh x 0.40 = 8.00 excl., 9.68 incl.
    assert (b["total_cost_excl_vat"], b["total_cost_incl_vat"]) == ("8.00", "9.68")
    r = await server.api.get(f"/billing/tariffs/{t['id']}/preview", params={
        "energy_kwh": 20, "duration_min": 120, "start": "2026-11-27T20:00", "timezone": "Europe/Amsterdam"})
    assert r.json()["breakdown"]["total_cost_excl_vat"] == "6.00"  # half peak, half off-peak
    r = await server.api.get(f"/billing/tariffs/{t['id']}/preview", params={"timezone": "Mars/Base"})
    assert r.status_code == 400 and "unknown time zone" in r.json()["detail"]


class FakePaymentProvider:
    """A payment provider at the edge of the world: records what it was asked to collect."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    @hookimpl
    def billing_request_payment(self, statement, lines):
        async def collect():
            self.asked.append((statement["direction"], statement["total_incl_vat"]))
            return PaymentRequest("pending", "fakepay", f"pay-{statement['number']}")

        return collect


async def test_payment_provider_hook(server):
    provider = FakePaymentProvider()
    pm.register(provider, name="fakepay")
    try:
        driver = await create(server, "/drivers", {"name": "Paula", "kind": "customer"})
        await create(server, "/tokens", {"id_token": "PAULA", "driver": driver["id"]})
        await default_tariff(server)
        await charge(server, "CP-PAY", "PAULA")
        statement = await create(server, "/billing/statements", {
            "party_kind": "driver", "party_id": driver["id"], **closed_day()})
        for _ in range(100):
            row = (await server.api.get(f"/billing/statements/{statement['id']}")).json()
            if row["payment_status"] != "statement_only":
                break
            await asyncio.sleep(0.05)
        assert (row["payment_status"], row["payment_provider"]) == ("pending", "fakepay")
        assert row["payment_reference"] == f"pay-{statement['number']}"
        assert provider.asked == [("collect", "4.84")]
    finally:
        pm.unregister(provider)
