"""The eMSP role against a scripted CPO over real HTTP: our tokens served and authorized in real
time, the CPO's Locations, Sessions, CDRs and Tariffs received (and refused with the spec's
codes when malformed), command results received."""

from __future__ import annotations

import copy

import httpx
import pytest
import pytest_asyncio

from plugins.roaming_ocpi.tests.fake_partner import fake_partner, now
from plugins.roaming_ocpi.tests.ocpi_check import assert_envelope, assert_valid
from plugins.roaming_ocpi.tests.test_transport import ocpi, register_fake, tok

pytestmark = pytest.mark.asyncio(loop_scope="module")

LOCATION = {
    "country_code": "DE", "party_id": "FCP", "id": "LOC1", "publish": True, "name": "Gent Zuid",
    "address": "F.Rooseveltlaan 3A", "city": "Gent", "postal_code": "9000", "country": "BEL",
    "coordinates": {"latitude": "51.047599", "longitude": "3.729944"}, "time_zone": "Europe/Brussels",
    "evses": [{"uid": "3256", "evse_id": "BE*BEC*E041503001", "status": "AVAILABLE", "capabilities": ["RESERVABLE"],
               "connectors": [{"id": "1", "standard": "IEC_62196_T2", "format": "CABLE", "power_type": "AC_3_PHASE",
                               "max_voltage": 220, "max_amperage": 16, "tariff_ids": ["11"],
                               "last_updated": "2015-03-16T10:10:02Z"}],
               "last_updated": "2015-06-28T08:12:01Z"}],
    "last_updated": "2015-06-29T20:39:09Z"}
SESSION = {
    "country_code": "DE", "party_id": "FCP", "id": "101", "start_date_time": "2015-06-29T22:39:09Z", "kwh": 0.0,
    "cdr_token": {"country_code": "NL", "party_id": "CPO", "uid": "OURCARD1", "type": "RFID",
                  "contract_id": "NL-CPO-COURCARD1"},
    "auth_method": "WHITELIST", "location_id": "LOC1", "evse_uid": "3256", "connector_id": "1", "currency": "EUR",
    "status": "PENDING", "last_updated": "2015-06-29T22:39:09Z"}
CDR = {
    "country_code": "DE", "party_id": "FCP", "id": "12345", "start_date_time": "2015-06-29T21:39:09Z",
    "end_date_time": "2015-06-29T23:37:32Z", "session_id": "101", "cdr_token": SESSION["cdr_token"],
    "auth_method": "WHITELIST", "cdr_location": {
        "id": "LOC1", "name": "Gent Zuid", "address": "F.Rooseveltlaan 3A", "city": "Gent", "postal_code": "9000",
        "country": "BEL", "coordinates": {"latitude": "3.729944", "longitude": "51.047599"}, "evse_uid": "3256",
        "evse_id": "BE*BEC*E041503003", "connector_id": "1", "connector_standard": "IEC_62196_T2",
        "connector_format": "SOCKET", "connector_power_type": "AC_1_PHASE"},
    "currency": "EUR", "charging_periods": [{"start_date_time": "2015-06-29T21:39:09Z", "dimensions": [
        {"type": "TIME", "volume": 1.973}], "tariff_id": "12"}],
    "total_cost": {"excl_vat": 4.00, "incl_vat": 4.40}, "total_energy": 15.342, "total_time": 1.973,
    "last_updated": "2015-06-29T22:01:13Z"}
TARIFF = {"country_code": "DE", "party_id": "FCP", "id": "12", "currency": "EUR", "elements": [{"price_components": [
    {"type": "TIME", "price": 2.00, "vat": 10.0, "step_size": 300}]}], "last_updated": "2015-06-29T20:39:09Z"}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cpo(server):
    """A scripted CPO (DE/FCP) registered with us, and one of our cards."""
    async with fake_partner(role="CPO", party_id="FCP") as partner:
        await register_fake(server, partner)
        r = await server.api.post("/tokens", json={"id_token": "OURCARD1", "label": "Visual 1"})
        assert r.status_code in (200, 201), r.text
        yield partner


