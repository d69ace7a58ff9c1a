"""A hub partner (roles CPO, EMSP and HUB on one connection) over real HTTP: every role kept and
shown, Locations broadcast to the hub, Hub Client Info received, tokens of parties behind the hub
authorizing at our stations with Sessions and CDRs routed back to their party by ``OCPI-to-*``,
and nothing routed to a party the hub reports as not CONNECTED."""

from __future__ import annotations

import httpx
import pytest
import pytest_asyncio

from plugins.roaming_ocpi.tests.fake_partner import fake_partner, now
from plugins.roaming_ocpi.tests.ocpi_check import assert_envelope, assert_valid
from plugins.roaming_ocpi.tests.stations import eventually, site_with_stations
from plugins.roaming_ocpi.tests.test_admin import logged_in
from plugins.roaming_ocpi.tests.test_transport import invite, ocpi, register_fake, tok

pytestmark = pytest.mark.asyncio(loop_scope="module")

HUB_ROLES = [("CPO", "DE", "HBC"), ("EMSP", "DE", "HBE")]  # after its first role, HUB DE/HUB


def token(uid: str, party_id: str, *, whitelist: str = "ALWAYS") -> dict:
    return {"country_code": "DE", "party_id": party_id, "uid": uid, "type": "RFID",
            "contract_id": f"DE-{party_id}-C{uid}", "issuer": "Behind the hub", "valid": True,
            "whitelist": whitelist, "last_updated": now()}


def client_info(party_id: str, status: str, role: str = "EMSP") -> dict:
    return {"party_id": party_id, "country_code": "DE", "role": role, "status": status, "last_updated": now()}


def routed(record) -> tuple[str, str, str, str]:
    h = record.headers
    return (h.get("ocpi-from-country-code"), h.get("ocpi-from-party-id"), h.get("ocpi-to-country-code"),
            h.get("ocpi-to-party-id"))


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def hub(server):
    """A hub (HUB DE/HUB, also CPO DE/HBC and eMSP DE/HBE) registered with us, and a published
    site with one 2.0.1 station."""
    async with fake_partner(role="HUB", party_id="HUB", more_roles=HUB_ROLES) as partner:
        await register_fake(server, partner)
        r = await server.api.get("/roaming/partners")
        partner.id = next(p["id"] for p in r.json()["items"] if p["party_id"] == "HUB")
        site, stations = await site_with_stations(server, "Hub site", ["HUBST1"])
        partner.site, partner.stations = site, stations
        yield partner
        for st in stations:
            await st.close()


async def put_client_info(server, hub, info: dict, *, expect: int = 201) -> dict:
    async with httpx.AsyncClient() as c:
        r = await c.put(f"{ocpi(server)}/2.2.1/hubclientinfo/{info['country_code']}/{info['party_id']}",
                        json=info, headers=tok(hub.token_c))
    assert r.status_code == expect, r.text
    assert "ocpi-to-party-id" not in r.headers  # a configuration module: never routed
    return r.json()


async def put_token(server, hub, body: dict, *, expect: int = 201) -> httpx.Response:
    async with httpx.AsyncClient() as c:
        r = await c.put(f"{ocpi(server)}/cpo/2.2.1/tokens/{body['country_code']}/{body['party_id']}/{body['uid']}",
                        json=body, headers={**tok(hub.token_c), "OCPI-from-country-code": body["country_code"],
                                            "OCPI-from-party-id": body["party_id"], "OCPI-to-country-code": "NL",
                                            "OCPI-to-party-id": "CPO"})
    assert r.status_code == expect, r.text
    return r


async def test_every_role_is_kept_and_shown(server, hub):
    r = await server.api.get(f"/roaming/partners/{hub.id}")
    assert r.status_code == 200, r.text
    roles = [(x["role"], x["country_code"], x["party_id"]) for x in r.json()["roles"]]
    assert roles == [("HUB", "DE", "HUB"), *HUB_ROLES]
    assert all(x["business_details"]["website"] == "https://fake.example.org" for x in r.json()["roles"])
    # our version details offer the Hub Client Info Receiver
    async with httpx.AsyncClient() as c:
        details = assert_envelope((await c.get(f"{ocpi(server)}/2.2.1", headers=tok(hub.token_c))).json())
    assert_valid("VersionDetails", details)
    assert {"identifier": "hubclientinfo", "role": "RECEIVER",
            "url": f"{ocpi(server)}/2.2.1/hubclientinfo"} in details["endpoints"]
    admin = await logged_in(server, "hubadmin", "admin")
    try:
        page = await admin.get(f"/admin/roaming/partners/{hub.id}")
    finally:
        await admin.aclose()
    assert page.status_code == 200
    for role, cc, pid in [("HUB", "DE", "HUB"), *HUB_ROLES]:
        assert f"<td>{role}</td><td>{cc}/{pid}</td>" in page.text
    assert "Parties behind the hub" in page.text


