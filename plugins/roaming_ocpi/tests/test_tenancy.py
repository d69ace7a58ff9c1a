"""Roaming partners of organizations (tenants), on SQLite and PostgreSQL, against scripted
partners over real HTTP.

ALPHA (with a child organization) and BRAVO each have a published site with a station, a card and
a tariff; one more site, card and tariff belong to the installation. ALPHA's eMSP partner gets
(pushed and pulled) the Locations of ALPHA's tree only, ALPHA's and the installation's tariffs,
and its tokens charge at ALPHA's tree's stations only; ALPHA's CPO partner gets ALPHA's cards
only. The installation's partner gets everything, as before. ALPHA's users see and manage
ALPHA's partners only: BRAVO's and the installation's are 404 in the REST API and the admin.
"""

from __future__ import annotations

import importlib
from typing import Any

import httpx
import pytest
import pytest_asyncio

from csms.testing import admin_client
from plugins.roaming_ocpi.tests.fake_partner import fake_partner, now
from plugins.roaming_ocpi.tests.ocpi_check import assert_envelope
from plugins.roaming_ocpi.tests.stations import eventually, site_with_stations
from plugins.roaming_ocpi.tests.test_transport import ocpi, register_fake, tok

pytestmark = pytest.mark.asyncio(loop_scope="module")

MARK = "BRAVOMARK"


def tariff(code: str) -> dict[str, Any]:
    return {"id": code, "currency": "EUR", "elements": [{"price_components": [
        {"type": "ENERGY", "price": 0.30, "vat": 21, "step_size": 1}]}]}


def token(uid: str, party_id: str) -> dict[str, Any]:
    return {"country_code": "DE", "party_id": party_id, "uid": uid, "type": "RFID",
            "contract_id": f"DE-{party_id}-C{uid}", "issuer": "Fake", "valid": True, "whitelist": "ALWAYS",
            "last_updated": now()}


async def _partner_id(server, party_id: str) -> int:
    partners = (await server.api.get("/roaming/partners")).json()["items"]
    return next(p["id"] for p in partners if p["party_id"] == party_id)


async def _idle(server) -> None:
    """Wait until every queued push was delivered."""
    await eventually(lambda: _nothing_pending(server))


async def _nothing_pending(server) -> bool:
    r = await server.api.get("/roaming/outbox", params={"status": "pending"})
    return r.json()["total"] == 0


async def pull_all(url: str, token_c: str) -> list[dict[str, Any]]:
    """Every page of an OCPI list (following ``Link``)."""
    items: list[dict[str, Any]] = []
    async with httpx.AsyncClient() as c:
        while url:
            r = await c.get(url, headers=tok(token_c))
            items += assert_envelope(r.json())
            link = r.headers.get("link", "")
            url = link[1:link.index(">")] if link else ""
    return items


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(server):
    api = server.api
    alpha = (await api.post("/organizations", json={"name": "ALPHA org"})).json()["id"]
    child = (await api.post("/organizations", json={"name": "ALPHA child", "parent": alpha})).json()["id"]
    bravo = (await api.post("/organizations", json={"name": f"{MARK} org"})).json()["id"]
    sites: dict[str, Any] = {}
    stations: dict[str, Any] = {}
    for name, organization in (("TA1", alpha), ("TA2", child), ("TB1", bravo), ("TG1", None)):
        site, sims = await site_with_stations(server, f"{name} site", [name], organization=organization)
        sites[name], stations[name] = site, sims[0]
    for uid, organization in (("CARDA1", alpha), ("CARDB1", bravo), ("CARDG1", None)):
        made = await api.post("/tokens", json={"id_token": uid, "organization": organization})
        assert made.status_code == 201, made.text
    for code, organization in (("TAR-A", alpha), ("TAR-B", bravo), ("TAR-ALL", None)):
        made = await api.post("/billing/tariffs", json={"name": code, "tariff": tariff(code),
                                                        "organization": organization})
        assert made.status_code == 201, made.text
    async with fake_partner(party_id="AAA") as emsp_a, fake_partner(party_id="BBB") as emsp_b, \
            fake_partner(party_id="GGG") as emsp_g, fake_partner(party_id="ACP", role="CPO") as cpo_a:
        for fake, organization in ((emsp_a, alpha), (emsp_b, bravo), (emsp_g, None), (cpo_a, alpha)):
            await register_fake(server, fake, organization)
            fake.id = await _partner_id(server, fake.party_id)
        await api.patch(f"/roaming/partners/{emsp_a.id}", json={"name": "ALPHA emsp"})
        await api.patch(f"/roaming/partners/{cpo_a.id}", json={"name": "ALPHA cpo"})
        await api.patch(f"/roaming/partners/{emsp_b.id}", json={"name": f"{MARK} emsp"})
        await api.patch(f"/roaming/partners/{emsp_g.id}", json={"name": "installation emsp"})
        assert (await api.post("/roaming/sync")).status_code == 200
        await _idle(server)
        yield {"alpha": alpha, "child": child, "bravo": bravo, "sites": sites, "stations": stations,
               "emsp_a": emsp_a, "emsp_b": emsp_b, "emsp_g": emsp_g, "cpo_a": cpo_a}
    for sim in stations.values():
        await sim.close()


