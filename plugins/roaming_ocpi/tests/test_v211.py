"""OCPI 2.1.1 partners against our CPO (both databases): a scripted 2.1.1 eMSP registers with us
in the 2.1.1 credentials shape with unencoded tokens; Locations pushed and served, its Token
authorizing at our station, the Session and CDR pushed to it and a START_SESSION it sends, all
in 2.1.1 shapes checked with ocpi-types' 2.1.1 models. We register with a partner that offers only
2.1.1 and keep the version negotiated."""

from __future__ import annotations

import httpx
import pytest
import pytest_asyncio

from plugins.roaming_ocpi.tests.fake_partner import fake_partner, now
from plugins.roaming_ocpi.tests.ocpi_check import assert_envelope, assert_valid_211
from plugins.roaming_ocpi.tests.stations import eventually, site_with_stations
from plugins.roaming_ocpi.tests.test_transport import invite, ocpi

pytestmark = pytest.mark.asyncio(loop_scope="module")


def raw(token: str) -> dict[str, str]:
    """OCPI 2.1.1's header: the token as it is, not Base64."""
    return {"Authorization": f"Token {token}"}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def emsp(server):
    """A scripted 2.1.1 eMSP registered with our CPO, and a published site with a 2.0.1 station."""
    async with fake_partner(version="2.1.1", party_id="OLD") as partner:
        token_a, versions = await invite(server)
        async with httpx.AsyncClient() as c:
            listed = assert_envelope((await c.get(versions, headers=raw(token_a))).json())
            assert [v["version"] for v in listed] == ["2.2.1", "2.1.1"]
            url = next(v["url"] for v in listed if v["version"] == "2.1.1")
            details = assert_envelope((await c.get(url, headers=raw(token_a))).json())
            assert details["version"] == "2.1.1"
            assert all(set(e) == {"identifier", "url"} for e in details["endpoints"]), details
            assert {e["identifier"] for e in details["endpoints"]} == {
                "credentials", "locations", "sessions", "cdrs", "tariffs", "tokens", "commands"}
            cred_url = next(e["url"] for e in details["endpoints"] if e["identifier"] == "credentials")
            r = await c.post(cred_url, json=partner.credentials(), headers=raw(token_a))
        ours = assert_envelope(r.json())
        assert_valid_211("Credentials", ours)
        assert (ours["country_code"], ours["party_id"]) == ("NL", "CPO")
        partner.token_c = ours["token"]
        partner.details = details
        site, stations = await site_with_stations(server, "Old school", ["OLD1"])
        partner.site, partner.stations = site, stations
        yield partner
        for st in stations:
            await st.close()


async def test_registered_in_211(server, emsp):
    partners = (await server.api.get("/roaming/partners")).json()["items"]
    row = next(p for p in partners if p["party_id"] == "OLD")
    assert row["status"] == "registered" and row["version"] == "2.1.1"
    assert row["roles"][0]["role"] == "EMSP"
    # our calls to it carry the token unencoded (the fake refuses Base64 in 2.1.1 mode)
    assert emsp.requests and all(r.headers["authorization"] == "Token fake-token-b" for r in emsp.requests)
    assert not any("ocpi-to-party-id" in r.headers for r in emsp.requests)  # no routing in 2.1.1
    # a Base64 token is refused on 2.2.1 paths as before, the raw one works on 2.1.1 paths
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{ocpi(server)}/cpo/2.1.1/locations", headers=raw(emsp.token_c))
    assert r.status_code == 200, r.text


async def test_locations_pushed_and_served_in_211(server, emsp):
    await server.api.post("/roaming/sync")
    site_path = f"/ocpi/2.1.1/locations/NL/CPO/{emsp.site['id']}"
    puts = await emsp.wait_for("PUT", "locations", match=lambda r: r.path == site_path)
    assert_valid_211("Location", puts[-1].body)
    assert puts[-1].body["type"] == "UNKNOWN"
    evse_put = (await emsp.wait_for("PUT", "locations", match=lambda r: r.path == site_path + "/OLD1*1"))[-1]
    assert_valid_211("EVSE", evse_put.body)
    connector = evse_put.body["connectors"][0]
    assert connector["voltage"] > 0 and connector["amperage"] > 0 and "max_voltage" not in connector
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{ocpi(server)}/cpo/2.1.1/locations", headers=raw(emsp.token_c))
        items = assert_envelope(r.json())
        r = await c.get(f"{ocpi(server)}/cpo/2.1.1/locations/{emsp.site['id']}/OLD1*1", headers=raw(emsp.token_c))
        evse = assert_envelope(r.json())
    for loc in items:
        assert_valid_211("Location", loc)
    assert_valid_211("EVSE", evse)
    assert evse["uid"] == "OLD1*1"
    # a status change is a PATCH of the EVSE
    await emsp.stations[0].status(1, "Unavailable")
    patches = await emsp.wait_for("PATCH", "locations", match=lambda r: r.body.get("status") == "INOPERATIVE")
    assert set(patches[-1].body) == {"status", "last_updated"}
    await emsp.stations[0].status(1, "Available")