async def test_locations_are_broadcast_to_the_hub(server, hub):
    r = await server.api.post("/roaming/sync")
    assert r.status_code == 200, r.text
    path = f"/ocpi/2.2.1/locations/NL/CPO/{hub.site['id']}"
    put = [p for p in await hub.wait_for("PUT", "locations", match=lambda p: p.path == path)][-1]
    assert_valid("Location", put.body)
    assert put.body["operator"]["name"] == "Test CPO"
    # a Broadcast Push: addressed to the hub's own party, from ours
    assert routed(put) == ("NL", "CPO", "DE", "HUB")
    await hub.stations[0].status(1, "Unavailable")
    patch = (await hub.wait_for("PATCH", f"locations/NL/CPO/{hub.site['id']}/HUBST1*1",
                                match=lambda p: p.body.get("status") == "INOPERATIVE"))[-1]
    assert routed(patch) == ("NL", "CPO", "DE", "HUB")
    await hub.stations[0].status(1, "Available")


async def test_hub_client_info_put_and_get(server, hub):
    info = client_info("EMA", "CONNECTED")
    assert_envelope(await put_client_info(server, hub, info))
    assert_envelope(await put_client_info(server, hub, {**info, "last_updated": now()}, expect=200))
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{ocpi(server)}/2.2.1/hubclientinfo/de/ema", headers=tok(hub.token_c))
        got = assert_envelope(r.json())
        assert_valid("ClientInfo", got)
        assert got == {**info, "last_updated": got["last_updated"]}
        assert got["last_updated"].endswith("Z")
        # an older state than the one held changes nothing
        assert_envelope(await put_client_info(server, hub, {**info, "status": "OFFLINE",
                                                            "last_updated": "2020-01-01T00:00:00Z"}, expect=200))
        r = await c.get(f"{ocpi(server)}/2.2.1/hubclientinfo/DE/EMA", headers=tok(hub.token_c))
        assert assert_envelope(r.json())["status"] == "CONNECTED"
        r = await c.get(f"{ocpi(server)}/2.2.1/hubclientinfo/DE/NOP", headers=tok(hub.token_c))
        assert r.status_code == 404 and assert_envelope(r.json(), 2000) is None
        # an unknown role, a party that is not the URL's: 2001, nothing stored
        r = await c.put(f"{ocpi(server)}/2.2.1/hubclientinfo/DE/BAD", headers=tok(hub.token_c),
                        json={**client_info("BAD", "CONNECTED"), "role": "DRIVER"})
        assert r.status_code == 200 and assert_envelope(r.json(), 2001) is None
        assert "role" in r.json()["status_message"]
        r = await c.put(f"{ocpi(server)}/2.2.1/hubclientinfo/DE/BAD", headers=tok(hub.token_c),
                        json=client_info("OTH", "CONNECTED"))
        assert assert_envelope(r.json(), 2001) is None
        r = await c.get(f"{ocpi(server)}/2.2.1/hubclientinfo/DE/BAD", headers=tok(hub.token_c))
        assert r.status_code == 404
        r = await c.delete(f"{ocpi(server)}/2.2.1/hubclientinfo/DE/EMA", headers=tok(hub.token_c))
        assert r.status_code == 405
    r = await server.api.get(f"/roaming/partners/{hub.id}")
    assert [(c["country_code"], c["party_id"], c["status"]) for c in r.json()["client_info"]] == [
        ("DE", "EMA", "CONNECTED")]
    admin = await logged_in(server, "hubviewer", "viewer")
    try:
        page = await admin.get(f"/admin/roaming/partners/{hub.id}")
    finally:
        await admin.aclose()
    assert "<td>DE/EMA</td><td>EMSP</td>" in page.text and "CONNECTED" in page.text


