"""Plans per organization: limits through REST, the admin, the CLI's services and stations that
register themselves; downgrades refused; features gated in publishing, the driver portal, API
keys and a plugin; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from csms.core import driver_accounts
from csms.core.services import plans
from csms.core.tables import ApiKey, AuditEntry, Organization, Plan, Site, Station, StationEvent, UserRole
from csms.core.timeutil import utcnow
from csms.core.users import create_user
from csms.testing import admin_client, running_server
from tests.driver.conftest import csrf_of

HOME_FULL = "Plan HOME allows 2 stations: organization Home would have 3"


async def plan_ids(api: httpx.AsyncClient) -> dict[str, int]:
    answer = await api.get("/plans")
    assert answer.status_code == 200, answer.text
    return {p["name"]: p["id"] for p in answer.json()["items"]}


async def organization(api: httpx.AsyncClient, name: str, plan: int | None, parent: int | None = None) -> int:
    created = await api.post("/organizations", json={"name": name, "plan": plan, "parent": parent})
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def test_shipped_plans_and_their_features(any_server):
    listed = (await any_server.api.get("/plans")).json()
    by_name = {p["name"]: p for p in listed["items"]}
    assert set(by_name) == {"HOME", "BUSINESS", "PUBLIC"}
    assert by_name["HOME"]["max_stations"] == 2 and by_name["HOME"]["max_api_keys"] == 0
    assert "roaming" not in by_name["HOME"]["features"] and "public_publishing" not in by_name["HOME"]["features"]
    assert by_name["PUBLIC"]["max_stations"] is None
    # the core's features and those the shipped plugins declare
    assert {"public_publishing", "driver_portal", "api_access", "roaming", "billing", "load_balancing",
            "peak_shaving"} <= set(listed["features"])


async def test_rest_limits_name_the_plan_and_let_no_extra_in(any_server):
    api = any_server.api
    ids = await plan_ids(api)
    home = await organization(api, "Home", ids["HOME"])
    for n in range(2):
        assert (await api.post("/stations", json={"station_id": f"HOME-{n}", "organization": home})).status_code == 201
    refused = await api.post("/stations", json={"station_id": "HOME-2", "organization": home})
    assert refused.status_code == 409
    assert refused.json()["detail"] == HOME_FULL
    assert refused.json()["extra"] == {"error": "PlanLimitReached", "plan": "HOME", "limit": "stations",
                                       "allowed": 2, "count": 3}
    assert not await Station.exists().where(Station.station_id == "HOME-2")

    # a sub-organization without a plan of its own shares its parent's plan and its count
    flat = await organization(api, "Flat", None, parent=home)
    under = await api.post("/stations", json={"station_id": "FLAT-1", "organization": flat})
    assert under.status_code == 409 and "Plan HOME allows 2 stations" in under.json()["detail"]
    # moving a station into the full organization is refused too
    assert (await api.post("/stations", json={"station_id": "LOOSE"})).status_code == 201
    moved = await api.patch("/stations/LOOSE", json={"organization": home})
    assert moved.status_code == 409 and "Plan HOME allows 2 stations" in moved.json()["detail"]
    assert (await Station.select(Station.organization).where(Station.station_id == "LOOSE").first()) == {
        "organization": None}

    site = (await api.post("/sites", json={"name": "Garage", "organization": home})).json()["id"]
    assert (await api.post("/hubs", json={"name": "Box", "site": site})).status_code == 201
    hub = await api.post("/hubs", json={"name": "Box 2", "site": site})
    assert hub.status_code == 409 and hub.json()["detail"] == "Plan HOME allows 1 hub: organization Home would have 2"

    key = await api.post("/api-keys", json={"name": "home key", "role": "viewer", "organization": home})
    assert key.status_code == 409 and key.json()["extra"]["limit"] == "api_keys"
    assert not await ApiKey.exists().where(ApiKey.name == "home key")

    for n in range(3):
        await create_user(f"home-user-{n}", f"u{n}@home.example", "viewer", home)
    with pytest.raises(plans.PlanLimitReached, match="Plan HOME allows 3 users"):
        await create_user("home-user-3", "u3@home.example", "viewer", flat)
    assert await UserRole.count().where(UserRole.organization.is_in([home, flat])) == 3

    # an organization of its own plan counts apart from its parent's
    ids = await plan_ids(api)
    assert (await api.patch(f"/organizations/{flat}", json={"plan": ids["BUSINESS"]})).status_code == 200
    assert (await api.post("/stations", json={"station_id": "FLAT-1", "organization": flat})).status_code == 201


async def test_parallel_requests_never_make_one_too_many(any_server):
    api = any_server.api
    home = await organization(api, "Home", (await plan_ids(api))["HOME"])
    answers = await asyncio.gather(*[api.post("/stations", json={"station_id": f"P-{n}", "organization": home})
                                     for n in range(6)])
    assert sorted(a.status_code for a in answers) == [201, 201, 409, 409, 409, 409], [a.text for a in answers]
    assert await Station.count().where(Station.organization == home) == 2


async def test_downgrades_and_plan_edits_over_the_usage_are_refused(any_server):
    api = any_server.api
    ids = await plan_ids(api)
    acme = await organization(api, "Acme", ids["BUSINESS"])
    for n in range(3):
        assert (await api.post("/stations", json={"station_id": f"ACME-{n}", "organization": acme})).status_code == 201

    down = await api.patch(f"/organizations/{acme}", json={"plan": ids["HOME"]})
    assert down.status_code == 409
    assert down.json()["detail"] == "Plan HOME allows 2 stations: organization Acme would have 3"
    assert (await Organization.select(Organization.plan).where(Organization.id == acme).first())["plan"] == \
        ids["BUSINESS"]

    # moving it under an organization with a smaller plan is the same downgrade
    home = await organization(api, "Home", ids["HOME"])
    unplanned = await organization(api, "Unplanned", None)
    await api.post("/stations", json={"station_id": "U-1", "organization": unplanned})
    await api.post("/stations", json={"station_id": "U-2", "organization": unplanned})
    await api.post("/stations", json={"station_id": "H-1", "organization": home})
    moved = await api.patch(f"/organizations/{unplanned}", json={"parent": home})
    assert moved.status_code == 409 and "Plan HOME allows 2 stations: organization Home would have 3" in \
        moved.json()["detail"]

    lowered = await api.patch(f"/plans/{ids['BUSINESS']}", json={"max_stations": 2})
    assert lowered.status_code == 409 and "Plan BUSINESS allows 2 stations" in lowered.json()["detail"]
    assert (await Plan.select(Plan.max_stations).where(Plan.id == ids["BUSINESS"]).first())["max_stations"] == 50
    bad = await api.patch(f"/plans/{ids['BUSINESS']}", json={"features": ["teleportation"]})
    assert bad.status_code == 400 and "unknown features: teleportation" in bad.json()["detail"]
    assert (await api.patch(f"/plans/{ids['BUSINESS']}", json={"max_stations": -1})).status_code == 400
    ok = await api.patch(f"/plans/{ids['BUSINESS']}", json={"max_stations": 3, "features": ["driver_portal"]})
    assert ok.status_code == 200 and ok.json()["features"] == ["driver_portal"]
    assert await AuditEntry.exists().where((AuditEntry.object_type == "plan") & (AuditEntry.action == "update"))


async def test_only_global_admins_choose_plans(any_server):
    api = any_server.api
    ids = await plan_ids(api)
    acme = await organization(api, "Acme", ids["PUBLIC"])
    from csms.api.auth import create_api_key

    key, _ = await create_api_key("acme admin", "admin", acme)
    async with httpx.AsyncClient(base_url=f"{any_server.base_url}/api/v1",
                                 headers={"Authorization": f"Bearer {key}"}) as acme_api:
        assert (await acme_api.get("/plans")).status_code == 200
        upgrade = await acme_api.patch(f"/organizations/{acme}", json={"plan": ids["HOME"]})
        assert upgrade.status_code == 403
        sub = await acme_api.post("/organizations", json={"name": "Acme sub", "plan": ids["PUBLIC"]})
        assert sub.status_code == 403
        assert (await acme_api.patch(f"/plans/{ids['HOME']}", json={"max_stations": 99})).status_code == 404


async def test_api_keys_of_an_organization_without_api_access_are_refused(any_server):
    api = any_server.api
    ids = await plan_ids(api)
    acme = await organization(api, "Acme", ids["BUSINESS"])
    key = (await api.post("/api-keys", json={"name": "acme", "role": "viewer", "organization": acme})).json()["key"]
    async with httpx.AsyncClient(base_url=f"{any_server.base_url}/api/v1",
                                 headers={"Authorization": f"Bearer {key}"}) as acme_api:
        assert (await acme_api.get("/stations")).status_code == 200
        assert (await api.patch(f"/plans/{ids['BUSINESS']}", json={"features": ["driver_portal"]})).status_code == 200
        refused = await acme_api.get("/stations")
        assert refused.status_code == 403
        assert "plan BUSINESS of organization Acme does not include API access" in refused.json()["detail"]


async def test_publishing_needs_the_feature(any_server):
    api = any_server.api
    ids = await plan_ids(api)
    for name, plan in (("Public Co", ids["PUBLIC"]), ("Home", ids["HOME"])):
        org = await organization(api, name, plan)
        site = Site(name=f"{name} site", organization=org, address="Main street 1", city="Berlin", country="DEU",
                    latitude=52.5, longitude=13.4, publish=True)
        await site.save()
        await Station(station_id=f"{name}-CP", organization=org, site=site.id).save()
    async with httpx.AsyncClient(base_url=any_server.base_url) as anonymous:
        feed = (await anonymous.get("/map/stations.geojson")).json()
        assert [f["properties"]["name"] for f in feed["features"]] == ["Public Co site"]
        locations = (await anonymous.get("/public/locations")).json()["data"]
        assert [loc["name"] for loc in locations] == ["Public Co site"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_unknown_station_is_refused_when_the_default_organization_is_full(tmp_path, backend):
    async with running_server(tmp_path, backend=backend, unknown_stations="accept", default_organization="Home") as srv:
        ids = await plan_ids(srv.api)
        home = await organization(srv.api, "Home", ids["HOME"])
        for n in range(2):
            await srv.api.post("/stations", json={"station_id": f"KNOWN-{n}", "organization": home})
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(srv.ws_url("NEWCOMER"), subprotocols=["ocpp1.6"]):
                pass
        assert refused.value.response.status_code == 403
        assert not await Station.exists().where(Station.station_id == "NEWCOMER")
        entry = await AuditEntry.select().where((AuditEntry.object_id == "NEWCOMER")
                                                & (AuditEntry.action == "refuse")).first()
        assert entry is not None and HOME_FULL in entry["summary"] and entry["organization"] == home
        for _ in range(50):  # the station event log is written in batches
            if await StationEvent.exists().where((StationEvent.station_id == "NEWCOMER")
                                                 & (StationEvent.kind == "refused")):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("no refusal in the station's event log")

        # with room again, the station registers as before
        await srv.api.patch(f"/plans/{ids['HOME']}", json={"max_stations": 3})
        async with websockets.connect(srv.ws_url("NEWCOMER"), subprotocols=["ocpp1.6"]):
            pass
        assert (await Station.select(Station.organization).where(Station.station_id == "NEWCOMER").first()) == {
            "organization": home}


async def test_driver_portal_needs_the_feature(any_server):
    api = any_server.api
    ids = await plan_ids(api)
    acme = await organization(api, "Acme", ids["BUSINESS"])
    driver = (await api.post("/drivers", json={"name": "Di", "email": "di@example.org",
                                               "organization": acme})).json()["id"]
    assert (await api.patch(f"/plans/{ids['BUSINESS']}", json={"features": ["api_access"]})).status_code == 200
    async with httpx.AsyncClient(base_url=any_server.base_url) as client:
        link = f"/driver/link/{await driver_accounts.new_link(driver)}"
        page = await client.get(link)
        signed = await client.post(link, data={"_csrf_token": csrf_of(page.text)})
        assert signed.status_code == 403
        assert "The driver portal is not offered to the drivers of your organization" in signed.text
        assert "csms_driver" not in client.cookies
    # a session from before the plan changed no longer opens the portal
    from csms.testing import driver_client

    client = await driver_client(any_server, driver)
    try:
        assert (await client.get("/driver/cards")).status_code in (302, 303)
        assert (await api.patch(f"/plans/{ids['BUSINESS']}", json={"features": ["driver_portal"]})).status_code == 200
        assert (await client.get("/driver/cards")).status_code == 200
    finally:
        await client.aclose()


async def test_admin_forms_show_the_limits_and_refuse_downgrades(any_server):
    api = any_server.api
    ids = await plan_ids(api)
    home = await organization(api, "Home", ids["HOME"])
    client = await admin_client(any_server, "admin", csrf_header=True)
    try:
        page = await client.get(f"/admin/organizations/{home}/edit")
        assert page.status_code == 200 and 'id="plan-usage"' in page.text and "0 / 2" in page.text
        for n in range(2):
            await api.post("/stations", json={"station_id": f"HOME-{n}", "organization": home})
        page = await client.get(f"/admin/organizations/{home}/edit")
        assert "2 / 2" in page.text and "at-limit" in page.text

        for n in range(2):
            await create_user(f"home-{n}", f"home-{n}@example.org", "viewer", home)
        operator = await admin_client(any_server, "operator", organization=home, csrf_header=True)  # the third
        invited = await client.post("/admin/users/new", data={"username": "fourth", "email": "fourth@example.org",
                                                              "role": "viewer", "organization": str(home)})
        assert invited.status_code == 409 and "Plan HOME allows 3 users: organization Home would have 4." in \
            invited.text

        try:
            added = await operator.post("/admin/stations/new", data={"station_id": "HOME-3", "description": "",
                                                                     "password": ""})
            assert added.status_code == 409 and HOME_FULL + "." in added.text
            assert (await operator.get("/admin/plans")).status_code == 404  # the installation's page
        finally:
            await operator.aclose()

        acme = await organization(api, "Acme", ids["PUBLIC"])
        for n in range(3):
            await api.post("/stations", json={"station_id": f"ACME-{n}", "organization": acme})
        form = {"name": "Acme", "kind": "customer", "parent": "", "vat_id": "", "email": "", "address": "",
                "publish": "on", "plan": str(ids["HOME"])}
        down = await client.post(f"/admin/organizations/{acme}/edit", data=form)
        assert down.status_code == 409 and "Plan HOME allows 2 stations: organization Acme would have 3." in down.text
        assert (await Organization.select(Organization.plan).where(Organization.id == acme).first())["plan"] == \
            ids["PUBLIC"]

        plans_page = await client.get("/admin/plans")
        assert plans_page.status_code == 200 and "BUSINESS" in plans_page.text
        edit = {"name": "PUBLIC", "description": "", "max_stations": "2", "max_hubs": "", "max_users": "",
                "max_api_keys": "", "feature_roaming": "on"}
        refused = await client.post(f"/admin/plans/{ids['PUBLIC']}/edit", data=edit)
        assert refused.status_code == 409 and "Plan PUBLIC allows 2 stations" in refused.text
        saved = await client.post(f"/admin/plans/{ids['PUBLIC']}/edit", data={**edit, "max_stations": "10"})
        assert saved.status_code == 303
        row = await Plan.select().where(Plan.id == ids["PUBLIC"]).output(load_json=True).first()
        assert row["max_stations"] == 10 and row["max_users"] is None and row["features"] == ["roaming"]
    finally:
        await client.aclose()


async def test_a_plugin_gates_its_feature(any_server, monkeypatch):
    """Billing chooses no tariff for sessions at stations of an organization without it."""
    from plugins.billing.plugin import select_tariff

    api = any_server.api
    ids = await plan_ids(api)
    acme = await organization(api, "Acme", ids["PUBLIC"])
    await api.post("/stations", json={"station_id": "ACME-1", "organization": acme})
    await api.post("/stations", json={"station_id": "FREE-1"})

    async def tariff(station_id: str):
        answer = select_tariff(session={"id": None, "station_id": station_id, "evse_id": 1, "started_at": utcnow()
                                        - timedelta(minutes=5), "id_token": "", "driver": None, "state": "active"})
        return await answer()

    sentinel = object()

    async def chosen(context):
        return sentinel

    monkeypatch.setattr("plugins.billing.plugin.choose_tariff", chosen)  # what billing would choose
    assert await tariff("ACME-1") is sentinel
    assert await tariff("FREE-1") is sentinel
    assert (await api.patch(f"/plans/{ids['PUBLIC']}", json={"features": ["roaming"]})).status_code == 200
    assert await tariff("ACME-1") is None
    assert await tariff("FREE-1") is sentinel  # no organization, no plan: not restricted


@pytest.fixture
def home_for_new_organizations(monkeypatch):
    """``CSMS_NEW_ORGANIZATION_PLAN=HOME`` in the environment (which ``get_settings`` caches)."""
    from csms.settings import get_settings

    monkeypatch.setenv("CSMS_NEW_ORGANIZATION_PLAN", "HOME")
    get_settings.cache_clear()
    yield
    monkeypatch.delenv("CSMS_NEW_ORGANIZATION_PLAN")
    get_settings.cache_clear()


async def test_new_top_level_organizations_get_the_configured_plan(tmp_path, home_for_new_organizations):
    async with running_server(tmp_path, unknown_stations="accept", default_organization="Walk-ins") as srv:
        ids = await plan_ids(srv.api)
        top = (await srv.api.post("/organizations", json={"name": "Top"})).json()
        assert top["plan"] == ids["HOME"]
        below = (await srv.api.post("/organizations", json={"name": "Below", "parent": top["id"]})).json()
        assert below["plan"] is None  # it has its parent's
        chosen = (await srv.api.post("/organizations", json={"name": "Chosen", "plan": None})).json()
        assert chosen["plan"] is None  # named: none

        async with websockets.connect(srv.ws_url("WALK-IN-1"), subprotocols=["ocpp1.6"]):
            pass
        walk_ins = await Organization.select(Organization.plan).where(Organization.name == "Walk-ins").first()
        assert walk_ins == {"plan": ids["HOME"]}

        client = await admin_client(srv, "admin")
        try:
            form = await client.get("/admin/organizations/new")
            assert f'<option value="{ids["HOME"]}" selected>HOME</option>' in form.text
        finally:
            await client.aclose()


async def test_moves_to_another_organizations_site_count_against_its_plan(any_server):
    """A hub moved with its stations to a site of another organization, a station put on such a
    site, and a site given to another organization: that organization's plan must have room for
    the hubs and stations it gets (REST and admin); the hub limit holds as well."""
    api = any_server.api
    ids = await plan_ids(api)
    home = await organization(api, "Home", ids["HOME"])
    acme = await organization(api, "Acme", ids["PUBLIC"])
    garage = (await api.post("/sites", json={"name": "Garage", "organization": home})).json()["id"]
    assert (await api.post("/stations", json={"station_id": "HOME-0", "organization": home,
                                              "site": garage})).status_code == 201
    box = (await api.post("/hubs", json={"name": "Box", "site": garage})).json()["id"]  # Home's one hub
    depot = (await api.post("/sites", json={"name": "Depot", "organization": acme})).json()["id"]
    rack = (await api.post("/hubs", json={"name": "Rack", "site": depot})).json()["id"]
    for n in range(2):
        assert (await api.post("/stations", json={"station_id": f"ACME-{n}", "organization": acme,
                                                  "hub": rack})).status_code == 201

    async def where(station_id: str) -> dict:
        return await Station.select(Station.organization, Station.site, Station.hub).where(
            Station.station_id == station_id).first()

    assert await where("ACME-0") == {"organization": acme, "site": depot, "hub": rack}  # a hub's station is at its site

    # the hub: Home has its one hub already
    moved = await api.patch(f"/hubs/{rack}", json={"site": garage})
    assert moved.status_code == 409
    assert moved.json()["detail"] == "Plan HOME allows 1 hub: organization Home would have 2"
    assert moved.json()["extra"]["limit"] == "hubs"
    assert (await api.get(f"/hubs/{rack}")).json()["site"] == depot
    assert await where("ACME-1") == {"organization": acme, "site": depot, "hub": rack}
    # room for the hub, not for its two stations (Home has one, HOME allows 2)
    assert (await api.patch(f"/plans/{ids['HOME']}", json={"max_hubs": 2})).status_code == 200
    moved = await api.patch(f"/hubs/{rack}", json={"site": garage})
    assert moved.status_code == 409 and moved.json()["detail"] == HOME_FULL
    assert await where("ACME-0") == {"organization": acme, "site": depot, "hub": rack}

    # one station onto Home's site: REST, the station's admin page, the site's page
    moved = await api.patch("/stations/ACME-0", json={"site": garage})
    assert moved.status_code == 200, moved.text
    assert await where("ACME-0") == {"organization": home, "site": garage, "hub": rack}
    moved = await api.patch("/stations/ACME-1", json={"site": garage})
    assert moved.status_code == 409 and moved.json()["detail"] == HOME_FULL
    assert await where("ACME-1") == {"organization": acme, "site": depot, "hub": rack}
    moved = await api.patch("/stations/ACME-1", json={"hub": box})  # into Home's hub, so onto its site
    assert moved.status_code == 409 and moved.json()["detail"] == HOME_FULL
    client = await admin_client(any_server, "admin", csrf_header=True)
    try:
        assigned = await client.post("/admin/stations/ACME-1/assign", data={"site": str(garage), "hub": ""})
        assert assigned.status_code == 409
        assert "The station was not changed: Plan HOME allows 2 stations: organization Home would have 3." \
            in assigned.text
        added = await client.post(f"/admin/sites/{garage}/stations", data={"add": "ACME-1"})
        assert added.status_code == 409
        assert "The stations were not added: Plan HOME allows 2 stations: organization Home would have 3." \
            in added.text
        hub_form = {"name": "Rack", "site": str(garage), "device_id": "", "max_stations": "20", "limit_l1_a": "",
                    "limit_l2_a": "", "limit_l3_a": "", "stations": ["ACME-0", "ACME-1"]}
        edited = await client.post(f"/admin/hubs/{rack}/edit", data=hub_form)
        assert edited.status_code == 409 and f'id="err-site" class="field-error">{HOME_FULL}.' in edited.text
        assert await where("ACME-1") == {"organization": acme, "site": depot, "hub": rack}

        # with room, the hub moves with its stations, which become Home's
        assert (await api.patch(f"/plans/{ids['HOME']}", json={"max_stations": 3})).status_code == 200
        edited = await client.post(f"/admin/hubs/{rack}/edit", data=hub_form)
        assert edited.status_code == 303, edited.text
        assert await where("ACME-1") == {"organization": home, "site": garage, "hub": rack}
    finally:
        await client.aclose()

    # a station of an organization below the site's stays its own
    flat = await organization(api, "Flat", None, parent=home)
    assert (await api.post("/stations", json={"station_id": "FLAT-0", "organization": flat})).status_code == 409
    assert (await api.patch(f"/plans/{ids['HOME']}", json={"max_stations": 4})).status_code == 200
    assert (await api.post("/stations", json={"station_id": "FLAT-0", "organization": flat})).status_code == 201
    assert (await api.patch("/stations/FLAT-0", json={"site": garage})).status_code == 200
    assert await where("FLAT-0") == {"organization": flat, "site": garage, "hub": None}

    # a site given to another organization takes its hubs and stations along
    shed = (await api.post("/sites", json={"name": "Shed", "organization": acme})).json()["id"]
    assert (await api.post("/hubs", json={"name": "Shelf", "site": shed})).status_code == 201
    given = await api.patch(f"/sites/{shed}", json={"organization": home})
    assert given.status_code == 409 and given.json()["detail"] == "Plan HOME allows 2 hubs: organization Home would have 3"
    client = await admin_client(any_server, "admin", csrf_header=True)
    try:
        edited = await client.post(f"/admin/sites/{shed}/edit", data={
            "name": "Shed", "organization": str(home), "address": "", "postal_code": "", "city": "", "country": "",
            "timezone": "UTC", "latitude": "", "longitude": "", "grid_limit_l1_a": "", "grid_limit_l2_a": "",
            "grid_limit_l3_a": "", "voltage_v": "230"})
        assert edited.status_code == 409
        assert "Plan HOME allows 2 hubs: organization Home would have 3." in edited.text
    finally:
        await client.aclose()
    assert (await api.get(f"/sites/{shed}")).json()["organization"] == acme

    # the hub limit holds for stations coming from another organization too
    assert (await api.patch(f"/hubs/{box}", json={"max_stations": 1})).status_code == 200
    assert (await api.patch("/stations/HOME-0", json={"hub": box})).status_code == 200
    assert (await api.post("/stations", json={"station_id": "ACME-2", "organization": acme})).status_code == 201
    full = await api.patch("/stations/ACME-2", json={"hub": box})
    assert full.status_code == 409 and full.json()["extra"]["error"] == "HubFull"
    assert await where("ACME-2") == {"organization": acme, "site": None, "hub": None}


async def test_a_station_given_to_another_organization_leaves_its_former_owners_site(any_server):
    """``PATCH /stations`` of only ``organization``: the station keeps its site and hub when they
    are of the new organization or one above it, else it leaves them (no station of one
    organization stands on another's site); the receiving plan is checked as for any move."""
    api = any_server.api
    ids = await plan_ids(api)
    acme = await organization(api, "Acme", ids["BUSINESS"])
    flat = await organization(api, "Flat", None, parent=acme)
    home = await organization(api, "Home", ids["HOME"])
    depot = (await api.post("/sites", json={"name": "Depot", "organization": acme})).json()["id"]
    rack = (await api.post("/hubs", json={"name": "Rack", "site": depot})).json()["id"]
    assert (await api.post("/stations", json={"station_id": "ACME-0", "organization": acme,
                                              "hub": rack})).status_code == 201

    async def where() -> dict:
        return await Station.select(Station.organization, Station.site, Station.hub).where(
            Station.station_id == "ACME-0").first()

    moved = await api.patch("/stations/ACME-0", json={"organization": flat})  # below Acme: stays
    assert moved.status_code == 200, moved.text
    assert await where() == {"organization": flat, "site": depot, "hub": rack}
    moved = await api.patch("/stations/ACME-0", json={"organization": home})
    assert moved.status_code == 200, moved.text
    assert await where() == {"organization": home, "site": None, "hub": None}
    assert moved.json()["site"] is None
    # with a site of the new organization named, it goes there
    garage = (await api.post("/sites", json={"name": "Garage", "organization": acme})).json()["id"]
    moved = await api.patch("/stations/ACME-0", json={"organization": acme, "site": garage})
    assert moved.status_code == 200, moved.text
    assert await where() == {"organization": acme, "site": garage, "hub": None}


async def test_plans_are_added_and_removed_by_the_installations_admins(any_server):
    api = any_server.api
    created = await api.post("/plans", json={"name": "FLEET", "description": "Company fleets",
                                              "features": ["api_access", "driver_portal"], "max_stations": 10})
    assert created.status_code == 201, created.text
    fleet = created.json()
    assert fleet["features"] == ["api_access", "driver_portal"] and fleet["max_stations"] == 10
    assert fleet["max_hubs"] is None and fleet["organizations"] == 0
    assert await AuditEntry.exists().where((AuditEntry.object_type == "plan") & (AuditEntry.action == "create"))

    taken = await api.post("/plans", json={"name": "FLEET"})
    assert taken.status_code == 409 and taken.json()["detail"] == "another plan is named FLEET"
    assert (await api.post("/plans", json={"name": ""})).status_code == 400
    assert (await api.post("/plans", json={"description": "no name"})).status_code == 400
    assert (await api.post("/plans", json={"name": "X", "features": ["teleportation"]})).status_code == 400
    renamed = await api.patch(f"/plans/{fleet['id']}", json={"name": "HOME"})
    assert renamed.status_code == 409 and renamed.json()["extra"] == {"error": "PlanNameTaken", "name": "HOME"}

    ids = await plan_ids(api)
    acme = await organization(api, "Acme", fleet["id"])
    zeta = await organization(api, "Zeta", fleet["id"])
    from csms.api.auth import create_api_key

    key, _ = await create_api_key("acme admin", "admin", acme)
    async with httpx.AsyncClient(base_url=f"{any_server.base_url}/api/v1",
                                 headers={"Authorization": f"Bearer {key}"}) as acme_api:
        assert (await acme_api.post("/plans", json={"name": "MINE"})).status_code == 404  # the installation's
        assert (await acme_api.delete(f"/plans/{fleet['id']}")).status_code == 404

    held = await api.delete(f"/plans/{fleet['id']}")
    assert held.status_code == 409
    assert held.json()["detail"] == "plan FLEET is the plan of Acme, Zeta: give them another plan first"
    assert held.json()["extra"] == {"error": "PlanInUse", "plan": "FLEET", "organizations": ["Acme", "Zeta"]}
    for org in (acme, zeta):
        assert (await api.patch(f"/organizations/{org}", json={"plan": ids["PUBLIC"]})).status_code == 200
    assert (await api.delete(f"/plans/{fleet['id']}")).status_code == 204
    assert not await Plan.exists().where(Plan.name == "FLEET")
    assert (await api.delete(f"/plans/{fleet['id']}")).status_code == 404
    assert await AuditEntry.exists().where((AuditEntry.object_type == "plan") & (AuditEntry.action == "delete"))

    # the shipped plans are data like any other
    home = await api.patch(f"/plans/{ids['HOME']}", json={"name": "HOME+", "description": "More", "max_users": 5})
    assert home.status_code == 200 and home.json()["name"] == "HOME+" and home.json()["max_users"] == 5
    assert (await api.delete(f"/plans/{ids['BUSINESS']}")).status_code == 204


async def test_a_refused_station_is_audited_once_per_episode(tmp_path):
    """A station the default organization's plan has no room for retries every few seconds: its
    refusals are each in its event log, but audited once, and again only a day later or after
    the CSMS accepted it meanwhile."""
    async with running_server(tmp_path, unknown_stations="accept", default_organization="Home") as srv:
        ids = await plan_ids(srv.api)
        home = await organization(srv.api, "Home", ids["HOME"])
        for n in range(2):
            await srv.api.post("/stations", json={"station_id": f"KNOWN-{n}", "organization": home})

        async def knock() -> None:
            with pytest.raises(InvalidStatus) as refused:
                async with websockets.connect(srv.ws_url("NEWCOMER"), subprotocols=["ocpp1.6"]):
                    pass
            assert refused.value.response.status_code == 403

        refusals = (AuditEntry.object_id == "NEWCOMER") & (AuditEntry.action == "refuse")
        for _ in range(3):
            await knock()
        assert await AuditEntry.count().where(refusals) == 1
        for _ in range(50):  # the station event log is written in batches
            if await StationEvent.count().where((StationEvent.station_id == "NEWCOMER")
                                                & (StationEvent.kind == "refused")) == 3:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("not every refusal is in the station's event log")

        await AuditEntry.update({AuditEntry.at: utcnow() - timedelta(hours=25)}).where(refusals)  # a day later
        await knock()
        await knock()
        assert await AuditEntry.count().where(refusals) == 2

        # accepted once there is room, then removed: its next refusal is a new episode
        assert (await srv.api.patch(f"/plans/{ids['HOME']}", json={"max_stations": 3})).status_code == 200
        async with websockets.connect(srv.ws_url("NEWCOMER"), subprotocols=["ocpp1.6"]):
            pass
        assert (await srv.api.delete("/stations/NEWCOMER")).status_code == 204
        await srv.api.post("/stations", json={"station_id": "KNOWN-2", "organization": home})
        await knock()
        await knock()
        assert await AuditEntry.count().where(refusals) == 3


async def test_the_plan_check_of_api_keys_is_cached(any_server, monkeypatch):
    """An organization's API key costs no plan query per request once its plan is known; a plan
    change counts at once (the cache is emptied)."""
    api = any_server.api
    ids = await plan_ids(api)
    acme = await organization(api, "Acme", ids["BUSINESS"])
    from csms.api.auth import create_api_key

    key, _ = await create_api_key("acme viewer", "viewer", acme)
    engine = type(Plan._meta.db)  # the server's engine runs in this process: its queries are counted
    statements: list[str] = []
    run = engine.run_querystring

    async def counted(self, querystring, *args, **kwargs):
        statements.append(str(querystring))
        return await run(self, querystring, *args, **kwargs)

    monkeypatch.setattr(engine, "run_querystring", counted)

    def plan_reads() -> int:
        return sum('FROM "plan"' in s for s in statements)

    async with httpx.AsyncClient(base_url=f"{any_server.base_url}/api/v1",
                                 headers={"Authorization": f"Bearer {key}"}) as acme_api:
        assert (await acme_api.get("/sites")).status_code == 200
        first = plan_reads()
        assert first == 1, statements
        for _ in range(5):
            assert (await acme_api.get("/sites")).status_code == 200
        assert plan_reads() == first, "the plan was read again"
        print(f"plan reads for 6 API-key requests: {plan_reads()} (uncached: 6)")

        assert (await api.patch(f"/plans/{ids['BUSINESS']}", json={"features": ["driver_portal"]})).status_code == 200
        refused = await acme_api.get("/sites")
        assert refused.status_code == 403 and "does not include API access" in refused.json()["detail"]
        assert (await api.patch(f"/organizations/{acme}", json={"plan": ids["PUBLIC"]})).status_code == 200
        assert (await acme_api.get("/sites")).status_code == 200


async def test_names_are_unique_and_empty_changes_change_nothing(any_server):
    """Found by tests/test_fuzz_rest.py: a second organization of the same name, and a plan
    change with nothing in it, were server errors (500)."""
    api = any_server.api
    first = await api.post("/organizations", json={"name": "Twin"})
    assert first.status_code == 201, first.text
    again = await api.post("/organizations", json={"name": "Twin"})
    assert again.status_code == 409 and again.json()["extra"]["error"] == "OrganizationNameTaken", again.text
    other = (await api.post("/organizations", json={"name": "Other"})).json()
    renamed = await api.patch(f"/organizations/{other['id']}", json={"name": "Twin"})
    assert renamed.status_code == 409, renamed.text
    assert (await api.patch(f"/organizations/{first.json()['id']}", json={"name": "Twin"})).status_code == 200
    for body in ({}, {"name": "  "}):
        assert (await api.post("/organizations", json=body)).status_code == 400
    plan = (await api.post("/plans", json={"name": "Unchanged"})).json()
    same = await api.patch(f"/plans/{plan['id']}", json={})
    assert same.status_code == 200 and same.json()["name"] == "Unchanged", same.text