def _location_ids(fake) -> set[str]:
    """The Locations a partner was sent (PUT or PATCH, of the Location or its EVSEs)."""
    return {r.path.split("/")[6] for r in fake.pushes(None, "locations")}


async def test_an_organizations_partner_gets_its_trees_locations_and_tariffs(server, world):
    site = {name: str(s["id"]) for name, s in world["sites"].items()}
    emsp_a, emsp_b, emsp_g = world["emsp_a"], world["emsp_b"], world["emsp_g"]
    # pushed: the organization's tree (its child's site too); the installation's partner: all
    assert _location_ids(emsp_a) == {site["TA1"], site["TA2"]}
    assert _location_ids(emsp_b) == {site["TB1"]}
    assert _location_ids(emsp_g) >= set(site.values())
    assert {r.path.split("/")[-1] for r in emsp_a.pushes("PUT", "tariffs")} == {"TAR-A", "TAR-ALL"}
    assert {r.path.split("/")[-1] for r in emsp_b.pushes("PUT", "tariffs")} == {"TAR-B", "TAR-ALL"}
    assert {r.path.split("/")[-1] for r in emsp_g.pushes("PUT", "tariffs")} >= {"TAR-A", "TAR-B", "TAR-ALL"}
    # a status change at BRAVO's station reaches BRAVO's partner and the installation's, not ALPHA's
    before = len(emsp_a.pushes(None, "locations"))
    await world["stations"]["TB1"].status(1, "Unavailable")
    for fake in (emsp_b, emsp_g):
        await fake.wait_for("PATCH", f"locations/NL/CPO/{site['TB1']}/TB1*1",
                            match=lambda r: r.body.get("status") == "INOPERATIVE")
    await _idle(server)
    assert len(emsp_a.pushes(None, "locations")) == before
    # pulled: the same
    url = f"{ocpi(server)}/cpo/2.2.1"
    assert {loc["id"] for loc in await pull_all(f"{url}/locations", emsp_a.token_c)} == {site["TA1"], site["TA2"]}
    assert {loc["id"] for loc in await pull_all(f"{url}/locations", emsp_g.token_c)} >= set(site.values())
    assert {t["id"] for t in await pull_all(f"{url}/tariffs", emsp_a.token_c)} == {"TAR-A", "TAR-ALL"}
    async with httpx.AsyncClient() as c:
        for other in (site["TB1"], site["TG1"]):  # another organization's Location: unknown (2003)
            r = await c.get(f"{url}/locations/{other}", headers=tok(emsp_a.token_c))
            assert r.status_code == 404 and assert_envelope(r.json(), 2003) is None
            r = await c.get(f"{url}/locations/{other}/{'TB1' if other == site['TB1'] else 'TG1'}*1",
                            headers=tok(emsp_a.token_c))
            assert r.status_code == 404
        r = await c.get(f"{url}/locations/{site['TA2']}", headers=tok(emsp_a.token_c))
        assert assert_envelope(r.json())["evses"][0]["uid"] == "TA2*1"
        r = await c.get(f"{url}/locations/{site['TB1']}", headers=tok(emsp_g.token_c))
        assert assert_envelope(r.json())["id"] == site["TB1"]