async def test_hub_client_info_pulled_from_the_hub(server, hub):
    """Pulling from a hub also GETs its Hub Client Info list (no routing headers) and keeps the
    valid ClientInfo objects."""
    hub.answers["/2.2.1/hubclientinfo"] = (200, {"status_code": 1000, "timestamp": now(), "data": [
        client_info("EMX", "CONNECTED"), {**client_info("EMY", "CONNECTED"), "status": "ASLEEP"}]})
    try:
        r = await server.api.post(f"/roaming/partners/{hub.id}/pull")
    finally:
        del hub.answers["/2.2.1/hubclientinfo"]
    assert r.status_code == 200, r.text
    assert r.json()["hubclientinfo"] == {"stored": 1, "rejected": 1}
    ask = hub.pushes("GET", "hubclientinfo")[-1]
    assert not any(k.startswith("ocpi-") for k in ask.headers)
    r = await server.api.get(f"/roaming/partners/{hub.id}")
    assert ("DE", "EMX", "CONNECTED") in [(c["country_code"], c["party_id"], c["status"])
                                           for c in r.json()["client_info"]]


async def test_hub_client_info_is_for_hubs_only(server):
    async with fake_partner(party_id="NHB") as emsp:
        await register_fake(server, emsp)
        async with httpx.AsyncClient() as c:
            r = await c.put(f"{ocpi(server)}/2.2.1/hubclientinfo/DE/EMA", headers=tok(emsp.token_c),
                            json=client_info("EMA", "CONNECTED"))
        assert r.status_code == 403 and assert_envelope(r.json(), 2000) is None
        # and a plain eMSP still speaks only for its own parties
        async with httpx.AsyncClient() as c:
            r = await c.put(f"{ocpi(server)}/cpo/2.2.1/tokens/DE/EMA/NOTMINE1", headers=tok(emsp.token_c),
                            json=token("NOTMINE1", "EMA"))
        assert r.status_code == 404 and "not a party of this partner" in r.json()["status_message"]
        r = await server.api.get("/roaming/partners")
        partner_id = next(p["id"] for p in r.json()["items"] if p["party_id"] == "NHB")
        assert (await server.api.delete(f"/roaming/partners/{partner_id}")).status_code == 200


async def test_unknown_role_in_credentials_is_2001(server):
    token_a, _ = await invite(server)
    async with fake_partner(party_id="ROL") as fake:
        body = fake.credentials()
        body["roles"][0]["role"] = "DRIVER"
        async with httpx.AsyncClient() as c:
            r = await c.post(f"{ocpi(server)}/2.2.1/credentials", json=body, headers=tok(token_a))
        assert r.status_code == 200 and assert_envelope(r.json(), 2001) is None
        assert "role" in r.json()["status_message"]


async def test_token_of_a_party_behind_the_hub(server, hub):
    """A token the hub forwards for DE/EMA (not one of the hub's own roles) is taken, authorizes
    at our station, and its Session and CDR go to the hub addressed to DE/EMA."""
    await put_token(server, hub, token("HUBTOK01", "EMA", whitelist="NEVER"))
    # never for ourselves: neither as the requesting party nor under our party in the URL
    r = await put_token(server, hub, {**token("OURS0001", "CPO"), "country_code": "NL"}, expect=200)
    assert assert_envelope(r.json(), 2001) is None
    async with httpx.AsyncClient() as c:
        r = await c.put(f"{ocpi(server)}/cpo/2.2.1/tokens/NL/CPO/OURS0001", json={**token("OURS0001", "CPO"),
                        "country_code": "NL"}, headers=tok(hub.token_c))
    assert r.status_code == 404 and assert_envelope(r.json(), 2001) is None
    assert r.json()["status_message"] == "NL/CPO is our own party, not one of this partner's"
    hub.answers["/HUBTOK01/authorize"] = (200, {"status_code": 1000, "timestamp": now(), "data": {
        "allowed": "ALLOWED", "token": token("HUBTOK01", "EMA", whitelist="NEVER"), "authorization_reference": "H-1"}})
    st = hub.stations[0]
    assert await st.authorize("HUBTOK01") == "Accepted"
    ask = hub.pushes("POST", "tokens/HUBTOK01/authorize")[-1]
    assert routed(ask) == ("NL", "CPO", "DE", "EMA")
    await st.start_session(1, "HUBTOK01")
    put = (await hub.wait_for("PUT", "sessions"))[-1]
    assert_valid("Session", put.body)
    assert put.body["cdr_token"]["party_id"] == "EMA" and routed(put) == ("NL", "CPO", "DE", "EMA")
    await st.stop_session(1)
    cdr = (await hub.wait_for("POST", "cdrs"))[-1]
    assert_valid("CDR", cdr.body)
    assert routed(cdr) == ("NL", "CPO", "DE", "EMA")