async def test_our_tokens_pushed_and_served(server, cpo):
    await server.api.post("/roaming/sync")
    put = (await cpo.wait_for("PUT", "tokens/NL/CPO/OURCARD1"))[-1]
    assert put.query == "type=RFID"
    assert_valid("Token", put.body)
    assert put.body["whitelist"] == "ALLOWED_OFFLINE" and put.body["valid"] is True
    assert put.body["visual_number"] == "Visual 1"
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{ocpi(server)}/emsp/2.2.1/tokens", headers=tok(cpo.token_c))
        tokens = assert_envelope(r.json())
        assert r.headers["x-total-count"] == str(len(tokens)) or "link" in r.headers
        for t in tokens:
            assert_valid("Token", t)
    # a block is pushed as valid=false
    await server.api.patch("/tokens/OURCARD1", json={"status": "Blocked"})
    await server.api.post("/roaming/sync")
    put = (await cpo.wait_for("PUT", "tokens/NL/CPO/OURCARD1", 2))[-1]
    assert put.body["valid"] is False
    await server.api.patch("/tokens/OURCARD1", json={"status": "Accepted"})
    await server.api.post("/roaming/sync")
    await cpo.wait_for("PUT", "tokens/NL/CPO/OURCARD1", 3)


async def test_realtime_authorization_of_our_tokens(server, cpo):
    url = f"{ocpi(server)}/emsp/2.2.1/tokens"
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{url}/OURCARD1/authorize", json={"location_id": "LOC1", "evse_uids": ["3256"]},
                         headers=tok(cpo.token_c))
        info = assert_envelope(r.json())
        assert_valid("AuthorizationInfo", info)
        assert info["allowed"] == "ALLOWED" and info["location"] == {"location_id": "LOC1", "evse_uids": ["3256"]}
        assert info["authorization_reference"]
        r = await c.post(f"{url}/OURCARD1/authorize?type=RFID", headers=tok(cpo.token_c))
        assert assert_envelope(r.json())["allowed"] == "ALLOWED"
        r = await c.post(f"{url}/NOSUCHCARD/authorize", headers=tok(cpo.token_c))
        assert r.status_code == 404 and assert_envelope(r.json(), 2004) is None
        r = await c.post(f"{url}/OURCARD1/authorize", json={"evse_uids": ["x"]}, headers=tok(cpo.token_c))
        assert assert_envelope(r.json(), 2001) is None
        await server.api.patch("/tokens/OURCARD1", json={"status": "Blocked"})
        r = await c.post(f"{url}/OURCARD1/authorize", headers=tok(cpo.token_c))
        assert assert_envelope(r.json())["allowed"] == "BLOCKED"
        await server.api.patch("/tokens/OURCARD1", json={"status": "Accepted"})


