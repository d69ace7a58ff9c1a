"""Organizations as tenants, probed from outside on SQLite and PostgreSQL.

Two organizations, ALPHA (with a child organization) and BRAVO, each with a station, site, hub,
card, driver, session and API key. The walk is generated, not a hand list: every operation of
the OpenAPI document and every route of the app's route table, with its tenant rule read from
the route. As ALPHA's viewer, operator and admin (API keys for ``/api/``, admin logins for the
pages), every route naming one of BRAVO's objects answers 404 exactly as for an object that does
not exist, every installation-wide route answers 404, and no list, page or CSV shows BRAVO's
objects. The same walk as a global admin finds BRAVO's objects (so the probe is not vacuous).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from csms.api.auth import create_api_key
from csms.api.tenancy import GLOBAL_ONLY, KINDS, PUBLIC, SCOPED, rule_of
from csms.core.tables import ChargingSession, IdToken, Organization, Station
from csms.testing import admin_client, running_server
from csms.testing.stations import station

MARK = "BRAVOMARK"  # in every name of BRAVO's objects: never in anything ALPHA reads
ROLES = ("viewer", "operator", "admin")

# Values for path parameters that name no object (any value reaches the guard).
PLAIN_VALUES = {"action": "trigger", "file_path": "app.css", "command": "START_SESSION"}


@dataclass
class Tenant:
    org: int
    station: str
    site: int
    hub: int
    token: str
    token_pk: int
    driver: int
    session: int
    api_key: int
    user: int = 0
    reservation: int = 0
    child: int | None = None
    keys: dict[str, str] = field(default_factory=dict)
    plugin_objects: dict[str, Any] = field(default_factory=dict)  # kinds the shipped plugins declare

    def value(self, kind: str) -> Any:
        core = {"organization": self.org, "station": self.station, "site": self.site, "hub": self.hub,
                "token": self.token, "token_pk": self.token_pk, "driver": self.driver, "session": self.session,
                "api_key": self.api_key, "user": self.user, "reservation": self.reservation}
        return core[kind] if kind in core else self.plugin_objects[kind]


async def make_plugin_objects(srv: Any, name: str, org: int) -> dict[str, Any]:
    """One object of each kind the shipped plugins declare, in ``org``."""
    api = srv.api
    sub = await api.post("/notifications/subscriptions", json={
        "channel": "webhook", "target": f"https://{name.lower()}.example.org/hook", "name": f"{name} hook",
        "organization": org})
    assert sub.status_code == 201, sub.text
    delivery = await api.post(f"/notifications/subscriptions/{sub.json()['id']}/test")
    assert delivery.status_code == 202, delivery.text
    objects = {"subscription": sub.json()["id"], "delivery": delivery.json()["delivery_id"]}

    from datetime import timedelta

    from csms.plugin_api import utcnow
    from plugins.stationops.storage import diagnostics_dir
    from plugins.stationops.tables import Alert, DiagnosticsFile, DiagnosticsRequest

    # the firmware catalogue is the installation's, shared by every organization (no MARK in it)
    firmware = await api.post("/firmware", json={"version": f"2.0.{org}", "url": "https://example.org/fw.bin"})
    assert firmware.status_code == 201, firmware.text
    campaign = await api.post("/campaigns", json={"name": f"{name} roll-out", "firmware_id": firmware.json()["id"],
                                                  "organization": org})
    assert campaign.status_code == 201 and campaign.json()["total"] == 1, campaign.text
    objects["campaign"] = campaign.json()["id"]
    station_id = f"{name}-ST"
    request = DiagnosticsRequest(station_id=station_id, token=f"{name}-token", status="received",
                                 detail=f"{name} diagnostics", expires_at=utcnow() + timedelta(hours=1))
    await request.save()
    folder = diagnostics_dir(station_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.log").write_text(f"{name} log")
    file = DiagnosticsFile(request=request.id, station_id=station_id, file_name=f"{name}.log",
                           stored_name=f"{name}.log", size=len(name) + 4)
    await file.save()
    alert = Alert(kind="station_offline", key=f"{name}-offline", station_id=station_id,
                  summary=f"{name} station offline")
    await alert.save()
    objects.update(diagnostics_request=request.id, diagnostics_file=file.id, alert=alert.id)

    from plugins.billing.statements import last_closed_month

    tariff = await api.post("/billing/tariffs", json={"name": f"{name} tariff", "organization": org, "tariff": {
        "id": f"{name}-T", "currency": "EUR", "elements": [{"price_components": [
            {"type": "ENERGY", "price": 0.30, "vat": 21, "step_size": 1}]}]}})
    assert tariff.status_code == 201 and tariff.json()["organization"] == org, tariff.text
    assignment = await api.post("/billing/assignments", json={
        "tariff": tariff.json()["id"], "station_id": station_id, "note": f"{name} assignment", "organization": org})
    assert assignment.status_code == 201, assignment.text
    employee = await api.post("/drivers", json={"name": f"{name} employee", "kind": "employee", "organization": org})
    home = await api.post("/billing/home-stations", json={"station_id": station_id, "driver_id": employee.json()["id"],
                                                          "rate_per_kwh": "0.25"})
    assert home.status_code == 201, home.text
    statement = await api.post("/billing/statements", json={"party_kind": "organization", "party_id": org,
                                                            "month": last_closed_month()})
    assert statement.status_code == 201 and statement.json()["organization"] == org, statement.text
    objects.update(tariff=tariff.json()["id"], assignment=assignment.json()["id"], home_station=home.json()["id"],
                   statement=statement.json()["id"])

    from plugins.roaming_ocpi.tables import CommandRecord, Outbox

    partner = await api.post("/roaming/partners", json={"name": f"{name} partner", "organization": org})
    assert partner.status_code == 201 and partner.json()["organization"] == org, partner.text
    partner_id = partner.json()["id"]
    push = Outbox(partner=partner_id, method="PUT", module="locations", path=f"/NL/CSM/{name}",
                  object_key=f"location:{name}", status="failed", last_error=f"{name} push refused")
    await push.save()
    command = CommandRecord(direction="out", partner=partner_id, command="STOP_SESSION", uid=f"{name}-command",
                            request={"session_id": f"{name}-session"}, status="done")
    await command.save()
    objects.update(roaming_partner=partner_id, roaming_push=push.id, roaming_command=command.id)
    return objects


async def make_tenant(srv: Any, name: str, *, parent: int | None = None) -> Tenant:
    api = srv.api
    org = (await api.post("/organizations", json={"name": f"{name} org", "parent": parent})).json()["id"]
    site = (await api.post("/sites", json={"name": f"{name} site", "organization": org})).json()["id"]
    hub = (await api.post("/hubs", json={"name": f"{name} hub", "site": site})).json()["id"]
    driver = (await api.post("/drivers", json={"name": f"{name} driver", "organization": org})).json()["id"]
    station_id = f"{name}-ST"
    assert (await api.post("/stations", json={"station_id": station_id, "site": site, "hub": hub,
                                              "organization": org})).status_code == 201
    token = f"{name}TAG"[:20]
    created = await api.post("/tokens", json={"id_token": token, "driver": driver, "organization": org})
    assert created.status_code == 201, created.text
    async with station(srv, station_id, "1.6") as cp:
        tx = await cp.start_session(token)
        await cp.stop_session(tx)
        reserved = await api.post("/reservations", json={"station_id": station_id, "id_token": token,
                                                         "expires_in_minutes": 60})
        assert reserved.status_code == 201, reserved.text
    await srv.core.writer.flush()
    session = (await ChargingSession.select(ChargingSession.id).where(
        ChargingSession.transaction_id == str(tx)).first())["id"]
    token_pk = (await IdToken.select(IdToken.id).where(IdToken.id_token == token).first())["id"]
    _, key_id = await create_api_key(f"{name} spare key", "viewer", org)
    tenant = Tenant(org, station_id, site, hub, token, token_pk, driver, session, key_id)
    from piccolo.apps.user.tables import BaseUser

    from csms.roles import set_role

    person = await BaseUser.create_user(username=f"{name.lower()}-person", password="a-long-password-1",
                                        email=f"{name.lower()}@example.org", active=True)
    await set_role(person.id, "viewer", org)
    tenant.user = person.id
    tenant.reservation = reserved.json()["reservation_id"]
    tenant.plugin_objects = await make_plugin_objects(srv, name, org)
    for role in ROLES:
        key, _ = await create_api_key(f"{name} {role}", role, org)
        tenant.keys[role] = key
    return tenant


@dataclass(frozen=True)
class RouteCase:
    method: str
    path: str  # Litestar's template: /api/v1/stations/{station_id:str}
    rule: Any
    stream: bool
    module: str
    declared: bool

    def params(self) -> list[tuple[str, str]]:
        return re.findall(r"\{(\w+):(\w+)\}", self.path)

    def url(self, tenant: Tenant) -> str:
        out = self.path
        for name, type_ in self.params():
            kind = self.rule.get(name) if isinstance(self.rule, dict) else None
            if kind is not None:
                value = tenant.value(kind)
            else:
                value = PLAIN_VALUES.get(name, 1 if type_ == "int" else "x")
            out = out.replace(f"{{{name}:{type_}}}", str(value))
        return out

    def names_an_object(self) -> bool:
        return isinstance(self.rule, dict) and any(name in self.rule for name, _ in self.params())


def route_cases(app: Any) -> list[RouteCase]:
    cases = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", None) or [getattr(route, "route_handler", None)]:
            if handler is None:
                continue
            methods = sorted(set(getattr(handler, "http_methods", None) or {"GET"}) - {"OPTIONS", "HEAD"})
            for method in methods:
                stream = route.path.endswith("/stream")
                declared = "tenant" in handler.opt or rule_of(handler) == PUBLIC
                cases.append(RouteCase(method, route.path, rule_of(handler), stream, handler.fn.__module__, declared))
    return cases


def openapi_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item
            if method in ("get", "post", "put", "patch", "delete")}


def plain(path: str) -> str:
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


async def send(client: httpx.AsyncClient, method: str, url: str) -> httpx.Response:
    body = None if method in ("GET", "DELETE") else {}
    if method == "DELETE" or body is None:
        return await client.request(method, url)
    return await client.request(method, url, json=body)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_no_route_reads_or_writes_across_tenants(tmp_path, backend):
    async with running_server(tmp_path, backend=backend, unknown_stations="accept") as srv:
        alpha = await make_tenant(srv, "ALPHA")
        alpha.child = (await srv.api.post("/organizations", json={"name": "ALPHA child", "parent": alpha.org})).json()["id"]
        bravo = await make_tenant(srv, MARK)

        cases = route_cases(srv.app)
        # Every route of the app states a tenant rule (a route a plugin registers without one is
        # installation-wide by default, which is a rule too); core routes must state theirs.
        for case in cases:
            assert case.rule in (PUBLIC, GLOBAL_ONLY, SCOPED) or isinstance(case.rule, dict), case
            if isinstance(case.rule, dict):
                assert all(kind in KINDS for kind in case.rule.values()), case
        undeclared = [(c.method, c.path) for c in cases if not c.declared and not c.module.startswith("plugins.")
                      and not c.module.startswith("csms_fleet_limits")]
        assert not undeclared, f"routes of the core without a tenant rule (opt={{'tenant': ...}}): {undeclared}"
        # The OpenAPI document and the route table agree: the walk covers every documented operation.
        doc = (await srv.api.get("/schema/openapi.json")).json()
        table = {(c.method, plain(c.path)) for c in cases}
        missing = openapi_operations(doc) - table
        assert not missing, f"operations of the OpenAPI document missing from the route table: {missing}"

        api = {role: httpx.AsyncClient(base_url=srv.base_url, timeout=30,
                                       headers={"Authorization": f"Bearer {key}"})
               for role, key in alpha.keys.items()}
        pages = {role: await admin_client(srv, role, organization=alpha.org, csrf_header=True) for role in ROLES}
        global_api = httpx.AsyncClient(base_url=srv.base_url, timeout=30,
                                       headers={"Authorization": f"Bearer {srv.api_key}"})
        global_pages = await admin_client(srv, "admin", csrf_header=True)
        checked = {"object": 0, "global": 0, "list": 0}
        try:
            for case in cases:
                if case.rule == PUBLIC or case.stream:
                    continue
                is_api = case.path.startswith("/api/")
                for role in ROLES:
                    client = api[role] if is_api else pages[role]
                    if case.names_an_object():
                        answer = await send(client, case.method, case.url(bravo))
                        assert answer.status_code == 404, (role, case, answer.status_code, answer.text[:300])
                        checked["object"] += 1
                    elif case.rule == GLOBAL_ONLY:
                        answer = await send(client, case.method, case.url(bravo))
                        assert answer.status_code == 404, (role, case, answer.status_code, answer.text[:300])
                        checked["global"] += 1
                    elif case.method == "GET":
                        answer = await client.get(case.url(alpha))
                        assert answer.status_code < 500, (role, case, answer.status_code, answer.text[:300])
                        at = answer.text.upper().find(MARK)
                        assert at < 0, (role, case, answer.text[max(0, at - 300):at + 100])
                        checked["list"] += 1
                if case.names_an_object() and case.method == "GET":
                    # the same request as a global admin finds BRAVO's object: the probe is real
                    answer = await (global_api if is_api else global_pages).get(case.url(bravo))
                    assert answer.status_code != 404, (case, answer.text[:300])
                    # and ALPHA's own object is found by ALPHA's viewer
                    mine = await (api if is_api else pages)["viewer"].get(case.url(alpha))
                    assert mine.status_code != 404, (case, mine.text[:300])
            assert checked["object"] > 150 and checked["global"] > 100 and checked["list"] > 40, checked

            # Nothing of BRAVO's changed through all the writes above.
            assert await Station.exists().where(Station.station_id == bravo.station)
            assert await IdToken.exists().where((IdToken.id_token == bravo.token) & (IdToken.status == "Accepted"))
            assert await Organization.exists().where(Organization.id == bravo.org)
            assert (await global_api.get(f"/api/v1/sites/{bravo.site}")).json()["name"] == f"{MARK} site"
        finally:
            for client in [*api.values(), *pages.values(), global_api, global_pages]:
                await client.aclose()


async def test_writes_into_another_tenant_are_refused_with_a_reason(any_server):
    srv = any_server
    alpha = await make_tenant(srv, "ALPHA")
    bravo = await make_tenant(srv, MARK)
    child = (await srv.api.post("/organizations", json={"name": "ALPHA child", "parent": alpha.org})).json()["id"]
    async with httpx.AsyncClient(base_url=f"{srv.base_url}/api/v1", timeout=30,
                                 headers={"Authorization": f"Bearer {alpha.keys['admin']}"}) as a:
        refused = {
            "station in BRAVO": await a.post("/stations", json={"station_id": "NEW-1", "organization": bravo.org}),
            "station on BRAVO's site": await a.post("/stations", json={"station_id": "NEW-2", "site": bravo.site}),
            "card in BRAVO": await a.post("/tokens", json={"id_token": "NEWTAG1", "organization": bravo.org}),
            "card of BRAVO's driver": await a.post("/tokens", json={"id_token": "NEWTAG2", "driver": bravo.driver}),
            "site in BRAVO": await a.post("/sites", json={"name": "x", "organization": bravo.org}),
            "hub on BRAVO's site": await a.post("/hubs", json={"name": "x", "site": bravo.site}),
            "hub without a site": await a.post("/hubs", json={"name": "x"}),
            "driver in BRAVO": await a.post("/drivers", json={"name": "x", "organization": bravo.org}),
            "organization under BRAVO": await a.post("/organizations", json={"name": "x", "parent": bravo.org}),
            "organization of nobody": await a.post("/organizations", json={"name": "y", "parent": None}),
            "own station moved to BRAVO": await a.patch(f"/stations/{alpha.station}", json={"organization": bravo.org}),
            "own station onto BRAVO's hub": await a.patch(f"/stations/{alpha.station}", json={"hub": bravo.hub}),
            "own card given to BRAVO": await a.patch(f"/tokens/{alpha.token}", json={"organization": bravo.org}),
            "own site given to BRAVO": await a.patch(f"/sites/{alpha.site}", json={"organization": bravo.org}),
            "own organization moved": await a.patch(f"/organizations/{alpha.org}", json={"parent": child}),
            "child under itself": await a.patch(f"/organizations/{child}", json={"parent": child}),
            "key in BRAVO": await a.post("/api-keys", json={"name": "k", "role": "viewer", "organization": bravo.org}),
            "unknown organization": await a.post("/drivers", json={"name": "x", "organization": 999999}),
        }
        for what, answer in refused.items():
            assert answer.status_code in (400, 422), (what, answer.status_code, answer.text)
            assert answer.json().get("detail"), what
        assert not await Station.exists().where(Station.station_id.is_in(["NEW-1", "NEW-2"]))
        assert (await Station.select(Station.organization).where(Station.station_id == alpha.station).first()
                )["organization"] == alpha.org
        # what ALPHA's admin may do: objects land in ALPHA (or its child) by default
        made = await a.post("/stations", json={"station_id": "ALPHA-2"})
        assert made.status_code == 201 and made.json()["organization"] == alpha.org
        moved = await a.patch("/stations/ALPHA-2", json={"organization": child})
        assert moved.status_code == 200 and moved.json()["organization"] == child
        key = await a.post("/api-keys", json={"name": "fleet", "role": "operator"})
        assert key.status_code == 201 and key.json()["organization"] == alpha.org
        assert [k["organization"] for k in (await a.get("/api-keys")).json()["items"]] == [alpha.org] * 5
        cycle = await srv.api.patch(f"/organizations/{alpha.org}", json={"parent": child})
        assert cycle.status_code == 400 and "cycle" in cycle.json()["detail"]
        in_use = await srv.api.delete(f"/organizations/{alpha.org}")
        assert in_use.status_code == 409
    # ALPHA's child sees its own objects only, not its parent's
    key, _ = await create_api_key("child viewer", "viewer", child)
    async with httpx.AsyncClient(base_url=f"{srv.base_url}/api/v1", timeout=30,
                                 headers={"Authorization": f"Bearer {key}"}) as c:
        assert [s["station_id"] for s in (await c.get("/stations")).json()["items"]] == ["ALPHA-2"]
        assert (await c.get(f"/stations/{alpha.station}")).status_code == 404


async def test_admin_pages_and_live_stream_keep_to_the_tenant(server):
    srv = server
    alpha = await make_tenant(srv, "ALPHA")
    bravo = await make_tenant(srv, MARK)
    viewer = await admin_client(srv, "viewer", organization=alpha.org, csrf_header=True)
    operator = await admin_client(srv, "operator", organization=alpha.org, csrf_header=True)
    try:
        # a forged form value naming BRAVO's organization is refused in words, nothing stored
        form = await operator.post("/admin/tokens/new", data={"id_token": "FORGED1", "type": "ISO14443",
                                                              "status": "Accepted", "organization": str(bravo.org)})
        assert form.status_code == 422 and "Choose one of the listed values for Organization" in form.text
        assert not await IdToken.exists().where(IdToken.id_token == "FORGED1")
        made = await operator.post("/admin/tokens/new", data={"id_token": "MINE1", "type": "ISO14443",
                                                               "status": "Accepted"})
        assert made.status_code == 303
        assert (await IdToken.select(IdToken.organization).where(IdToken.id_token == "MINE1").first()
                )["organization"] == alpha.org
        # a CSV import never overwrites another tenant's card
        imported = await operator.post("/admin/tokens/import", data={
            "text": f"id_token,label\n{bravo.token},taken\nMINE2,new\n", "update_existing": "on"})
        assert imported.status_code == 200 and "already exists" in imported.text
        assert (await IdToken.select(IdToken.label).where(IdToken.id_token == bravo.token).first())["label"] == ""
        # the navigation leaves out installation-wide pages
        home = await viewer.get("/")
        assert 'href="/admin/plugins"' not in home.text and MARK not in home.text.upper()
        # the live stream tells of ALPHA's stations only
        seen: list[str] = []

        async def listen() -> None:
            async with viewer.stream("GET", "/admin/stream") as stream:
                async for line in stream.aiter_lines():
                    seen.append(line)
                    if alpha.station in line:
                        return

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.5)
        async with station(srv, bravo.station, "1.6"):
            await asyncio.sleep(1.2)
            async with station(srv, alpha.station, "1.6"):
                await asyncio.wait_for(listener, 15)
        assert not any(bravo.station in line for line in seen), seen
    finally:
        await viewer.aclose()
        await operator.aclose()


async def test_self_registered_stations_land_in_the_default_organization(tmp_path):
    async with running_server(tmp_path, unknown_stations="accept", default_organization="Walk-ins") as srv:
        async with station(srv, "WALKIN-1", "1.6"):
            pass
        row = await Station.select(Station.organization.name.as_alias("org")).where(
            Station.station_id == "WALKIN-1").first()
        assert row["org"] == "Walk-ins"