async def test_party_not_connected_is_not_routed(server, hub):
    """PLANNED: a real-time authorization is not asked (NEVER: Invalid). SUSPENDED: the session's
    pushes wait in the outbox until the hub reports the party CONNECTED, then go out."""
    await put_client_info(server, hub, client_info("EMP", "PLANNED"))
    await put_token(server, hub, token("PLANNED1", "EMP", whitelist="NEVER"))
    hub.answers["/PLANNED1/authorize"] = (200, {"status_code": 1000, "timestamp": now(), "data": {
        "allowed": "ALLOWED", "token": token("PLANNED1", "EMP", whitelist="NEVER")}})
    st = hub.stations[0]
    assert await st.authorize("PLANNED1") == "Invalid"
    assert not hub.pushes("POST", "tokens/PLANNED1/authorize")

    await put_client_info(server, hub, client_info("EMS", "SUSPENDED"))
    await put_token(server, hub, token("SUSPEND1", "EMS", whitelist="ALWAYS"))
    assert await st.authorize("SUSPEND1") == "Accepted"  # the stored token decides: nothing to route
    await st.start_session(1, "SUSPEND1")

    async def held() -> list:
        r = await server.api.get("/roaming/outbox", params={"status": "pending", "partner": hub.id})
        return [row for row in r.json()["items"] if "SUSPENDED" in (row.get("last_error") or "")]

    rows = await eventually(held)
    assert rows and not [p for p in hub.pushes("PUT", "sessions") if p.body["cdr_token"]["uid"] == "SUSPEND1"]
    await put_client_info(server, hub, client_info("EMS", "CONNECTED"), expect=200)
    put = (await hub.wait_for("PUT", "sessions", match=lambda p: p.body["cdr_token"]["uid"] == "SUSPEND1"))[-1]
    assert routed(put) == ("NL", "CPO", "DE", "EMS")
    await st.stop_session(1)
    await hub.wait_for("POST", "cdrs", match=lambda p: p.body["cdr_token"]["uid"] == "SUSPEND1")


def location_of(party_id: str, location_id: str) -> dict:
    """A Location of party DE/``party_id``, as a CPO behind the hub publishes it."""
    from plugins.roaming_ocpi.tests.test_emsp import LOCATION

    return {**LOCATION, "party_id": party_id, "id": location_id}


async def test_get_all_via_the_hub(server, hub):
    """GET All via a hub (transport_and_format): our GET of the hub's Senders is addressed to the
    hub's own party; the objects of the parties behind it are each kept under their own party,
    one of ours (a hub never speaks for us) refused."""
    envelope = {"status_code": 1000, "timestamp": now()}
    hub.answers["/2.2.1/locations"] = (200, {**envelope, "data": [
        location_of("HBC", "HL1"), location_of("CPX", "HL2"), {**location_of("CPO", "HL3"), "country_code": "NL"}]})
    hub.answers["/2.2.1/tokens"] = (200, {**envelope, "data": [token("GETALL01", "HBE"), token("GETALL02", "EMX")]})
    try:
        r = await server.api.post(f"/roaming/partners/{hub.id}/pull")
    finally:
        del hub.answers["/2.2.1/locations"], hub.answers["/2.2.1/tokens"]
    assert r.status_code == 200, r.text
    assert r.json()["locations"] == {"stored": 2, "rejected": 1} and r.json()["tokens"] == {"stored": 2, "rejected": 0}
    for module in ("locations", "tokens"):
        ask = [p for p in hub.pushes("GET", module) if p.path == f"/ocpi/2.2.1/{module}"][-1]
        assert routed(ask) == ("NL", "CPO", "DE", "HUB")
    r = await server.api.get("/roaming/locations", params={"partner": hub.id})
    kept = {(x["country_code"], x["party_id"], x["object_id"]) for x in r.json()["items"]}
    assert {("DE", "HBC", "HL1"), ("DE", "CPX", "HL2")} <= kept and not any(k[2] == "HL3" for k in kept)
    r = await server.api.get("/roaming/tokens", params={"partner": hub.id})
    kept = {(x["country_code"], x["party_id"], x["object_id"]) for x in r.json()["items"]}
    assert {("DE", "HBE", "GETALL01"), ("DE", "EMX", "GETALL02")} <= kept
    # a pulled token of a party behind the hub authorizes at our station like a pushed one
    assert await hub.stations[0].authorize("GETALL02") == "Accepted"