async def test_locations_received(server, cpo):
    base = f"{ocpi(server)}/emsp/2.2.1/locations/DE/FCP/LOC1"
    async with httpx.AsyncClient() as c:
        r = await c.put(base, json=LOCATION, headers=tok(cpo.token_c))
        assert r.status_code == 201 and assert_envelope(r.json()) is None
        r = await c.patch(f"{base}/3256", json={"status": "CHARGING", "last_updated": "2015-06-30T10:00:00Z"},
                          headers=tok(cpo.token_c))
        assert_envelope(r.json())
        stored = assert_envelope((await c.get(base, headers=tok(cpo.token_c))).json())
        assert_valid("Location", stored)
        assert stored["evses"][0]["status"] == "CHARGING" and stored["last_updated"] == "2015-06-30T10:00:00Z"
        new_evse = copy.deepcopy(LOCATION["evses"][0]) | {"uid": "3257", "last_updated": "2015-07-01T00:00:00Z"}
        r = await c.put(f"{base}/3257", json=new_evse, headers=tok(cpo.token_c))
        assert r.status_code == 201
        connector = LOCATION["evses"][0]["connectors"][0] | {"id": "2", "last_updated": "2015-07-02T00:00:00Z"}
        r = await c.put(f"{base}/3257/2", json=connector, headers=tok(cpo.token_c))
        assert r.status_code == 201
        stored = assert_envelope((await c.get(base, headers=tok(cpo.token_c))).json())
        assert_valid("Location", stored)
        assert [e["uid"] for e in stored["evses"]] == ["3256", "3257"]
        assert stored["evses"][1]["last_updated"] == stored["last_updated"] == "2015-07-02T00:00:00Z"
        got = assert_envelope((await c.get(f"{base}/3257/2", headers=tok(cpo.token_c))).json())
        assert got["id"] == "2"
        # refused: missing fields, bad enums and coordinates, id mismatch, PATCH without last_updated
        for bad in ({k: v for k, v in LOCATION.items() if k != "coordinates"},
                    LOCATION | {"coordinates": {"latitude": "51.0", "longitude": "3.7"}},
                    LOCATION | {"id": "OTHER"}, LOCATION | {"evses": [LOCATION["evses"][0] | {"status": "BROKEN"}]}):
            r = await c.put(base, json=bad, headers=tok(cpo.token_c))
            assert r.status_code == 200 and assert_envelope(r.json(), 2001) is None, bad
        r = await c.patch(f"{base}/3256", json={"status": "AVAILABLE"}, headers=tok(cpo.token_c))
        assert assert_envelope(r.json(), 2001) is None
        # unknown objects: 404 (GET and PATCH); other parties' URLs: 404
        r = await c.get(f"{ocpi(server)}/emsp/2.2.1/locations/DE/FCP/NOPE", headers=tok(cpo.token_c))
        assert r.status_code == 404 and assert_envelope(r.json(), 2003) is None
        r = await c.patch(f"{base}/9999", json={"status": "AVAILABLE", "last_updated": now()},
                          headers=tok(cpo.token_c))
        assert r.status_code == 404
        r = await c.put(f"{ocpi(server)}/emsp/2.2.1/locations/FR/ZZZ/LOC1", json=LOCATION, headers=tok(cpo.token_c))
        assert r.status_code == 404
    rows = (await server.api.get("/roaming/locations")).json()["items"]
    assert [x["object_id"] for x in rows] == ["LOC1"]


async def test_sessions_received(server, cpo):
    base = f"{ocpi(server)}/emsp/2.2.1/sessions/DE/FCP/101"
    period = {"start_date_time": "2015-06-29T22:40:00Z", "dimensions": [{"type": "ENERGY", "volume": 1.5}]}
    async with httpx.AsyncClient() as c:
        r = await c.put(base, json=SESSION, headers=tok(cpo.token_c))
        assert r.status_code == 201
        for _ in range(2):  # PATCH appends charging periods
            r = await c.patch(base, json={"kwh": 1.5, "status": "ACTIVE", "charging_periods": [period],
                                          "last_updated": now()}, headers=tok(cpo.token_c))
            assert_envelope(r.json())
        stored = assert_envelope((await c.get(base, headers=tok(cpo.token_c))).json())
        assert_valid("Session", stored)
        assert len(stored["charging_periods"]) == 2 and stored["status"] == "ACTIVE"
        r = await c.put(base, json=SESSION | {"charging_periods": [period]}, headers=tok(cpo.token_c))
        assert r.status_code == 200  # PUT replaces, periods included
        assert len(assert_envelope((await c.get(base, headers=tok(cpo.token_c))).json())["charging_periods"]) == 1
        r = await c.put(base, json=SESSION | {"kwh": "lots"}, headers=tok(cpo.token_c))
        assert assert_envelope(r.json(), 2001) is None
        r = await c.patch(f"{base}9", json={"kwh": 1, "last_updated": now()}, headers=tok(cpo.token_c))
        assert r.status_code == 404
    found = (await server.api.get("/roaming/sessions", params={"token": "OURCARD1"})).json()
    assert found["total"] == 1


