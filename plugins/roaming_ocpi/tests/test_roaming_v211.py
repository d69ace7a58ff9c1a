"""Two installations roaming over OCPI 2.1.1: this process is the CPO (NL/CPO, offering 2.2.1 and
2.1.1, on SQLite and on PostgreSQL), a second ``csms serve`` process the eMSP (DE/OLD) that offers
only 2.1.1 (``CSMS_OCPI_VERSIONS=2.1.1``). The eMSP registers, so both sides settle on 2.1.1;
its card authorizes at our station, Locations, the Session and the CDR reach it, and a remote
start through a 2.1.1 START_SESSION works."""

from __future__ import annotations

import pytest
import pytest_asyncio

from plugins.roaming_ocpi.tests.conftest import ocpi_server
from plugins.roaming_ocpi.tests.ocpi_check import assert_valid
from plugins.roaming_ocpi.tests.other_csms import OtherCsms
from plugins.roaming_ocpi.tests.stations import eventually, site_with_stations

pytestmark = pytest.mark.asyncio(loop_scope="module")

CPO = {"CSMS_OCPI_COUNTRY_CODE": "NL", "CSMS_OCPI_PARTY_ID": "CPO", "CSMS_OCPI_BUSINESS_NAME": "Roaming CPO",
       "CSMS_OCPI_ROLES": "CPO", "CSMS_OCPI_SYNC_INTERVAL": "0", "CSMS_OCPI_RETRY_DELAY": "0.3",
       "CSMS_OCPI_RETRY_MAX_DELAY": "1", "CSMS_OCPI_SESSION_UPDATE_INTERVAL": "0"}
EMSP = {"CSMS_OCPI_COUNTRY_CODE": "DE", "CSMS_OCPI_PARTY_ID": "OLD", "CSMS_OCPI_BUSINESS_NAME": "Old eMSP",
        "CSMS_OCPI_ROLES": "EMSP", "CSMS_OCPI_VERSIONS": "2.1.1", "CSMS_OCPI_SYNC_INTERVAL": "0.5",
        "CSMS_OCPI_RETRY_DELAY": "0.3", "CSMS_OCPI_RETRY_MAX_DELAY": "1"}


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgres"])
async def pair(request, tmp_path_factory):
    emsp = OtherCsms(tmp_path_factory.mktemp("emsp211"), EMSP)
    await emsp.start()
    try:
        async with ocpi_server(tmp_path_factory.mktemp("cpo211"), CPO, backend=request.param) as cpo:
            r = await cpo.api.post("/roaming/partners", json={"name": "the old eMSP"})
            assert r.status_code == 201, r.text
            invite = r.json()
            r = await emsp.api.post("/tokens", json={"id_token": "OLDCARD01", "label": "Card 1"})
            assert r.status_code in (200, 201), r.text
            r = await emsp.api.post("/roaming/partners", json={
                "name": "the CPO", "versions_url": invite["our_versions_url"], "token": invite["token_a"]})
            assert r.status_code == 201, r.text
            site, stations = await site_with_stations(cpo, "Roaming 2.1.1", ["R211"], evses=2)
            yield cpo, emsp, r.json()["id"], site, stations
            for st in stations:
                await st.close()
    finally:
        await emsp.stop()


async def test_both_settle_on_211(pair):
    cpo, emsp, partner_id, *_ = pair
    theirs = (await cpo.api.get("/roaming/partners")).json()["items"][0]
    assert theirs["status"] == "registered" and theirs["version"] == "2.1.1"
    assert [(r["role"], r["country_code"], r["party_id"]) for r in theirs["roles"]] == [("EMSP", "DE", "OLD")]
    ours = (await emsp.api.get(f"/roaming/partners/{partner_id}")).json()
    assert ours["status"] == "registered" and ours["version"] == "2.1.1" and ours["party_id"] == "CPO"
    assert ("commands", "RECEIVER") in {(e["identifier"], e["role"]) for e in ours["endpoints"]}


async def test_tokens_locations_session_and_cdr(pair):
    cpo, emsp, _, site, stations = pair

    async def token_arrived():
        items = (await cpo.api.get("/roaming/tokens", params={"token": "OLDCARD01"})).json()["items"]
        return items
    token = (await eventually(token_arrived))[0]["object"]
    assert_valid("Token", token)  # kept in our (2.2.1) model
    assert (token["country_code"], token["party_id"]) == ("DE", "OLD") and token["contract_id"]
    await cpo.api.post("/roaming/sync")

    async def location_arrived():
        items = (await emsp.api.get("/roaming/locations")).json()["items"]
        return [x for x in items if x["object_id"] == str(site["id"]) and len(x["object"].get("evses", [])) == 2]
    loc = (await eventually(location_arrived))[0]["object"]
    assert loc["party_id"] == "CPO" and loc["evses"][0]["connectors"][0]["max_voltage"] > 0
    st = stations[0]
    assert await st.authorize("OLDCARD01") == "Accepted"
    await st.start_session(1, "OLDCARD01")
    await st.meter_values(1, advance_s=900)
    await st.stop_session(1)

    async def completed():
        items = (await emsp.api.get("/roaming/sessions", params={"token": "OLDCARD01"})).json()["items"]
        return [s for s in items if s["object"]["status"] == "COMPLETED" and s["object"]["kwh"] > 0]
    session = (await eventually(completed))[0]["object"]
    assert session["cdr_token"]["uid"] == "OLDCARD01"  # the 2.1.1 auth_id resolved to the eMSP's own card
    assert session["location_id"] == str(site["id"]) and session["evse_uid"] == "R211*1"

    async def cdr_at_emsp():
        return (await emsp.api.get("/roaming/cdrs", params={"token": "OLDCARD01"})).json()["items"]
    cdr = (await eventually(cdr_at_emsp))[0]["object"]
    assert cdr["total_energy"] == pytest.approx(session["kwh"])
    assert cdr["cdr_location"]["evse_uid"] == "R211*1"


async def test_remote_start_through_211_command(pair):
    cpo, emsp, partner_id, site, stations = pair
    r = await emsp.api.post(f"/roaming/partners/{partner_id}/commands/START_SESSION", json={
        "id_token": "OLDCARD01", "location_id": str(site["id"]), "evse_uid": "R211*2"})
    assert r.status_code == 200, r.text
    command = r.json()
    assert command["response"]["result"] == "ACCEPTED"

    async def result():
        return (await emsp.api.get(f"/roaming/commands/{command['id']}")).json()["result"]
    assert (await eventually(result))["result"] == "ACCEPTED"

    async def remote_session():
        items = (await emsp.api.get("/roaming/sessions")).json()["items"]
        return [s for s in items if s["object"]["evse_uid"] == "R211*2" and s["object"]["status"] == "ACTIVE"]
    await eventually(remote_session)
    # CANCEL_RESERVATION does not exist in 2.1.1: refused before anything is sent
    r = await emsp.api.post(f"/roaming/partners/{partner_id}/commands/CANCEL_RESERVATION",
                            json={"reservation_id": "1"})
    assert r.status_code in (400, 422), r.text
