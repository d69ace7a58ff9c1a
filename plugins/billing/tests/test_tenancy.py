"""Billing of organizations (tenants): an organization's users manage their own tariffs,
assignments and home stations and read their own statements; another organization's are a 404;
the installation's tariffs are read and assigned by everyone and changed by global users only."""

from __future__ import annotations

import httpx

from csms.testing import admin_client
from plugins.billing.statements import last_closed_month

MARK = "BRAVOMARK"


def tariff(code: str, price: float = 0.30) -> dict:
    return {"id": code, "currency": "EUR", "elements": [{"price_components": [
        {"type": "ENERGY", "price": price, "vat": 21, "step_size": 1}]}]}


async def _tenant(srv, name: str) -> dict:
    api = srv.api
    org = (await api.post("/organizations", json={"name": f"{name} org"})).json()["id"]
    site = (await api.post("/sites", json={"name": f"{name} site", "organization": org})).json()["id"]
    made = await api.post("/stations", json={"station_id": f"{name}-ST", "site": site, "organization": org})
    assert made.status_code == 201, made.text
    employee = (await api.post("/drivers", json={"name": f"{name} employee", "kind": "employee",
                                                 "organization": org})).json()["id"]
    return {"org": org, "site": site, "station": f"{name}-ST", "employee": employee}


def _client(srv, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"{srv.base_url}/api/v1/billing", timeout=30,
                             headers={"Authorization": f"Bearer {key}"})


