"""Two CSMS installations roaming with each other over real HTTP on loopback: this process is the
CPO (NL/CPO), a second ``csms serve`` process is the eMSP (DE/EMS); both load the plugin through
its entry point. Registration, tokens, locations, a session with real-time authorization of the
eMSP's card, Session and CDR pushes, a remote start and stop through OCPI commands, and pushes
that wait while the eMSP is down."""

from __future__ import annotations

import pytest
import pytest_asyncio

from plugins.roaming_ocpi.tests.conftest import ocpi_server
from plugins.roaming_ocpi.tests.ocpi_check import assert_valid
from plugins.roaming_ocpi.tests.other_csms import OtherCsms
from plugins.roaming_ocpi.tests.stations import eventually, site_with_stations

pytestmark = pytest.mark.asyncio(loop_scope="module")

CPO = {"CSMS_OCPI_COUNTRY_CODE": "NL", "CSMS_OCPI_PARTY_ID": "CPO", "CSMS_OCPI_BUSINESS_NAME": "Roaming CPO",
       "CSMS_OCPI_ROLES": "CPO", "CSMS_OCPI_SYNC_INTERVAL": "0", "CSMS_OCPI_RETRY_DELAY": "0.3", "CSMS_OCPI_RETRY_MAX_DELAY": "1",
       "CSMS_OCPI_SESSION_UPDATE_INTERVAL": "0"}