async def test_an_organizations_cpo_partner_gets_its_trees_cards_only(server, world):
    cpo_a = world["cpo_a"]
    assert {r.body["uid"] for r in cpo_a.pushes("PUT", "tokens")} == {"CARDA1"}
    url = f"{ocpi(server)}/emsp/2.2.1/tokens"
    assert [t["uid"] for t in await pull_all(url, cpo_a.token_c)] == ["CARDA1"]
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{url}/CARDA1/authorize", headers=tok(cpo_a.token_c))
        assert assert_envelope(r.json())["allowed"] == "ALLOWED"
        for other in ("CARDB1", "CARDG1"):  # another organization's card, the installation's: unknown (2004)
            r = await c.post(f"{url}/{other}/authorize", headers=tok(cpo_a.token_c))
            assert r.status_code == 404 and assert_envelope(r.json(), 2004) is None
    # commands for our drivers go to ALPHA's CPO partner with ALPHA's cards only
    r = await server.api.post(f"/roaming/partners/{cpo_a.id}/commands/START_SESSION",
                              json={"id_token": "CARDB1", "location_id": "L1"})
    assert r.status_code == 400 and "not one of our tokens" in r.json()["detail"]


async def test_an_organizations_partners_tokens_charge_at_its_trees_stations_only(server, world):
    emsp_a, emsp_g, stations = world["emsp_a"], world["emsp_g"], world["stations"]
    async with httpx.AsyncClient() as c:
        for fake, uid in ((emsp_a, "ROAMA001"), (emsp_g, "ROAMG001")):
            r = await c.put(f"{ocpi(server)}/cpo/2.2.1/tokens/DE/{fake.party_id}/{uid}",
                            json=token(uid, fake.party_id), headers=tok(fake.token_c))
            assert r.status_code == 201, r.text
    assert await stations["TA1"].authorize("ROAMA001") == "Accepted"
    assert await stations["TA2"].authorize("ROAMA001") == "Accepted"  # the child organization's station
    assert await stations["TB1"].authorize("ROAMA001") != "Accepted"  # another organization's: refused
    assert await stations["TG1"].authorize("ROAMA001") != "Accepted"  # the installation's: refused
    for name in ("TA1", "TB1", "TG1"):  # the installation's partner: everywhere, as before
        assert await stations[name].authorize("ROAMG001") == "Accepted"
    # commands for another organization's Location are for an unknown Location (2003)
    site = {name: str(s["id"]) for name, s in world["sites"].items()}
    url = f"{ocpi(server)}/cpo/2.2.1/commands/START_SESSION"
    start = {"response_url": f"{emsp_a.base}/ocpi/2.2.1/commands/START_SESSION/9", "token": token("ROAMA001", "AAA"),
             "location_id": site["TB1"], "evse_uid": "TB1*1"}
    async with httpx.AsyncClient() as c:
        r = await c.post(url, json=start, headers=tok(emsp_a.token_c))
        assert r.status_code == 200 and assert_envelope(r.json(), 2003) is None
        r = await c.post(url, json={**start, "location_id": site["TA1"], "evse_uid": "TB1*1"},
                         headers=tok(emsp_a.token_c))
        assert r.status_code == 200 and assert_envelope(r.json(), 2003) is None
        r = await c.post(url, json={**start, "location_id": site["TA2"], "evse_uid": "TA2*1"},
                         headers=tok(emsp_a.token_c))
        assert assert_envelope(r.json())["result"] == "ACCEPTED"
        result = (await emsp_a.wait_for("POST", "commands/START_SESSION/9"))[-1].body
        assert result["result"] == "ACCEPTED"
    # the session it started is reported to ALPHA's partner only
    sessions = await eventually(lambda: emsp_a.pushes("PUT", "sessions"))
    assert sessions[-1].body["location_id"] == site["TA2"]
    assert not emsp_g.pushes("PUT", "sessions")