async def test_token_session_and_cdr_in_211(server, emsp):
    token = {"uid": "OLDCARD1", "type": "RFID", "auth_id": "DE-OLD-C00001", "issuer": "Old eMSP",
             "valid": True, "whitelist": "ALLOWED", "last_updated": now()}
    assert_valid_211("Token", token)
    async with httpx.AsyncClient() as c:
        r = await c.put(f"{ocpi(server)}/cpo/2.1.1/tokens/DE/OLD/OLDCARD1", json=token, headers=raw(emsp.token_c))
        assert r.status_code in (200, 201), r.text
        got = assert_envelope((await c.get(f"{ocpi(server)}/cpo/2.1.1/tokens/DE/OLD/OLDCARD1",
                                           headers=raw(emsp.token_c))).json())
    assert_valid_211("Token", got)
    assert got["auth_id"] == "DE-OLD-C00001"
    stored = (await server.api.get("/roaming/tokens", params={"token": "OLDCARD1"})).json()["items"][0]["object"]
    assert (stored["country_code"], stored["party_id"], stored["contract_id"]) == ("DE", "OLD", "DE-OLD-C00001")
    st = emsp.stations[0]
    assert await st.authorize("OLDCARD1") == "Accepted"
    await st.start_session(1, "OLDCARD1")
    await st.meter_values(1, advance_s=600)
    put = (await emsp.wait_for("PUT", "sessions"))[-1]
    assert_valid_211("Session", put.body)
    assert put.body["auth_id"] == "DE-OLD-C00001" and put.body["location"]["id"] == str(emsp.site["id"])
    assert [e["uid"] for e in put.body["location"]["evses"]] == ["OLD1*1"]
    await st.stop_session(1)
    cdr = (await emsp.wait_for("POST", "cdrs"))[-1].body
    assert_valid_211("CDR", cdr)
    assert cdr["auth_id"] == "DE-OLD-C00001" and cdr["location"]["evses"][0]["uid"] == "OLD1*1"
    assert isinstance(cdr["total_cost"], (int, float)) and cdr["stop_date_time"]
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{ocpi(server)}/cpo/2.1.1/cdrs", headers=raw(emsp.token_c))
    for item in assert_envelope(r.json()):
        assert_valid_211("CDR", item)


async def test_start_session_command_in_211(server, emsp):
    body = {"response_url": f"{emsp.base}/ocpi/2.1.1/commands/START_SESSION/42",
            "token": {"uid": "OLDCARD1", "type": "RFID", "auth_id": "DE-OLD-C00001", "issuer": "Old eMSP",
                      "valid": True, "whitelist": "ALLOWED", "last_updated": now()},
            "location_id": str(emsp.site["id"]), "evse_uid": "OLD1*1"}
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{ocpi(server)}/cpo/2.1.1/commands/START_SESSION", json=body, headers=raw(emsp.token_c))
    answer = assert_envelope(r.json())
    assert answer == {"result": "ACCEPTED"}  # the 2.1.1 CommandResponse: no timeout
    result = (await emsp.wait_for("POST", "commands/START_SESSION/42"))[-1].body
    assert set(result) == {"result"} and result["result"] in ("ACCEPTED", "REJECTED", "TIMEOUT")
    # CANCEL_RESERVATION does not exist in 2.1.1
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{ocpi(server)}/cpo/2.1.1/commands/CANCEL_RESERVATION",
                         json={"response_url": f"{emsp.base}/x", "reservation_id": "1"}, headers=raw(emsp.token_c))
    assert assert_envelope(r.json()) == {"result": "NOT_SUPPORTED"}