async def test_an_organization_manages_its_own_billing_and_reads_the_installations_tariffs(any_server):
    srv = any_server
    alpha, bravo = await _tenant(srv, "ALPHA"), await _tenant(srv, MARK)
    shared = (await srv.api.post("/billing/tariffs", json={"name": "standard", "tariff": tariff("STANDARD")})).json()
    assert shared["organization"] is None
    theirs = await srv.api.post("/billing/tariffs", json={"name": f"{MARK} tariff", "tariff": tariff(f"{MARK}-T"),
                                                          "organization": bravo["org"]})
    assert theirs.status_code == 201 and theirs.json()["organization"] == bravo["org"], theirs.text
    theirs = theirs.json()
    their_assignment = (await srv.api.post("/billing/assignments", json={
        "tariff": theirs["id"], "station_id": bravo["station"], "organization": bravo["org"]})).json()
    their_home = (await srv.api.post("/billing/home-stations", json={
        "station_id": bravo["station"], "driver_id": bravo["employee"], "rate_per_kwh": "0.25"})).json()
    month = last_closed_month()
    statements = {}
    for who in (alpha, bravo):
        made = await srv.api.post("/billing/statements", json={"party_kind": "organization", "party_id": who["org"],
                                                               "month": month})
        assert made.status_code == 201 and made.json()["organization"] == who["org"], made.text
        statements[who["org"]] = made.json()["id"]
    key = (await srv.api.post("/api-keys", json={"name": "alpha operator", "role": "operator",
                                                 "organization": alpha["org"]})).json()["key"]
    async with _client(srv, key) as a:
        # tariffs: its own lands in its organization; the installation's is readable, not writable
        mine = await a.post("/tariffs", json={"name": "alpha tariff", "tariff": tariff("ALPHA-T")})
        assert mine.status_code == 201 and mine.json()["organization"] == alpha["org"], mine.text
        mine = mine.json()
        listed = (await a.get("/tariffs")).json()
        assert sorted(t["code"] for t in listed["items"]) == ["ALPHA-T", "STANDARD"] and listed["total"] == 2
        assert (await a.get(f"/tariffs/{shared['id']}")).status_code == 200
        assert (await a.get(f"/tariffs/{shared['id']}/ocpi")).status_code == 200
        for method, url in (("GET", f"/tariffs/{theirs['id']}"), ("GET", f"/tariffs/{theirs['id']}/versions"),
                            ("GET", f"/tariffs/{theirs['id']}/preview"), ("GET", f"/tariffs/{theirs['id']}/ocpi"),
                            ("PUT", f"/tariffs/{theirs['id']}"), ("DELETE", f"/tariffs/{theirs['id']}"),
                            ("PUT", f"/tariffs/{shared['id']}"), ("DELETE", f"/tariffs/{shared['id']}"),
                            ("GET", f"/assignments/{their_assignment['id']}"),
                            ("PATCH", f"/assignments/{their_assignment['id']}"),
                            ("DELETE", f"/assignments/{their_assignment['id']}"),
                            ("GET", f"/home-stations/{their_home['id']}"),
                            ("PATCH", f"/home-stations/{their_home['id']}"),
                            ("DELETE", f"/home-stations/{their_home['id']}"),
                            ("GET", f"/statements/{statements[bravo['org']]}"),
                            ("GET", f"/statements/{statements[bravo['org']]}.csv"),
                            ("GET", f"/statements/{statements[bravo['org']]}.pdf")):
            answer = await a.request(method, url, json={"name": "x"} if method in ("PUT", "PATCH") else None)
            assert answer.status_code == 404, (method, url, answer.text)
        renamed = await a.put(f"/tariffs/{mine['id']}", json={"name": "alpha's own"})
        assert renamed.status_code == 200 and renamed.json()["name"] == "alpha's own"
        refused = await a.post("/tariffs", json={"tariff": tariff("ALPHA-X"), "organization": bravo["org"]})
        assert refused.status_code in (400, 422) and refused.json()["detail"], refused.text
        taken = await a.post("/tariffs", json={"tariff": tariff(f"{MARK}-T")})  # OCPI ids are the installation's
        assert taken.status_code == 409 and f"tariff {theirs['id']}" not in taken.json()["detail"], taken.text

        # assignments: its own or the installation's tariff, at its own stations and sites only
        at_home = await a.post("/assignments", json={"tariff": shared["id"], "station_id": alpha["station"]})
        assert at_home.status_code == 201 and at_home.json()["organization"] == alpha["org"], at_home.text
        on_site = await a.post("/assignments", json={"tariff": mine["id"], "site_id": alpha["site"],
                                                     "organization_id": alpha["org"]})
        assert on_site.status_code == 201, on_site.text
        for body in ({"tariff": theirs["id"], "station_id": alpha["station"], "driver_group": "guest"},
                     {"tariff": mine["id"], "station_id": bravo["station"]},
                     {"tariff": mine["id"], "site_id": bravo["site"]},
                     {"tariff": mine["id"], "station_id": alpha["station"], "organization_id": bravo["org"]},
                     {"tariff": mine["id"], "driver_group": "guest"},
                     {"tariff": mine["id"], "station_id": alpha["station"], "driver_group": "public",
                      "organization": bravo["org"]}):
            answer = await a.post("/assignments", json=body)
            assert answer.status_code in (400, 422) and answer.json()["detail"], (body, answer.text)
        assert MARK not in answer.text
        assert [x["id"] for x in (await a.get("/assignments")).json()["items"]] == [at_home.json()["id"],
                                                                                    on_site.json()["id"]]
        moved = await a.patch(f"/assignments/{at_home.json()['id']}", json={"station_id": bravo["station"]})
        assert moved.status_code == 400, moved.text
        resolved = await a.get("/assignments/resolve", params={"station_id": bravo["station"]})
        assert resolved.status_code == 404
        resolved = await a.get("/assignments/resolve", params={"station_id": alpha["station"]})
        assert resolved.status_code == 200 and resolved.json()["tariff"]["code"] == "STANDARD", resolved.text

        # home stations: of its own employees at its own stations
        home = await a.post("/home-stations", json={"station_id": alpha["station"], "driver_id": alpha["employee"],
                                                    "rate_per_kwh": "0.20", "tariff": None})
        assert home.status_code == 201, home.text
        for body in ({"station_id": alpha["station"], "driver_id": bravo["employee"], "rate_per_kwh": "0.2"},
                     {"station_id": bravo["station"], "driver_id": alpha["employee"], "rate_per_kwh": "0.2"},
                     {"station_id": alpha["station"], "driver_id": alpha["employee"], "mode": "tariff",
                      "tariff": theirs["id"]}):
            answer = await a.post("/home-stations", json=body)
            assert answer.status_code == 400 and answer.json()["detail"], (body, answer.text)
        assert [h["id"] for h in (await a.get("/home-stations")).json()["items"]] == [home.json()["id"]]

        # statements: its own are readable, issuing and voiding stay the installation's
        own = statements[alpha["org"]]
        listed = (await a.get("/statements")).json()
        assert [s["id"] for s in listed["items"]] == [own] and listed["total"] == 1
        assert (await a.get(f"/statements/{own}.csv")).status_code == 200
        for url in (f"/statements/{own}/void", "/statements", "/statements/run", "/settlements/run"):
            assert (await a.post(url, json={"month": month})).status_code == 404, url

    # the installation sees everything, and the tariff changes are in the audit log
    assert len((await srv.api.get("/billing/tariffs")).json()["items"]) == 3
    assert len((await srv.api.get("/billing/assignments")).json()["items"]) == 3
    assert len((await srv.api.get("/billing/statements")).json()["items"]) == 2
    entries = (await srv.api.get("/audit", params={"object_type": "tariff"})).json()["items"]
    assert {(e["action"], e["object_id"], e["organization"]) for e in entries} >= {
        ("create", str(mine["id"]), alpha["org"]), ("update", str(mine["id"]), alpha["org"]),
        ("create", str(theirs["id"]), bravo["org"])}
    assert (await srv.api.get("/audit", params={"object_type": "assignment"})).json()["total"] == 3
    assert (await srv.api.get("/audit", params={"object_type": "home_station"})).json()["total"] == 2