async def test_a_site_given_to_another_organization_moves_between_partners(server, world):
    emsp_a, emsp_b, emsp_g = world["emsp_a"], world["emsp_b"], world["emsp_g"]
    site, sims = await site_with_stations(server, "Moving site", ["TM1"], organization=world["alpha"])
    loc = str(site["id"])
    try:
        assert (await server.api.post("/roaming/sync")).status_code == 200
        await emsp_a.wait_for("PUT", f"locations/NL/CPO/{loc}")
        await _idle(server)
        assert not emsp_b.pushes(None, f"locations/NL/CPO/{loc}")
        moved = await server.api.patch(f"/sites/{loc}", json={"organization": world["bravo"]})
        assert moved.status_code == 200, moved.text
        assert (await server.api.post("/roaming/sync")).status_code == 200
        removed = await emsp_a.wait_for("PATCH", f"locations/NL/CPO/{loc}/TM1*1")
        assert removed[-1].body["status"] == "REMOVED"
        put = await emsp_b.wait_for("PUT", f"locations/NL/CPO/{loc}")
        assert put[-1].body["evses"][0]["uid"] == "TM1*1"
        await _idle(server)
        # the installation's partner sees it in both organizations: nothing is removed for it
        assert not [r for r in emsp_g.pushes("PATCH", f"locations/NL/CPO/{loc}")
                    if r.body.get("status") == "REMOVED"]
        url = f"{ocpi(server)}/cpo/2.2.1/locations"
        assert loc not in {x["id"] for x in await pull_all(url, emsp_a.token_c)}
        assert loc in {x["id"] for x in await pull_all(url, emsp_b.token_c)}
    finally:
        await sims[0].close()