async def test_requests_routed_through_the_hub(server, hub):
    """A request the hub forwards from a party behind it (OCPI-from-* that party, OCPI-to-* us)
    is answered to that party; OCPI-from-* naming us, or OCPI-to-* naming a party that is not
    ours, is refused with 2001 and a reason."""
    url = f"{ocpi(server)}/cpo/2.2.1/locations/{hub.site['id']}"
    routing = {"OCPI-from-country-code": "DE", "OCPI-from-party-id": "EMB", "OCPI-to-country-code": "NL",
               "OCPI-to-party-id": "CPO"}
    async with httpx.AsyncClient() as c:
        r = await c.get(url, headers={**tok(hub.token_c), **routing})
        assert_valid("Location", assert_envelope(r.json()))
        assert (r.headers["ocpi-from-country-code"], r.headers["ocpi-from-party-id"], r.headers["ocpi-to-country-code"],
                r.headers["ocpi-to-party-id"]) == ("NL", "CPO", "DE", "EMB")
        # without routing headers the answer goes to the hub itself
        r = await c.get(url, headers=tok(hub.token_c))
        assert (r.headers["ocpi-to-country-code"], r.headers["ocpi-to-party-id"]) == ("DE", "HUB")
        r = await c.get(url, headers={**tok(hub.token_c), **routing, "OCPI-from-country-code": "NL",
                                      "OCPI-from-party-id": "CPO"})
        assert r.status_code == 200 and assert_envelope(r.json(), 2001) is None
        assert "NL/CPO is not a party of this partner" in r.json()["status_message"]
        assert (r.headers["ocpi-to-country-code"], r.headers["ocpi-to-party-id"]) == ("DE", "HUB")
        r = await c.get(url, headers={**tok(hub.token_c), **routing, "OCPI-to-party-id": "EMB",
                                      "OCPI-to-country-code": "DE"})
        assert assert_envelope(r.json(), 2001) is None
        assert "DE/EMB is not a party of this platform (NL/CPO)" in r.json()["status_message"]


async def test_open_routing_requests_to_the_hub(server, hub):
    """What we send a hub without knowing the receiving party is an Open Routing Request (no
    OCPI-to-*): a real-time authorization of a token nobody pushed, a command for a Location we
    never received. A command the hub forwards from a party behind it has its CommandResult
    addressed back to that party."""
    from plugins.roaming_ocpi.tests.conftest import ocpi_env

    hub.answers["/OPENRT01/authorize"] = (200, {"status_code": 1000, "timestamp": now(), "data": {
        "allowed": "ALLOWED", "token": token("OPENRT01", "EMO"), "authorization_reference": "O-1"}})
    with ocpi_env({"CSMS_OCPI_AUTHORIZE_UNKNOWN": "true"}):
        assert await hub.stations[0].authorize("OPENRT01") == "Accepted"
    ask = hub.pushes("POST", "tokens/OPENRT01/authorize")[-1]
    assert routed(ask) == ("NL", "CPO", None, None)
    r = await server.api.post("/tokens", json={"id_token": "HUBCARD1", "label": "Hub card"})
    assert r.status_code in (200, 201), r.text
    r = await server.api.post(f"/roaming/partners/{hub.id}/commands/START_SESSION",
                              json={"id_token": "HUBCARD1", "location_id": "NEVERSEEN", "evse_uid": "E1"})
    assert r.status_code == 200, r.text
    sent = hub.pushes("POST", "commands/START_SESSION")[-1]
    assert routed(sent) == ("NL", "CPO", None, None)
    # a Location the hub sent us (GET All above or a push): addressed to its CPO
    async with httpx.AsyncClient() as c:
        r = await c.put(f"{ocpi(server)}/emsp/2.2.1/locations/DE/CPY/HL9", json=location_of("CPY", "HL9"),
                        headers={**tok(hub.token_c), "OCPI-from-country-code": "DE", "OCPI-from-party-id": "CPY"})
        assert r.status_code == 201, r.text
    r = await server.api.post(f"/roaming/partners/{hub.id}/commands/START_SESSION",
                              json={"id_token": "HUBCARD1", "location_id": "HL9", "evse_uid": "3256"})
    assert r.status_code == 200, r.text
    assert routed(hub.pushes("POST", "commands/START_SESSION")[-1]) == ("NL", "CPO", "DE", "CPY")
    # UNLOCK_CONNECTOR from DE/EMC (no token to tell the party): the result goes back to DE/EMC
    unlock = {"response_url": f"{hub.base}/ocpi/2.2.1/commands/UNLOCK_CONNECTOR/u1",
              "location_id": str(hub.site["id"]), "evse_uid": "HUBST1*1", "connector_id": "1"}
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{ocpi(server)}/cpo/2.2.1/commands/UNLOCK_CONNECTOR", json=unlock,
                         headers={**tok(hub.token_c), "OCPI-from-country-code": "DE", "OCPI-from-party-id": "EMC",
                                  "OCPI-to-country-code": "NL", "OCPI-to-party-id": "CPO"})
        assert assert_envelope(r.json())["result"] == "ACCEPTED", r.text
    result = (await hub.wait_for("POST", "commands/UNLOCK_CONNECTOR/u1"))[-1]
    assert_valid("CommandResult", result.body)
    assert routed(result) == ("NL", "CPO", "DE", "EMC")