async def test_an_organizations_billing_pages(server):
    srv = server
    alpha, bravo = await _tenant(srv, "ALPHA"), await _tenant(srv, MARK)
    shared = (await srv.api.post("/billing/tariffs", json={"tariff": tariff("STANDARD")})).json()
    theirs = (await srv.api.post("/billing/tariffs", json={"name": f"{MARK} tariff", "tariff": tariff(f"{MARK}-T"),
                                                           "organization": bravo["org"]})).json()
    statement = (await srv.api.post("/billing/statements", json={
        "party_kind": "organization", "party_id": bravo["org"], "month": last_closed_month()})).json()
    operator = await admin_client(srv, "operator", organization=alpha["org"], csrf_header=True)
    try:
        made = await operator.post("/admin/billing/tariffs/new", data={
            "editor": "json", "name": "alpha tariff", "ocpi": '{"id": "ALPHA-T", "currency": "EUR", "elements": '
                                                             '[{"price_components": [{"type": "ENERGY", "price": 0.3, '
                                                             '"vat": 21, "step_size": 1}]}]}'})
        assert made.status_code == 303, made.text
        mine = int(made.headers["location"].rsplit("/", 1)[1])
        assert (await srv.api.get(f"/billing/tariffs/{mine}")).json()["organization"] == alpha["org"]
        for url in ("/admin/billing", "/admin/billing/statements", "/admin/billing/home-stations",
                    "/admin/billing/settlements", f"/admin/billing/tariffs/{shared['id']}"):
            page = await operator.get(url)
            assert page.status_code == 200 and MARK not in page.text.upper(), url
        index = (await operator.get("/admin/billing")).text
        assert "ALPHA-T" in index and "STANDARD" in index and "installation-wide" in index
        assert f'/admin/billing/tariffs/{shared["id"]}/edit' not in (
            await operator.get(f"/admin/billing/tariffs/{shared['id']}")).text
        assert f"/admin/billing/tariffs/{mine}/edit" in (await operator.get(f"/admin/billing/tariffs/{mine}")).text
        for method, url in (("GET", f"/admin/billing/tariffs/{theirs['id']}"),
                            ("GET", f"/admin/billing/tariffs/{theirs['id']}/preview"),
                            ("GET", f"/admin/billing/tariffs/{shared['id']}/edit"),
                            ("POST", f"/admin/billing/tariffs/{shared['id']}/archive"),
                            ("GET", f"/admin/billing/statements/{statement['id']}"),
                            ("POST", "/admin/billing/settlements/run")):
            answer = await operator.request(method, url)
            assert answer.status_code == 404 and "text/html" in answer.headers["content-type"], (method, url)
        assigned = await operator.post("/admin/billing/assignments", data={
            "tariff": str(shared["id"]), "station_id": alpha["station"]})
        assert assigned.status_code == 303, assigned.text
        refused = await operator.post("/admin/billing/assignments", data={
            "tariff": str(mine), "station_id": bravo["station"]})
        assert refused.status_code == 400 and "No station" in refused.text, refused.text[-3000:]
    finally:
        await operator.aclose()


async def test_the_migration_gives_existing_statements_their_partys_organization(any_server):
    import importlib

    from plugins.billing.tables import Statement

    srv = any_server
    alpha = await _tenant(srv, "ALPHA")
    month = last_closed_month()
    of_org = (await srv.api.post("/billing/statements", json={"party_kind": "organization", "party_id": alpha["org"],
                                                              "month": month})).json()
    of_driver = (await srv.api.post("/billing/statements", json={"party_kind": "driver",
                                                                 "party_id": alpha["employee"], "month": month})).json()
    assert of_org["organization"] == of_driver["organization"] == alpha["org"]
    await Statement.update({Statement.organization: None}, force=True)  # as before the migration
    migration = importlib.import_module("plugins.billing.piccolo_migrations.billing_2026_12_06t02_20_01_000000")
    await migration.fill_statement_owners()
    rows = await Statement.select(Statement.id, Statement.organization).order_by(Statement.id)
    assert [(r["id"], r["organization"]) for r in rows] == [(of_org["id"], alpha["org"]),
                                                            (of_driver["id"], alpha["org"])]