async def test_an_organizations_users_see_and_manage_their_own_partners_only(server, world):
    api = server.api
    alpha, child, bravo = world["alpha"], world["child"], world["bravo"]
    mine = {world["emsp_a"].id, world["cpo_a"].id}
    others = (world["emsp_b"].id, world["emsp_g"].id)
    keys = {role: (await api.post("/api-keys", json={"name": f"alpha {role}", "role": role,
                                                     "organization": alpha})).json()["key"]
            for role in ("viewer", "admin")}
    base = f"{server.base_url}/api/v1/roaming"
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {keys['viewer']}"}) as viewer, \
            httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {keys['admin']}"}) as admin:
        listed = (await viewer.get("/partners")).json()["items"]
        assert {p["id"] for p in listed} == mine and all(p["organization"] == alpha for p in listed)
        for other in others:
            for path in (f"/partners/{other}", f"/partners/{other}/log"):
                assert (await viewer.get(path)).status_code == 404, path
            assert (await admin.post(f"/partners/{other}/push")).status_code == 404
            assert (await admin.delete(f"/partners/{other}")).status_code == 404
        assert (await viewer.get(f"/partners/{world['emsp_a'].id}")).status_code == 200
        assert (await viewer.post(f"/partners/{world['emsp_a'].id}/push")).status_code == 403  # operator acts
        outbox = (await viewer.get("/outbox")).json()["items"]
        assert outbox and {o["partner"] for o in outbox} <= mine
        assert MARK not in (await viewer.get("/outbox")).text.upper()
        published = {loc["id"] for loc in (await viewer.get("/published-locations")).json()["items"]}
        assert published == {str(world["sites"]["TA1"]["id"]), str(world["sites"]["TA2"]["id"])}
        assert [t["uid"] for t in (await viewer.get("/published-tokens")).json()["items"]] == ["CARDA1"]
        assert (await admin.post("/sync")).status_code == 404  # the installation's
        # an organization's admin creates partners for its own tree only
        made = await admin.post("/partners", json={"name": "ALPHA new"})
        assert made.status_code == 201 and made.json()["organization"] == alpha and made.json()["token_a"]
        made = await admin.post("/partners", json={"name": "ALPHA child's", "organization": child})
        assert made.status_code == 201 and made.json()["organization"] == child
        for refused in ({"name": "x", "organization": bravo}, {"name": "x", "organization": 999999}):
            r = await admin.post("/partners", json=refused)
            assert r.status_code in (400, 422) and r.json()["detail"], r.text
        assert (await viewer.post("/partners", json={"name": "x"})).status_code == 403  # admin creates
        # its creations are in its audit log
        logged = await admin.get(f"{server.base_url}/api/v1/audit", params={"object_type": "roaming_partner"})
        entries = logged.json()["items"]
        assert {e["after"]["name"] for e in entries if e["action"] == "create"} >= {"ALPHA new", "ALPHA child's"}
        assert {e["after"]["organization"] for e in entries} <= {alpha, child}, logged.text
    # the installation's users still see every partner, and create installation-wide ones
    everyone = {p["id"] for p in (await api.get("/roaming/partners")).json()["items"]}
    assert everyone >= mine | set(others)
    made = await api.post("/roaming/partners", json={"name": "installation new"})
    assert made.status_code == 201 and made.json()["organization"] is None

    # the admin pages: the same partners, another organization's is a 404
    page_viewer = await admin_client(server, "viewer", organization=alpha, csrf_header=True)
    page_admin = await admin_client(server, "admin", organization=alpha, csrf_header=True)
    try:
        index = await page_viewer.get("/admin/roaming/")
        assert index.status_code == 200 and "ALPHA emsp" in index.text and MARK not in index.text.upper()
        assert "installation emsp" not in index.text
        for page in ("/admin/roaming/deliveries", "/admin/roaming/exchange"):
            answer = await page_viewer.get(page)
            assert answer.status_code == 200 and MARK not in answer.text.upper(), page
        for other in others:
            assert (await page_viewer.get(f"/admin/roaming/partners/{other}")).status_code == 404
            assert (await page_admin.post(f"/admin/roaming/partners/{other}/push")).status_code == 404
        assert (await page_viewer.get(f"/admin/roaming/partners/{world['emsp_a'].id}")).status_code == 200
        # inviting from the page: its own organization by default, another organization refused in words
        refused = await page_admin.post("/admin/roaming/invite", data={"name": "forged", "organization": str(bravo)})
        assert refused.status_code == 422 and "Choose one of the listed organizations." in refused.text
        invited = await page_admin.post("/admin/roaming/invite", data={"name": "ALPHA invited"})
        assert invited.status_code == 200 and "ALPHA invited" in invited.text
        row = next(p for p in (await api.get("/roaming/partners")).json()["items"] if p["name"] == "ALPHA invited")
        assert row["organization"] == alpha
    finally:
        await page_viewer.aclose()
        await page_admin.aclose()


async def test_the_migration_marks_what_was_published_with_its_organization(server, world):
    from plugins.roaming_ocpi.tables import Snapshot

    kinds = Snapshot.kind.is_in(["location", "token"])

    async def owners() -> dict[tuple[str, str], int | None]:
        rows = await Snapshot.select(Snapshot.kind, Snapshot.key, Snapshot.organization).where(kinds)
        return {(r["kind"], r["key"]): r["organization"] for r in rows}

    published = await owners()
    assert published[("location", str(world["sites"]["TA2"]["id"]))] == world["child"]
    assert published[("token", "RFID:CARDA1")] == world["alpha"]
    assert published[("token", "RFID:CARDG1")] is None
    await Snapshot.update({Snapshot.organization: None}).where(kinds)  # as before the migration
    migration = importlib.import_module("plugins.roaming_ocpi.piccolo_migrations.roaming_ocpi_2026_12_06t22_00_01_000000")
    await migration.fill_snapshot_owners()
    assert await owners() == published