async def test_a_partner_writes_only_its_own_parties(server):
    """A partner that is no hub: its OCPI-from-* and the party in URLs and bodies must be one it
    registered (404 with 2003 for a Location, 2001 otherwise, the message naming its parties)."""
    async with fake_partner(role="CPO", party_id="OWN", more_roles=[("CPO", "DE", "OW2")]) as cpo:
        await register_fake(server, cpo)
        base = f"{ocpi(server)}/emsp/2.2.1/locations"
        async with httpx.AsyncClient() as c:
            r = await c.put(f"{base}/DE/OTH/L1", json=location_of("OTH", "L1"), headers=tok(cpo.token_c))
            assert r.status_code == 404 and assert_envelope(r.json(), 2003) is None
            assert r.json()["status_message"] == "DE/OTH is not a party of this partner (its parties: DE/OWN, DE/OW2)"
            r = await c.put(f"{base}/DE/OWN/L1", json=location_of("OTH", "L1"), headers=tok(cpo.token_c))
            assert assert_envelope(r.json(), 2001) is None and "must match the URL" in r.json()["status_message"]
            from plugins.roaming_ocpi.tests.test_emsp import CDR

            r = await c.post(f"{ocpi(server)}/emsp/2.2.1/cdrs", json={**CDR, "party_id": "OTH"}, headers=tok(cpo.token_c))
            assert r.status_code == 404 and assert_envelope(r.json(), 2001) is None
            for headers, reason in (
                    ({"OCPI-from-country-code": "DE", "OCPI-from-party-id": "OTH"},
                     "OCPI-from-country-code/party-id DE/OTH is not a party of this partner (its parties: DE/OWN, DE/OW2)"),
                    ({"OCPI-from-country-code": "DE"}, "OCPI-from-country-code and OCPI-from-party-id go together"),
                    ({"OCPI-to-country-code": "DE", "OCPI-to-party-id": "OW2"},
                     "OCPI-to-country-code/party-id DE/OW2 is not a party of this platform (NL/CPO)")):
                r = await c.put(f"{base}/DE/OWN/L1", json=location_of("OWN", "L1"),
                                headers={**tok(cpo.token_c), **headers})
                assert assert_envelope(r.json(), 2001) is None and reason in r.json()["status_message"], r.text
            # its second party, named in the headers: taken, answered to that party
            r = await c.put(f"{base}/DE/OW2/L1", json=location_of("OW2", "L1"), headers={
                **tok(cpo.token_c), "OCPI-from-country-code": "de", "OCPI-from-party-id": "ow2",
                "OCPI-to-country-code": "NL", "OCPI-to-party-id": "CPO"})
            assert r.status_code == 201 and assert_envelope(r.json()) is None
            assert (r.headers["ocpi-to-country-code"], r.headers["ocpi-to-party-id"]) == ("DE", "OW2")
        r = await server.api.get("/roaming/partners")
        partner_id = next(p["id"] for p in r.json()["items"] if p["party_id"] == "OWN")
        assert (await server.api.delete(f"/roaming/partners/{partner_id}")).status_code == 200