async def test_cdrs_received(server, cpo):
    url = f"{ocpi(server)}/emsp/2.2.1/cdrs"
    async with httpx.AsyncClient() as c:
        r = await c.post(url, json=CDR, headers=tok(cpo.token_c))
        assert r.status_code == 201 and assert_envelope(r.json()) is None
        location = r.headers["location"]
        got = assert_envelope((await c.get(location, headers=tok(cpo.token_c))).json())
        assert_valid("CDR", got)
        assert got == CDR
        r = await c.post(url, json=CDR, headers=tok(cpo.token_c))  # a repeated POST (a retry): same answer
        assert r.status_code == 201 and r.headers["location"] == location
        r = await c.post(url, json=CDR | {"total_cost": {"excl_vat": 1}}, headers=tok(cpo.token_c))
        assert assert_envelope(r.json(), 2000) is None  # CDRs cannot be changed
        r = await c.post(url, json=CDR | {"id": "X2", "charging_periods": []}, headers=tok(cpo.token_c))
        assert assert_envelope(r.json(), 2001) is None
        r = await c.get(f"{url}/999999", headers=tok(cpo.token_c))
        assert r.status_code == 404
    assert (await server.api.get("/roaming/cdrs", params={"token": "OURCARD1"})).json()["total"] == 1


async def test_tariffs_received(server, cpo):
    base = f"{ocpi(server)}/emsp/2.2.1/tariffs/DE/FCP/12"
    async with httpx.AsyncClient() as c:
        assert (await c.put(base, json=TARIFF, headers=tok(cpo.token_c))).status_code == 201
        assert_valid("Tariff", assert_envelope((await c.get(base, headers=tok(cpo.token_c))).json()))
        r = await c.put(base, json=TARIFF | {"elements": []}, headers=tok(cpo.token_c))
        assert assert_envelope(r.json(), 2001) is None
        assert (await c.delete(base, headers=tok(cpo.token_c))).status_code == 200
        assert (await c.get(base, headers=tok(cpo.token_c))).status_code == 404


async def test_commands_sent_and_results_received(server, cpo):
    partner = next(p for p in (await server.api.get("/roaming/partners")).json()["items"] if p["party_id"] == "FCP")
    r = await server.api.post(f"/roaming/partners/{partner['id']}/commands/START_SESSION",
                              json={"id_token": "OURCARD1", "location_id": "LOC1", "evse_uid": "3256"})
    assert r.status_code == 200, r.text
    record = r.json()
    sent = cpo.pushes("POST", "commands/START_SESSION")[-1].body
    assert_valid("START_SESSION", sent)
    assert sent["token"]["uid"] == "OURCARD1" and sent["response_url"].startswith(f"{ocpi(server)}/emsp/2.2.1/")
    async with httpx.AsyncClient() as c:
        r = await c.post(sent["response_url"], json={"result": "ACCEPTED"}, headers=tok(cpo.token_c))
        assert_envelope(r.json())
        r = await c.post(sent["response_url"], json={"result": "MAYBE"}, headers=tok(cpo.token_c))
        assert assert_envelope(r.json(), 2001) is None
        r = await c.post(sent["response_url"] + "x", json={"result": "ACCEPTED"}, headers=tok(cpo.token_c))
        assert r.status_code == 404
    row = (await server.api.get(f"/roaming/commands/{record['id']}")).json()
    assert row["result"] == {"result": "ACCEPTED"}
    r = await server.api.post(f"/roaming/partners/{partner['id']}/commands/START_SESSION",
                              json={"id_token": "NOT-OURS", "location_id": "LOC1"})
    assert r.status_code == 400