async def test_we_register_with_a_211_only_partner(server):
    async with fake_partner(version="2.1.1", role="CPO", party_id="OCP", token_b="token-a-211",
                            accepted={"token-a-211"}) as cpo:
        r = await server.api.post("/roaming/partners", json={
            "name": "old CPO", "versions_url": cpo.versions_url, "token": "token-a-211", "role_211": "CPO"})
        assert r.status_code == 201, r.text
        row = r.json()
        assert row["status"] == "registered" and row["version"] == "2.1.1" and row["role_211"] == "CPO"
        assert row["roles"][0]["role"] == "CPO" and row["party_id"] == "OCP"
        posted = next(x for x in cpo.requests if x.method == "POST" and x.path.endswith("/credentials"))
        assert_valid_211("Credentials", posted.body)
        assert posted.headers["authorization"] == "Token token-a-211"
        assert {(e["identifier"], e["role"]) for e in row["endpoints"]} >= {("locations", "SENDER"),
                                                                            ("tokens", "RECEIVER")}
        await server.api.delete(f"/roaming/partners/{row['id']}")


async def test_a_211_party_in_two_roles(server):
    """OCPI 2.1.1 credentials carry one party and no role, and a 2.1.1 version details one URL per
    module (no interface role): a party that is CPO and eMSP offers a versions URL per role
    (credentials.md: ``https://example.com/ocpi/cpo/``). We connect to each as its own partner with
    its role; both connections write for the same party, each only through its role's modules."""
    async with fake_partner(version="2.1.1", role="CPO", party_id="TWO", token_b="two-cpo-a",
                            accepted={"two-cpo-a"}) as as_cpo, \
            fake_partner(version="2.1.1", role="EMSP", party_id="TWO", token_b="two-emsp-a",
                         accepted={"two-emsp-a"}) as as_emsp:
        rows = []
        for fake, role in ((as_cpo, "CPO"), (as_emsp, "EMSP")):
            r = await server.api.post("/roaming/partners", json={
                "name": f"two as {role}", "versions_url": fake.versions_url, "token": fake.token_b, "role_211": role})
            assert r.status_code == 201, r.text
            rows.append(r.json())
        assert [(x["status"], x["version"], x["roles"][0]["role"], x["country_code"], x["party_id"]) for x in rows] == [
            ("registered", "2.1.1", "CPO", "DE", "TWO"), ("registered", "2.1.1", "EMSP", "DE", "TWO")]
        token = {"uid": "TWOCARD1", "type": "RFID", "auth_id": "DE-TWO-C00001", "issuer": "Two", "valid": True,
                 "whitelist": "ALLOWED", "last_updated": now()}
        location = {"id": "TWOLOC1", "type": "ON_STREET", "name": "Two", "address": "Damrak 2", "city": "Amsterdam",
                    "postal_code": "1012", "country": "NLD",
                    "coordinates": {"latitude": "52.370216", "longitude": "4.895168"}, "time_zone": "Europe/Amsterdam",
                    "evses": [], "last_updated": now()}
        assert_valid_211("Token", token)
        async with httpx.AsyncClient() as c:
            # the eMSP connection sends the party's tokens, the CPO connection its Locations
            r = await c.put(f"{ocpi(server)}/cpo/2.1.1/tokens/DE/TWO/TWOCARD1", json=token,
                            headers=raw(as_emsp.their_token))
            assert r.status_code == 201, r.text
            r = await c.put(f"{ocpi(server)}/emsp/2.1.1/locations/DE/TWO/TWOLOC1", json=location,
                            headers=raw(as_cpo.their_token))
            assert r.status_code == 201, r.text
            # each only in its role, and only for its party
            r = await c.put(f"{ocpi(server)}/cpo/2.1.1/tokens/DE/TWO/TWOCARD1", json=token,
                            headers=raw(as_cpo.their_token))
            assert r.status_code == 403, r.text
            r = await c.put(f"{ocpi(server)}/cpo/2.1.1/tokens/DE/OTH/TWOCARD1", json=token,
                            headers=raw(as_emsp.their_token))
            assert r.status_code == 404 and assert_envelope(r.json(), 2001) is None
            assert "DE/OTH is not a party of this partner (its parties: DE/TWO)" in r.json()["status_message"]
        kept = (await server.api.get("/roaming/locations", params={"partner": rows[0]["id"]})).json()["items"]
        assert [(x["country_code"], x["party_id"], x["object_id"]) for x in kept] == [("DE", "TWO", "TWOLOC1")]
        kept = (await server.api.get("/roaming/tokens", params={"partner": rows[1]["id"]})).json()["items"]
        assert [(x["country_code"], x["party_id"], x["object_id"]) for x in kept] == [("DE", "TWO", "TWOCARD1")]
        for row in rows:
            await server.api.delete(f"/roaming/partners/{row['id']}")