EMSP = {"CSMS_OCPI_COUNTRY_CODE": "DE", "CSMS_OCPI_PARTY_ID": "EMS", "CSMS_OCPI_BUSINESS_NAME": "Roaming eMSP",
        "CSMS_OCPI_ROLES": "EMSP", "CSMS_OCPI_SYNC_INTERVAL": "0.5", "CSMS_OCPI_RETRY_DELAY": "0.3", "CSMS_OCPI_RETRY_MAX_DELAY": "1"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pair(tmp_path_factory):
    """The CPO in this process and the eMSP in another, the eMSP registered with the CPO."""
    emsp = OtherCsms(tmp_path_factory.mktemp("emsp"), EMSP)
    await emsp.start()
    try:
        async with ocpi_server(tmp_path_factory.mktemp("cpo"), CPO) as cpo:
            r = await cpo.api.post("/roaming/partners", json={"name": "the eMSP"})
            assert r.status_code == 201, r.text
            invite = r.json()
            r = await emsp.api.post("/tokens", json={"id_token": "EMSPCARD01", "label": "Card 1"})
            assert r.status_code in (200, 201), r.text
            r = await emsp.api.post("/roaming/partners", json={
                "name": "the CPO", "versions_url": invite["our_versions_url"], "token": invite["token_a"]})
            assert r.status_code == 201, r.text
            site, stations = await site_with_stations(cpo, "Roaming site", ["RCPO1"], evses=2)
            yield cpo, emsp, r.json()["id"], site, stations
            for st in stations:
                await st.close()
    finally:
        await emsp.stop()


async def test_registration(pair):
    cpo, emsp, emsp_partner_id, *_ = pair
    theirs = (await cpo.api.get("/roaming/partners")).json()["items"][0]
    assert theirs["status"] == "registered"
    assert theirs["roles"] == [{"role": "EMSP", "country_code": "DE", "party_id": "EMS", "name": "Roaming eMSP",
                                "business_details": {"name": "Roaming eMSP"}}]
    assert {(e["identifier"], e["role"]) for e in theirs["endpoints"]} >= {
        ("tokens", "SENDER"), ("locations", "RECEIVER"), ("sessions", "RECEIVER"), ("cdrs", "RECEIVER"),
        ("commands", "SENDER")}
    ours = (await emsp.api.get(f"/roaming/partners/{emsp_partner_id}")).json()
    assert ours["status"] == "registered" and ours["party_id"] == "CPO"
    assert ("commands", "RECEIVER") in {(e["identifier"], e["role"]) for e in ours["endpoints"]}


async def test_tokens_and_locations_exchanged(pair):
    cpo, emsp, _, site, _ = pair

    async def token_arrived():
        items = (await cpo.api.get("/roaming/tokens")).json()["items"]
        return [t for t in items if t["object_id"] == "EMSPCARD01"]
    token = (await eventually(token_arrived))[0]["object"]
    assert_valid("Token", token)
    assert (token["country_code"], token["party_id"], token["whitelist"]) == ("DE", "EMS", "ALLOWED_OFFLINE")
    await cpo.api.post("/roaming/sync")

    async def location_arrived():
        items = (await emsp.api.get("/roaming/locations")).json()["items"]
        return [x for x in items if x["object_id"] == str(site["id"])]
    loc = (await eventually(location_arrived))[0]["object"]
    assert_valid("Location", loc)
    assert loc["party_id"] == "CPO" and len(loc["evses"]) == 2
    # a blocked card is pushed as invalid
    await emsp.api.post("/tokens", json={"id_token": "EMSPBLOCK1", "status": "Blocked"})

    async def blocked():
        items = (await cpo.api.get("/roaming/tokens", params={"token": "EMSPBLOCK1"})).json()["items"]
        return items and items[0]["object"]["valid"] is False
    await eventually(blocked)


async def test_session_with_realtime_authorization(pair):
    cpo, emsp, _, site, stations = pair
    st = stations[0]
    await eventually(lambda: _token_known(cpo, "EMSPCARD01"))
    assert await st.authorize("EMSPCARD01") == "Accepted"
    assert await st.authorize("EMSPBLOCK1") != "Accepted"
    await st.start_session(1, "EMSPCARD01")
    await st.meter_values(1, advance_s=900)

    async def session_at_emsp(status: str):
        items = (await emsp.api.get("/roaming/sessions", params={"token": "EMSPCARD01"})).json()["items"]
        return [s for s in items if s["object"]["status"] == status and s["object"]["kwh"] > 0]
    active = (await eventually(lambda: session_at_emsp("ACTIVE")))[0]["object"]
    assert_valid("Session", active)
    assert active["auth_method"] == "AUTH_REQUEST" and active["authorization_reference"]
    assert active["location_id"] == str(site["id"]) and active["evse_uid"] == "RCPO1*1"
    await st.stop_session(1)
    done = (await eventually(lambda: session_at_emsp("COMPLETED")))[0]["object"]
    assert_valid("Session", done)

    async def cdr_at_emsp():
        return (await emsp.api.get("/roaming/cdrs", params={"token": "EMSPCARD01"})).json()["items"]
    cdr = (await eventually(cdr_at_emsp))[0]["object"]
    assert_valid("CDR", cdr)
    assert cdr["session_id"] == done["id"] and cdr["total_energy"] == pytest.approx(done["kwh"])
    # the eMSP lists its driver's roaming sessions and CDRs
    driver = (await emsp.api.post("/drivers", json={"name": "Dora"})).json()
    await emsp.api.patch("/tokens/EMSPCARD01", json={"driver": driver["id"]})
    assert (await emsp.api.get("/roaming/sessions", params={"driver": driver["id"]})).json()["total"] == 1
    assert (await emsp.api.get("/roaming/cdrs", params={"driver": driver["id"]})).json()["total"] == 1
    assert (await emsp.api.get("/roaming/cdrs", params={"driver": driver["id"] + 99})).json()["total"] == 0


async def _token_known(cpo, uid: str) -> bool:
    return bool((await cpo.api.get("/roaming/tokens", params={"token": uid})).json()["items"])


async def test_remote_start_and_stop_through_commands(pair):
    cpo, emsp, partner_id, site, stations = pair
    r = await emsp.api.post(f"/roaming/partners/{partner_id}/commands/START_SESSION", json={
        "id_token": "EMSPCARD01", "location_id": str(site["id"]), "evse_uid": "RCPO1*2"})
    assert r.status_code == 200, r.text
    command = r.json()
    assert command["response"]["result"] == "ACCEPTED"
    assert_valid("START_SESSION", command["request"])

    async def result(command_id: int):
        row = (await emsp.api.get(f"/roaming/commands/{command_id}")).json()
        return row["result"]
    assert (await eventually(lambda: result(command["id"])))["result"] == "ACCEPTED"

    async def remote_session():
        items = (await emsp.api.get("/roaming/sessions")).json()["items"]
        return [s for s in items if s["object"]["auth_method"] == "COMMAND" and s["object"]["status"] == "ACTIVE"]
    session = (await eventually(remote_session))[0]["object"]
    assert session["evse_uid"] == "RCPO1*2"
    assert session["authorization_reference"] == command["request"]["authorization_reference"]
    r = await emsp.api.post(f"/roaming/partners/{partner_id}/commands/STOP_SESSION",
                            json={"session_id": session["id"]})
    assert r.json()["response"]["result"] == "ACCEPTED"
    assert (await eventually(lambda: result(r.json()["id"])))["result"] == "ACCEPTED"

    async def completed():
        items = (await emsp.api.get("/roaming/sessions")).json()["items"]
        return [s for s in items if s["object"]["id"] == session["id"] and s["object"]["status"] == "COMPLETED"]
    await eventually(completed)


async def test_pushes_survive_the_emsp_being_down(pair):
    cpo, emsp, _, site, stations = pair
    await emsp.stop()
    try:
        await stations[0].status(2, "Unavailable")

        async def waiting():
            items = (await cpo.api.get("/roaming/outbox", params={"status": "pending"})).json()["items"]
            return [i for i in items if i["attempts"] >= 2]
        await eventually(waiting)
    finally:
        await emsp.start()

    async def status_at_emsp():
        items = (await emsp.api.get("/roaming/locations")).json()["items"]
        loc = next(x["object"] for x in items if x["object_id"] == str(site["id"]))
        return next(e["status"] for e in loc["evses"] if e["uid"] == "RCPO1*2") == "INOPERATIVE"
    await eventually(status_at_emsp, timeout=30)
