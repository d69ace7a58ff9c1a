"""The CPO role against a scripted eMSP over real HTTP: Locations pushed and served, Tokens
received, real-time authorization under each whitelist rule, Sessions and CDRs pushed, Commands,
and pushes queued while the partner is down. Everything we send is validated with ocpi-types."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import pytest_asyncio

from plugins.roaming_ocpi.tests.fake_partner import fake_partner, now
from plugins.roaming_ocpi.tests.ocpi_check import assert_envelope, assert_valid
from plugins.roaming_ocpi.tests.stations import eventually, site_with_stations
from plugins.roaming_ocpi.tests.test_transport import ocpi, register_fake, tok

pytestmark = pytest.mark.asyncio(loop_scope="module")


def token(uid: str, *, whitelist: str = "ALWAYS", valid: bool = True, party_id: str = "FAK") -> dict:
    return {"country_code": "DE", "party_id": party_id, "uid": uid, "type": "RFID",
            "contract_id": f"DE-{party_id}-C{uid}", "issuer": "Fake", "valid": valid, "whitelist": whitelist,
            "last_updated": now()}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def emsp(server):
    """A scripted eMSP registered with our CPO, and a published site with two 2.0.1 stations."""
    async with fake_partner() as partner:
        await register_fake(server, partner)
        site, stations = await site_with_stations(server, "Central", ["CPOA", "CPOB"])
        partner.site = site
        partner.stations = stations
        yield partner
        for st in stations:
            await st.close()


async def sync(server) -> None:
    r = await server.api.post("/roaming/sync")
    assert r.status_code == 200, r.text


async def put_token(server, emsp, body: dict, *, expect: int = 201) -> httpx.Response:
    async with httpx.AsyncClient() as c:
        r = await c.put(f"{ocpi(server)}/cpo/2.2.1/tokens/DE/{body['party_id']}/{body['uid']}",
                        json=body, headers=tok(emsp.token_c))
    assert r.status_code == expect, r.text
    return r


def assert_location_pushes_valid(emsp) -> None:
    for r in emsp.pushes(None, "locations"):
        depth = r.path.count("/") - 6  # /ocpi/2.2.1/locations/NL/CPO/<location>[/evse[/connector]]
        if r.method == "PUT":
            assert_valid(("Location", "EVSE", "Connector")[depth], r.body)
        else:
            assert r.method == "PATCH" and "last_updated" in r.body, r


async def test_locations_pushed_and_validated(server, emsp):
    await sync(server)
    site_path = f"/ocpi/2.2.1/locations/NL/CPO/{emsp.site['id']}"
    puts = [r for r in await emsp.wait_for("PUT", "locations") if r.path == site_path]
    assert puts, [r.path for r in emsp.requests]
    assert_location_pushes_valid(emsp)
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{ocpi(server)}/cpo/2.2.1/locations/{emsp.site['id']}", headers=tok(emsp.token_c))
    loc = assert_envelope(r.json())
    assert_valid("Location", loc)
    assert loc["coordinates"] == {"latitude": "52.370216", "longitude": "4.895168"}
    assert loc["country"] == "NLD" and loc["time_zone"] == "Europe/Amsterdam"
    assert loc["opening_times"] == {"twentyfourseven": True}
    assert {e["uid"] for e in loc["evses"]} == {"CPOA*1", "CPOB*1"}
    evse = loc["evses"][0]
    assert evse["status"] == "AVAILABLE" and "REMOTE_START_STOP_CAPABLE" in evse["capabilities"]
    assert evse["evse_id"].startswith("NL*CPO*E")
    # every push carries ids and routing headers
    h = puts[-1].headers
    assert h["x-request-id"] and h["x-correlation-id"]
    assert (h["ocpi-from-country-code"], h["ocpi-from-party-id"], h["ocpi-to-country-code"],
            h["ocpi-to-party-id"]) == ("NL", "CPO", "DE", "FAK")


async def test_status_change_is_patched(server, emsp):
    evse = f"locations/NL/CPO/{emsp.site['id']}/CPOA*1"
    seen = len(emsp.requests)  # the station's own status after its boot may still be on its way

    def after(status: str, since: int):
        return lambda r: any(r is x for x in emsp.requests[since:]) and r.body.get("status") == status

    await emsp.stations[0].status(1, "Unavailable")
    p = (await emsp.wait_for("PATCH", evse, match=after("INOPERATIVE", seen)))[-1]
    assert p.path == f"/ocpi/2.2.1/{evse}"
    assert set(p.body) == {"status", "last_updated"}
    seen = next(n for n, r in enumerate(emsp.requests) if r is p)
    await emsp.stations[0].status(1, "Available")
    await emsp.wait_for("PATCH", evse, match=after("AVAILABLE", seen + 1))


async def test_an_overlapping_refresh_never_leaves_the_partner_an_older_status(server, emsp, monkeypatch):
    """A status change is being published (its refresh read INOPERATIVE and is queueing the
    PATCH) when the station reports Available and a partner's pull refreshes the site. The
    pull's refresh waits for the first one, reading and queueing, so the partner's last PATCH
    of the EVSE is AVAILABLE: the older INOPERATIVE never goes out after it (it did, when only
    the reading took turns)."""
    from plugins.roaming_ocpi import sync as ocpi_sync

    evse = f"locations/NL/CPO/{emsp.site['id']}/CPOB*1"
    real = ocpi_sync.enqueue_all
    held, release = asyncio.Event(), asyncio.Event()

    async def slow_enqueue_all(role, module, method, key, path, body, audience=None):
        if path.endswith("/CPOB*1") and isinstance(body, dict) and body.get("status") == "INOPERATIVE" \
                and not release.is_set():
            held.set()
            await release.wait()
        await real(role, module, method, key, path, body, audience)

    monkeypatch.setattr(ocpi_sync, "enqueue_all", slow_enqueue_all)
    await emsp.stations[1].status(1, "Unavailable")
    await asyncio.wait_for(held.wait(), 15)  # the event's refresh is queueing INOPERATIVE
    seen = len(emsp.requests)
    await emsp.stations[1].status(1, "Available")  # stored before the station has its answer
    pull = asyncio.create_task(ocpi_sync.refresh_locations([emsp.site["id"]]))  # as a partner's GET does
    await asyncio.sleep(0.5)  # time for the pull to run ahead of the held refresh, were it let
    release.set()
    await pull

    def since(r) -> bool:
        return any(r is x for x in emsp.requests[seen:])

    await emsp.wait_for("PATCH", evse, match=lambda r: since(r) and r.body.get("status") == "AVAILABLE")
    await asyncio.sleep(1.0)  # anything queued after it has gone out by now
    statuses = [r.body["status"] for r in emsp.pushes("PATCH", evse) if since(r)]
    assert statuses[-1] == "AVAILABLE", statuses


async def test_removed_evse(server, emsp):
    site, stations = await site_with_stations(server, "Temporary", ["CPOGONE"])
    await sync(server)
    await emsp.wait_for("PUT", f"locations/NL/CPO/{site['id']}")
    r = await server.api.patch("/stations/CPOGONE", json={"site": emsp.site["id"]})
    assert r.status_code == 200, r.text
    await sync(server)
    # the station's own status (AVAILABLE) may be patched in before the move: wait for REMOVED
    removed = await emsp.wait_for("PATCH", f"locations/NL/CPO/{site['id']}/CPOGONE*1",
                                  match=lambda r: r.body.get("status") == "REMOVED")
    assert set(removed[-1].body) == {"status", "last_updated"}
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{ocpi(server)}/cpo/2.2.1/locations/{site['id']}/CPOGONE*1", headers=tok(emsp.token_c))
        assert assert_envelope(r.json())["status"] == "REMOVED"
    await stations[0].close()


async def test_locations_served_with_pagination(server, emsp):
    await site_with_stations(server, "Third", [], lat=51.9, lon=4.4)
    await site_with_stations(server, "Fourth", [], lat=51.8, lon=4.3)  # 3 or more, whatever ran before
    async with httpx.AsyncClient() as c:
        url = f"{ocpi(server)}/cpo/2.2.1/locations"
        r = await c.get(url, headers=tok(emsp.token_c))
        first = assert_envelope(r.json())
        total = int(r.headers["x-total-count"])
        assert total >= 3 and r.headers["x-limit"] == "2" and len(first) == 2
        for loc in first:
            assert_valid("Location", loc)
        assert r.headers["link"] == f'<{url}?offset=2&limit=2>; rel="next"'
        r = await c.get(f"{url}?offset=2&limit=2", headers=tok(emsp.token_c))
        second = assert_envelope(r.json())
        assert len(second) == min(2, total - 2) and ("link" in r.headers) == (total > 4)
        ids = [loc["id"] for loc in first + second]
        assert ids == sorted(ids, key=int)
        # limit above our maximum: X-Limit says what we allow
        r = await c.get(f"{url}?limit=500", headers=tok(emsp.token_c))
        assert r.headers["x-limit"] == "2" and len(assert_envelope(r.json())) == 2
        # date filters: the Link keeps them
        future = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        r = await c.get(url, params={"date_from": future}, headers=tok(emsp.token_c))
        assert assert_envelope(r.json()) == [] and r.headers["x-total-count"] == "0"
        r = await c.get(url, params={"date_to": future, "limit": "1"}, headers=tok(emsp.token_c))
        assert f"date_to={future.replace(':', '%3A')}" in r.headers["link"] and "offset=1" in r.headers["link"]
        # bad parameters reach the OCPI layer: HTTP 200 with 2001
        for bad in ({"offset": "-1"}, {"limit": "0"}, {"limit": "ten"}, {"date_from": "yesterday"},
                    {"date_to": "2024-13-01T00:00:00Z"}):
            r = await c.get(url, params=bad, headers=tok(emsp.token_c))
            assert r.status_code == 200, bad
            assert_envelope(r.json(), 2001)


async def test_location_objects_and_unknowns(server, emsp):
    site_id = emsp.site["id"]
    async with httpx.AsyncClient() as c:
        base = f"{ocpi(server)}/cpo/2.2.1/locations"
        assert_valid("Location", assert_envelope((await c.get(f"{base}/{site_id}", headers=tok(emsp.token_c))).json()))
        evse = assert_envelope((await c.get(f"{base}/{site_id}/CPOA*1", headers=tok(emsp.token_c))).json())
        assert_valid("EVSE", evse)
        conn = assert_envelope((await c.get(f"{base}/{site_id}/CPOA*1/1", headers=tok(emsp.token_c))).json())
        assert_valid("Connector", conn)
        assert conn["standard"] == "IEC_62196_T2" and conn["power_type"] == "AC_3_PHASE"
        for path in ("999", f"{site_id}/NOPE*1", f"{site_id}/CPOA*1/9"):
            r = await c.get(f"{base}/{path}", headers=tok(emsp.token_c))
            assert r.status_code == 404, path
            assert_envelope(r.json(), 2003)
        r = await c.get(f"{ocpi(server)}/cpo/2.2.1/sessions", headers=tok(emsp.token_c))
        assert r.status_code == 200
        assert_envelope(r.json(), 2001)  # date_from is required for Sessions


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def standard_tariff(server) -> None:
    """The billing plugin's tariff STD (0.30/kWh and 0.50 a session, 21 % VAT), the default."""
    r = await server.api.post("/billing/tariffs", json={"name": "Standard", "tariff": {
        "id": "STD", "currency": "EUR", "elements": [{"price_components": [
            {"type": "ENERGY", "price": 0.30, "vat": 21, "step_size": 1},
            {"type": "FLAT", "price": 0.50, "vat": 21, "step_size": 1}]}]}})
    assert r.status_code == 201, r.text
    r = await server.api.post("/billing/assignments", json={"tariff": r.json()["id"]})
    assert r.status_code == 201, r.text


async def test_tariffs_from_billing(server, emsp, standard_tariff):
    await sync(server)
    put = (await emsp.wait_for("PUT", "tariffs/NL/CPO/STD"))[-1]
    assert_valid("Tariff", put.body)
    assert put.body["elements"][0]["price_components"][0]["price"] == 0.30
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{ocpi(server)}/cpo/2.2.1/tariffs", headers=tok(emsp.token_c))
        tariffs = assert_envelope(r.json())
        assert [t["id"] for t in tariffs] == ["STD"]
        assert_valid("Tariff", tariffs[0])
        r = await c.get(f"{ocpi(server)}/cpo/2.2.1/locations/{emsp.site['id']}/CPOA*1/1", headers=tok(emsp.token_c))
        assert assert_envelope(r.json())["tariff_ids"] == ["STD"]


async def test_tokens_received(server, emsp):
    body = token("TOKPUT01")
    await put_token(server, emsp, body, expect=201)
    await put_token(server, emsp, body, expect=200)
    async with httpx.AsyncClient() as c:
        url = f"{ocpi(server)}/cpo/2.2.1/tokens/DE/FAK/TOKPUT01"
        got = assert_envelope((await c.get(url, headers=tok(emsp.token_c))).json())
        assert_valid("Token", got)
        assert got == body
        r = await c.patch(url, json={"valid": False, "last_updated": now()}, headers=tok(emsp.token_c))
        assert_envelope(r.json())
        assert assert_envelope((await c.get(url, headers=tok(emsp.token_c))).json())["valid"] is False
        # PATCH needs last_updated; unknown tokens are 404/2004; mismatches and bad bodies 2001
        r = await c.patch(url, json={"valid": True}, headers=tok(emsp.token_c))
        assert r.status_code == 200 and assert_envelope(r.json(), 2001) is None
        r = await c.patch(f"{url}X", json={"valid": True, "last_updated": now()}, headers=tok(emsp.token_c))
        assert r.status_code == 404 and assert_envelope(r.json(), 2004) is None
        r = await c.get(f"{url}X", headers=tok(emsp.token_c))
        assert r.status_code == 404 and assert_envelope(r.json(), 2004) is None
        r = await c.put(f"{url}X", json=body, headers=tok(emsp.token_c))
        assert r.status_code == 200 and assert_envelope(r.json(), 2001) is None
        broken = {k: v for k, v in body.items() if k != "whitelist"}
        r = await c.put(url, json=broken, headers=tok(emsp.token_c))
        assert assert_envelope(r.json(), 2001) is None and "whitelist" in r.json()["status_message"]
        r = await c.put(url, json={**body, "type": "CARD"}, headers=tok(emsp.token_c))
        assert assert_envelope(r.json(), 2001) is None
        r = await c.put(url, content=b"[1, 2", headers={**tok(emsp.token_c), "Content-Type": "application/json"})
        assert r.status_code == 400
        # another party's token: not this partner's to push
        r = await c.put(f"{ocpi(server)}/cpo/2.2.1/tokens/FR/XXX/TOKPUT01", json={**body, "country_code": "FR",
                                                                                    "party_id": "XXX"},
                        headers=tok(emsp.token_c))
        assert r.status_code == 404


async def test_whitelist_always_charges_without_asking(server, emsp):
    await put_token(server, emsp, token("ALWAYS01", whitelist="ALWAYS"))
    await put_token(server, emsp, token("BLOCKED1", whitelist="ALWAYS", valid=False))
    st = emsp.stations[1]
    assert await st.authorize("ALWAYS01") == "Accepted"
    assert await st.authorize("BLOCKED1") == "Invalid"
    assert not emsp.pushes("POST", "tokens", failed=True)


async def test_realtime_rules(server, emsp):
    await put_token(server, emsp, token("NEVER001", whitelist="NEVER"))
    await put_token(server, emsp, token("OFFLINE1", whitelist="ALLOWED_OFFLINE"))
    await put_token(server, emsp, token("NEVER002", whitelist="NEVER"))
    st = emsp.stations[1]
    emsp.answers["/NEVER001/authorize"] = (200, {"status_code": 1000, "timestamp": now(), "data": {
        "allowed": "ALLOWED", "token": token("NEVER001", whitelist="NEVER"), "authorization_reference": "REF-1"}})
    assert await st.authorize("NEVER001") == "Accepted"
    ask = emsp.pushes("POST", "tokens/NEVER001/authorize")[-1]
    assert ask.query == "type=RFID"
    assert_valid("LocationReferences", ask.body)
    assert ask.body == {"location_id": str(emsp.site["id"]), "evse_uids": ["CPOB*1"]}
    emsp.answers["/NEVER002/authorize"] = (200, {"status_code": 1000, "timestamp": now(), "data": {
        "allowed": "NO_CREDIT", "token": token("NEVER002", whitelist="NEVER")}})
    assert await st.authorize("NEVER002") == "NoCredit"
    emsp.answers["/UNKNOWN9/authorize"] = (404, {"status_code": 2004, "timestamp": now()})
    emsp.down = True
    try:
        assert await st.authorize("OFFLINE1") == "Accepted"  # unreachable eMSP: allowed offline
        await put_token(server, emsp, token("NEVER003", whitelist="NEVER"))
        assert await st.authorize("NEVER003") == "Invalid"  # never without the eMSP
    finally:
        emsp.down = False


async def test_session_and_cdr_pushed(server, emsp, standard_tariff):
    await put_token(server, emsp, token("SESS0001", whitelist="NEVER"))
    emsp.answers["/SESS0001/authorize"] = (200, {"status_code": 1000, "timestamp": now(), "data": {
        "allowed": "ALLOWED", "token": token("SESS0001", whitelist="NEVER"), "authorization_reference": "AUTH-77"}})
    st = emsp.stations[1]
    await st.start_session(1, "SESS0001")
    put = (await emsp.wait_for("PUT", "sessions"))[-1]
    assert_valid("Session", put.body)
    session_id = put.body["id"]
    assert put.path == f"/ocpi/2.2.1/sessions/NL/CPO/{session_id}"
    assert put.body["status"] == "ACTIVE" and put.body["auth_method"] == "AUTH_REQUEST"
    assert put.body["authorization_reference"] == "AUTH-77"
    assert put.body["cdr_token"]["uid"] == "SESS0001" and put.body["evse_uid"] == "CPOB*1"
    assert put.body["location_id"] == str(emsp.site["id"])
    await st.meter_values(1, advance_s=600)
    patch = (await eventually(lambda: [p for p in emsp.pushes("PATCH", "sessions") if p.body["kwh"] > 0]))[-1]
    assert_valid("Session", {**put.body, **patch.body})
    assert len(patch.body["charging_periods"]) == 1
    await st.stop_session(1)
    final = (await eventually(lambda: [p for p in emsp.pushes("PATCH", "sessions")
                                       if p.body.get("status") == "COMPLETED"]))[-1].body
    assert final["status"] == "COMPLETED" and "end_date_time" in final
    cdr = (await emsp.wait_for("POST", "cdrs"))[-1].body
    assert_valid("CDR", cdr)
    assert cdr["session_id"] == session_id and cdr["auth_method"] == "AUTH_REQUEST"
    assert cdr["authorization_reference"] == "AUTH-77"
    assert cdr["total_energy"] == pytest.approx(final["kwh"])
    assert cdr["total_cost"]["excl_vat"] > 0.5 and cdr["currency"] == "EUR"
    assert [t["id"] for t in cdr["tariffs"]] == ["STD"]
    assert cdr["total_fixed_cost"] == {"excl_vat": 0.5, "incl_vat": 0.605}
    assert final["total_cost"] == cdr["total_cost"]
    assert "signed_data" not in cdr  # the station signed nothing
    assert cdr["cdr_location"]["evse_uid"] == "CPOB*1" and cdr["cdr_location"]["country"] == "NLD"
    assert len(cdr["charging_periods"]) == len(emsp.pushes("PATCH", f"sessions/NL/CPO/{session_id}"))
    # the CDR and the Session are also served (pull)
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{ocpi(server)}/cpo/2.2.1/cdrs", headers=tok(emsp.token_c))
        served = assert_envelope(r.json())
        assert [x["id"] for x in served] == [cdr["id"]]
        r = await c.get(f"{ocpi(server)}/cpo/2.2.1/sessions", params={"date_from": "2020-01-01T00:00:00Z"},
                        headers=tok(emsp.token_c))
        sessions = assert_envelope(r.json())
        assert sessions[0]["status"] == "COMPLETED"
        assert_valid("Session", sessions[0])
    r = await server.api.get("/roaming/cdrs", params={"role": "cpo"})
    assert r.json()["items"][0]["location_url"].startswith(emsp.base)


async def test_commands(server, emsp):
    url = f"{ocpi(server)}/cpo/2.2.1/commands"
    start = {"response_url": f"{emsp.base}/ocpi/2.2.1/commands/START_SESSION/1", "token": token(
        "APP00001", whitelist="NEVER") | {"type": "APP_USER"}, "location_id": str(emsp.site["id"]),
        "evse_uid": "CPOA*1", "authorization_reference": "CMD-REF"}
    assert_valid("START_SESSION", start)
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{url}/START_SESSION", json=start, headers=tok(emsp.token_c))
        response = assert_envelope(r.json())
        assert_valid("CommandResponse", response)
        assert response["result"] == "ACCEPTED" and response["timeout"] > 0
        result = (await emsp.wait_for("POST", "commands/START_SESSION/1"))[-1].body
        assert_valid("CommandResult", result)
        assert result["result"] == "ACCEPTED"
        put = await eventually(lambda: [p for p in emsp.pushes("PUT", "sessions")
                                        if p.body["cdr_token"]["uid"] == "APP00001"])
        session = put[-1].body
        assert session["auth_method"] == "COMMAND" and session["authorization_reference"] == "CMD-REF"
        # stop it again
        stop = {"response_url": f"{emsp.base}/ocpi/2.2.1/commands/STOP_SESSION/2", "session_id": session["id"]}
        r = await c.post(f"{url}/STOP_SESSION", json=stop, headers=tok(emsp.token_c))
        assert assert_envelope(r.json())["result"] == "ACCEPTED"
        result = (await emsp.wait_for("POST", "commands/STOP_SESSION/2"))[-1].body
        assert result["result"] == "ACCEPTED"
        await emsp.wait_for("POST", "cdrs", match=lambda r: r.body["session_id"] == session["id"])
        # unknown session, unknown location, unknown command, malformed body
        r = await c.post(f"{url}/STOP_SESSION", json={**stop, "session_id": "99999"}, headers=tok(emsp.token_c))
        assert assert_envelope(r.json())["result"] == "UNKNOWN_SESSION"
        r = await c.post(f"{url}/START_SESSION", json={**start, "location_id": "999"}, headers=tok(emsp.token_c))
        assert r.status_code == 200 and assert_envelope(r.json(), 2003) is None
        r = await c.post(f"{url}/SELF_DESTRUCT", json={}, headers=tok(emsp.token_c))
        assert assert_envelope(r.json())["result"] == "NOT_SUPPORTED"
        r = await c.post(f"{url}/START_SESSION", json={"token": start["token"]}, headers=tok(emsp.token_c))
        assert assert_envelope(r.json(), 2001) is None
        # a token of another eMSP is refused
        r = await c.post(f"{url}/START_SESSION", json={**start, "token": token("X1", party_id="OTH")},
                         headers=tok(emsp.token_c))
        assert assert_envelope(r.json())["result"] == "REJECTED"
        # unlock
        unlock = {"response_url": f"{emsp.base}/ocpi/2.2.1/commands/UNLOCK_CONNECTOR/3",
                  "location_id": str(emsp.site["id"]), "evse_uid": "CPOA*1", "connector_id": "1"}
        r = await c.post(f"{url}/UNLOCK_CONNECTOR", json=unlock, headers=tok(emsp.token_c))
        assert assert_envelope(r.json())["result"] == "ACCEPTED"
        result = (await emsp.wait_for("POST", "commands/UNLOCK_CONNECTOR/3"))[-1].body
        assert_valid("CommandResult", result)


def partner_view(emsp, location_id) -> dict[str, str]:
    """The status of each EVSE of a Location as the partner has it from our pushes, in order."""
    view: dict[str, str] = {}
    path = f"/ocpi/2.2.1/locations/NL/CPO/{location_id}"
    for r in emsp.pushes(None, "locations"):
        if r.path == path and r.method == "PUT":
            view.update({e["uid"]: e["status"] for e in r.body["evses"]})
        elif r.path.startswith(path + "/") and r.path.count("/") == path.count("/") + 1 and "status" in r.body:
            view[r.path.rsplit("/", 1)[1]] = r.body["status"]
    return view


async def settled(server, emsp) -> None:
    """Wait until the partner has the Location as we serve it and the outbox is drained: the
    pushes of the stations' boots and earlier tests are delivered, none is queued or in flight."""
    site = emsp.site["id"]

    async def check():
        for status in ("pending", "sending"):
            if (await server.api.get("/roaming/outbox", params={"status": status})).json()["total"]:
                return False
        async with httpx.AsyncClient() as c:
            r = await c.get(f"{ocpi(server)}/cpo/2.2.1/locations/{site}", headers=tok(emsp.token_c))
        served = {e["uid"]: e["status"] for e in assert_envelope(r.json())["evses"]}
        return served == partner_view(emsp, site)
    await eventually(check, timeout=20)


async def test_pushes_wait_for_a_partner_that_is_down(server, emsp):
    await settled(server, emsp)  # run alone, the stations' boot-time pushes may still be on their way
    emsp.down = True
    st = emsp.stations[0]
    before = len(emsp.pushes("PATCH", "locations"))
    try:
        await st.status(1, "Unavailable")
        await st.status(1, "Faulted")
        await st.status(1, "Available")

        async def queued():  # the three states fold into one queued PATCH holding the newest
            r = await server.api.get("/roaming/outbox", params={"status": "pending"})
            items = [i for i in r.json()["items"] if i["path"].endswith("CPOA*1")]
            return len(items) == 1 and items[0]["attempts"] >= 1 and items[0]["body"]["status"] == "AVAILABLE" \
                and items
        pending = await eventually(queued)
        assert all(i["last_error"] for i in pending if i["attempts"])
    finally:
        emsp.down = False

    def delivered():
        statuses = [p.body["status"] for p in emsp.pushes("PATCH", "locations")[before:] if p.path.endswith("CPOA*1")]
        return statuses or None
    assert (await eventually(delivered, timeout=20)) == ["AVAILABLE"]  # the newest state, never an older after it
    await asyncio.sleep(0.5)
    assert [p.body["status"] for p in emsp.pushes("PATCH", "locations")[before:] if p.path.endswith("CPOA*1")] == \
        ["AVAILABLE"]
    assert_location_pushes_valid(emsp)

    async def drained():
        return (await server.api.get("/roaming/outbox", params={"status": "pending"})).json()["total"] == 0
    await eventually(drained)


async def test_opening_times_and_facilities(server, emsp):
    site_id = emsp.site["id"]
    r = await server.api.get(f"/roaming/sites/{site_id}")
    assert r.status_code == 200 and r.json()["location"] == {"opening_times": {"twentyfourseven": True}}
    hours = {"twentyfourseven": False,
             "regular_hours": [{"weekday": d, "period_begin": "07:00", "period_end": "22:00"} for d in range(1, 6)]
             + [{"weekday": 6, "period_begin": "09:00", "period_end": "17:30"}],
             "exceptional_openings": [{"period_begin": "2030-01-05T10:00:00.000Z",
                                       "period_end": "2030-01-05T14:00:00.000Z"}],
             "exceptional_closings": [{"period_begin": "2029-12-25T00:00:00.000Z",
                                       "period_end": "2029-12-26T00:00:00.000Z"}]}
    assert_valid("Hours", hours)
    before = len([p for p in emsp.pushes("PUT", "locations") if p.path.endswith(f"/{site_id}")])
    r = await server.api.put(f"/roaming/sites/{site_id}", json={
        "opening_times": hours, "facilities": ["WIFI", "CAFE", "WIFI"], "charging_when_closed": True})
    assert r.status_code == 200, r.text
    assert r.json()["facilities"] == ["CAFE", "WIFI"]
    # served and pushed, valid for ocpi-types
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{ocpi(server)}/cpo/2.2.1/locations/{site_id}", headers=tok(emsp.token_c))
    loc = assert_envelope(r.json())
    assert_valid("Location", loc)
    assert loc["opening_times"] == hours and loc["facilities"] == ["CAFE", "WIFI"]
    assert loc["charging_when_closed"] is True
    pushed = await eventually(lambda: [p for p in emsp.pushes("PUT", "locations")
                                       if p.path.endswith(f"/{site_id}")][before:])
    assert_valid("Location", pushed[-1].body)
    assert pushed[-1].body["opening_times"] == hours
    # the operator's mistakes are refused
    for bad in ({"opening_times": {"twentyfourseven": False}},
                {"opening_times": {"twentyfourseven": True, "regular_hours": hours["regular_hours"]}},
                {"opening_times": {**hours, "regular_hours": [{"weekday": 8, "period_begin": "07:00",
                                                               "period_end": "22:00"}]}},
                {"opening_times": {**hours, "regular_hours": [{"weekday": 1, "period_begin": "22:00",
                                                               "period_end": "07:00"}]}},
                {"opening_times": {**hours, "exceptional_closings": [{"period_begin": "tomorrow",
                                                                      "period_end": "2030-01-01T00:00:00Z"}]}},
                {"facilities": ["SAUNA"]}, {"opening_hours": {}}):
        r = await server.api.put(f"/roaming/sites/{site_id}", json=bad)
        assert r.status_code == 400, bad
    assert (await server.api.get("/roaming/sites/99999")).status_code == 404
    # back to 24/7
    r = await server.api.put(f"/roaming/sites/{site_id}", json={"opening_times": None})
    assert r.json()["location"] == {"opening_times": {"twentyfourseven": True}}


async def test_cdr_energy_agrees_with_the_bill_when_the_last_sample_is_at_the_stop(server, emsp):
    """A 1.6 session whose last MeterValues sample has the StopTransaction's own timestamp (and
    an older register value): the CDR, the session detail and the billed energy all say 7 kWh."""
    from plugins.billing.tests.helpers import FLAT_AND_ENERGY, Session, station

    await put_token(server, emsp, token("SAME0007"))
    started = datetime.now(timezone.utc) - timedelta(minutes=90)
    stopped = started + timedelta(minutes=60)
    async with station(server, "CPO-7KWH", "1.6") as cp:
        tariff = (await server.api.post("/billing/tariffs", json={**FLAT_AND_ENERGY, "id": "SAME7"})).json()
        r = await server.api.post("/billing/assignments", json={"tariff": tariff["id"], "station_id": "CPO-7KWH"})
        assert r.status_code == 201, r.text
        s = Session(cp, "1.6", "SAME0007")
        await s.start(started, 10_000)
        await s.meter(started + timedelta(minutes=30), 13_000)
        await s.meter(stopped, 16_000)
        await s.stop(stopped, 17_000)
    cdr = (await eventually(lambda: [p.body for p in emsp.pushes("POST", "cdrs")
                                     if p.body["cdr_token"]["uid"] == "SAME0007"]))[-1]
    assert cdr["total_energy"] == 7.0
    assert sum(d["volume"] for p in cdr["charging_periods"] for d in p["dimensions"] if d["type"] == "ENERGY") \
        == pytest.approx(7.0)
    detail = (await server.api.get(f"/sessions/{cdr['session_id']}")).json()
    assert detail["energy_wh"] == 7000
    assert [float(ln["quantity"]) for ln in detail["cost"]["lines"] if ln["component"] == "ENERGY"] == [7.0]
    assert cdr["total_energy_cost"] == {"excl_vat": 2.1, "incl_vat": 2.541}


async def test_location_owner(server, emsp):
    """Location.owner: the site's organization (pushed and served), else our own BusinessDetails
    with the configured website and logo; always schema-valid."""
    from plugins.roaming_ocpi.tests.conftest import ocpi_env

    async def served(site_id):
        async with httpx.AsyncClient() as c:
            r = await c.get(f"{ocpi(server)}/cpo/2.2.1/locations/{site_id}", headers=tok(emsp.token_c))
        loc = assert_envelope(r.json())
        assert_valid("Location", loc)
        return loc

    r = await server.api.post("/organizations", json={"name": "Parking Garage Owner B.V.", "kind": "customer"})
    assert r.status_code in (200, 201), r.text
    org = r.json()
    site, _ = await site_with_stations(server, "Owned", [], lat=52.1, lon=5.1)
    assert (await served(site["id"]))["owner"] == {"name": "Test CPO"}  # no organization: the operator
    r = await server.api.patch(f"/sites/{site['id']}", json={"organization": org["id"]})
    assert r.status_code == 200, r.text
    with ocpi_env({"CSMS_OCPI_WEBSITE": "https://cpo.example.com", "CSMS_OCPI_LOGO_URL": "https://cpo.example.com/logo.PNG"}):
        await sync(server)
        path = f"/ocpi/2.2.1/locations/NL/CPO/{site['id']}"
        pushed = await emsp.wait_for("PUT", f"locations/NL/CPO/{site['id']}",
                                     match=lambda r: r.path == path and r.body["owner"]["name"] != "Test CPO")
        assert pushed[-1].body["owner"] == {"name": "Parking Garage Owner B.V."}
        assert_valid("Location", pushed[-1].body)
        loc = await served(site["id"])
        assert loc["owner"] == {"name": "Parking Garage Owner B.V."}
        assert loc["operator"] == {"name": "Test CPO", "website": "https://cpo.example.com", "logo": {
            "url": "https://cpo.example.com/logo.PNG", "category": "OPERATOR", "type": "png"}}
        central = await served(emsp.site["id"])
        assert central["owner"] == {"name": "Test CPO", "website": "https://cpo.example.com", "logo": {
            "url": "https://cpo.example.com/logo.PNG", "category": "OWNER", "type": "png"}}
    r = await server.api.patch(f"/sites/{site['id']}", json={"publish": False})
    assert r.status_code == 200, r.text
    await sync(server)


async def test_an_organization_switched_off_withdraws_its_locations(server, emsp):
    """An organization's publish switch (the core's published sites, ``published_site_ids``)
    reaches partners: off, its site's EVSEs are REMOVED for them as for an unpublished site; on
    again, back. The core's public Locations feed passes the same OCPI validation as ours."""
    async def served_status(site_id, uid):
        async with httpx.AsyncClient() as c:
            r = await c.get(f"{ocpi(server)}/cpo/2.2.1/locations/{site_id}", headers=tok(emsp.token_c))
        loc = assert_envelope(r.json())
        assert_valid("Location", loc)
        return {e["uid"]: e["status"] for e in loc["evses"]}.get(uid)

    org = (await server.api.post("/organizations", json={"name": "Switched Owner B.V.", "kind": "customer"})).json()
    site, stations = await site_with_stations(server, "Switched", ["CPOSWITCH"], lat=52.5, lon=5.5)
    try:
        r = await server.api.patch(f"/sites/{site['id']}", json={"organization": org["id"]})
        assert r.status_code == 200, r.text
        await sync(server)
        assert await served_status(site["id"], "CPOSWITCH*1") == "AVAILABLE"
        async with httpx.AsyncClient(base_url=server.base_url) as anonymous:
            public = (await anonymous.get("/public/locations")).json()["data"]
        assert str(site["id"]) in {loc["id"] for loc in public}
        for loc in public:
            assert_valid("Location", loc)

        r = await server.api.patch(f"/organizations/{org['id']}", json={"publish": False})
        assert r.status_code == 200, r.text
        await sync(server)
        assert await served_status(site["id"], "CPOSWITCH*1") == "REMOVED"
        await emsp.wait_for("PATCH", f"locations/NL/CPO/{site['id']}/CPOSWITCH*1",
                            match=lambda r: r.body.get("status") == "REMOVED")
        r = await server.api.patch(f"/organizations/{org['id']}", json={"publish": True})
        assert r.status_code == 200, r.text
        await sync(server)
        assert await served_status(site["id"], "CPOSWITCH*1") == "AVAILABLE"
    finally:
        await stations[0].close()


async def test_station_moves_between_sites(server, emsp):
    """A station moved to another site: REMOVED at the old Location and a new EVSE (a new uid)
    at the new one; moved to an unpublished site: REMOVED, nothing new; moved back: its old
    uid at the old Location again. No uid is ever at two Locations."""

    async def served():
        locations, url = [], f"{ocpi(server)}/cpo/2.2.1/locations"
        async with httpx.AsyncClient() as c:
            while url:  # every page (the server's page limit is 2)
                r = await c.get(url, headers=tok(emsp.token_c))
                locations += assert_envelope(r.json())
                url = r.headers["link"].split(">")[0][1:] if "link" in r.headers else ""
        found = {}
        for loc in locations:
            assert_valid("Location", loc)
            for e in loc["evses"]:
                assert e["uid"] not in found, f"{e['uid']} at {found.get(e['uid'])} and {loc['id']}"
                found[e["uid"]] = (loc["id"], e["status"])
        return found

    async def move(site_id):
        r = await server.api.patch("/stations/CPOMOVE", json={"site": site_id})
        assert r.status_code == 200, r.text
        await sync(server)

    first, stations = await site_with_stations(server, "Move from", ["CPOMOVE"], lat=52.2, lon=5.2)
    second, _ = await site_with_stations(server, "Move to", [], lat=52.3, lon=5.3)
    hidden, _ = await site_with_stations(server, "Move hidden", [], lat=52.4, lon=5.4)
    r = await server.api.patch(f"/sites/{hidden['id']}", json={"publish": False})
    assert r.status_code == 200, r.text
    try:
        await sync(server)
        assert (await served())["CPOMOVE*1"] == (str(first["id"]), "AVAILABLE")
        # to the second site
        await move(second["id"])
        now_served = await served()
        assert now_served["CPOMOVE*1"] == (str(first["id"]), "REMOVED")
        assert now_served["CPOMOVE*1~2"] == (str(second["id"]), "AVAILABLE")
        await emsp.wait_for("PATCH", f"locations/NL/CPO/{first['id']}/CPOMOVE*1",
                            match=lambda r: r.body.get("status") == "REMOVED")
        put = await emsp.wait_for("PUT", f"locations/NL/CPO/{second['id']}", match=lambda r: any(
            e["uid"] == "CPOMOVE*1~2" for e in ([r.body] if "connectors" in r.body else r.body.get("evses", []))))
        assert_location_pushes_valid(emsp)
        assert put
        # to an unpublished site: removed at the second, nothing new anywhere
        await move(hidden["id"])
        now_served = await served()
        assert now_served["CPOMOVE*1~2"] == (str(second["id"]), "REMOVED")
        assert not [u for u, (_, status) in now_served.items() if u.startswith("CPOMOVE") and status != "REMOVED"]
        await emsp.wait_for("PATCH", f"locations/NL/CPO/{second['id']}/CPOMOVE*1~2",
                            match=lambda r: r.body.get("status") == "REMOVED")
        # back to the first site: its uid there again, pushed in full
        await move(first["id"])
        now_served = await served()
        assert now_served["CPOMOVE*1"] == (str(first["id"]), "AVAILABLE")
        assert now_served["CPOMOVE*1~2"] == (str(second["id"]), "REMOVED")
        await emsp.wait_for("PUT", f"locations/NL/CPO/{first['id']}/CPOMOVE*1",
                            match=lambda r: r.body["status"] == "AVAILABLE")
        assert_location_pushes_valid(emsp)
    finally:
        await stations[0].close()


OCMF_BEGIN = ('OCMF|{"FV":"1.0","GI":"SIM METER","GS":"S0001","PG":"T1","RD":[{"TM":"2026-12-06T10:00:00,000+0000 S",'
              '"TX":"B","RV":1.0,"RI":"1-b:1.8.0","RU":"kWh","ST":"G"}]}|{"SA":"ECDSA-secp256r1-SHA256","SD":"3045AB"}')
OCMF_END = ('OCMF|{"FV":"1.0","GI":"SIM METER","GS":"S0001","PG":"T2","RD":[{"TM":"2026-12-06T10:30:00,000+0000 S",'
            '"TX":"E","RV":5.0,"RI":"1-b:1.8.0","RU":"kWh","ST":"G"}]}|{"SA":"ECDSA-secp256r1-SHA256","SD":"3046CD"}')


async def test_cdr_signed_data_from_a_16_station(server, emsp):
    """A 1.6 station sending OCMF SignedData at the start (MeterValues) and the end
    (StopTransaction's transactionData): the CDR carries them as signed_data, unchanged."""
    from csms.testing import SimStation
    from plugins.roaming_ocpi.tests.conftest import ocpi_env

    await put_token(server, emsp, token("SIGN0001"))
    r = await server.api.post("/stations", json={"station_id": "CPOSIGN16", "site": emsp.site["id"]})
    assert r.status_code in (200, 201), r.text
    st = SimStation("CPOSIGN16", server.ws_url("CPOSIGN16"), "1.6", evses=1, heartbeat=False)
    await st.connect()
    try:
        assert await st.boot() == "Accepted"
        await st.status(1, "Available")
        tx = await st.start_session(1, "SIGN0001")
        await st.call("MeterValues", {"connectorId": 1, "transactionId": tx.transaction_id, "meterValue": [{
            "timestamp": now(), "sampledValue": [
                {"value": "1000", "context": "Transaction.Begin", "measurand": "Energy.Active.Import.Register"},
                {"value": OCMF_BEGIN, "format": "SignedData", "context": "Transaction.Begin"}]}]})
        sampled = st._sampled

        def with_signature(ev, context, energy_only=False):
            values = sampled(ev, context, energy_only)
            if context == "Transaction.End":
                values = [*values, {"value": OCMF_END, "format": "SignedData", "context": "Transaction.End",
                                    "measurand": "Energy.Active.Import.Register"}]
            return values

        st._sampled = with_signature
        with ocpi_env({"CSMS_OCPI_SIGNED_DATA_URL": "https://cpo.example.com/transparency"}):
            await st.stop_session(1)
            cdr = (await emsp.wait_for("POST", "cdrs", match=lambda r: r.body["cdr_token"]["uid"] == "SIGN0001"))[-1].body
        assert_valid("CDR", cdr)
        assert cdr["signed_data"] == {"encoding_method": "OCMF", "url": "https://cpo.example.com/transparency",
                                      "signed_values": [
            {"nature": "Start", "plain_data": OCMF_BEGIN.split("|")[1], "signed_data": OCMF_BEGIN},
            {"nature": "End", "plain_data": OCMF_END.split("|")[1], "signed_data": OCMF_END}]}
    finally:
        await st.close()


async def test_cdr_signed_data_from_a_201_station(server, emsp):
    """A 2.0.1 station signing its energy register at the start and the end of the transaction
    (signedMeterValue in the TransactionEvents): the core keeps them, the CDR carries them with
    the station's encoding method and public key."""
    from csms.testing import SimStation

    await put_token(server, emsp, token("SIGN0201"))
    r = await server.api.post("/stations", json={"station_id": "CPOSIGN201", "site": emsp.site["id"]})
    assert r.status_code in (200, 201), r.text
    st = SimStation("CPOSIGN201", server.ws_url("CPOSIGN201"), "2.0.1", evses=1, heartbeat=False)
    sampled = st._sampled
    blobs = {"Transaction.Begin": "c2lnbmVkLWJlZ2lu", "Transaction.End": "c2lnbmVkLWVuZA=="}

    def with_signature(ev, context, energy_only=False):
        values = sampled(ev, context, energy_only)
        if context in blobs:
            values[0] = {**values[0], "signedMeterValue": {
                "signedMeterData": blobs[context], "signingMethod": "ECDSA-secp256r1-SHA256",
                "encodingMethod": "OCMF", "publicKey": "cHVibGljLWtleQ=="}}
        return values

    st._sampled = with_signature
    await st.connect()
    try:
        assert await st.boot() == "Accepted"
        await st.status(1, "Available")
        await st.start_session(1, "SIGN0201")
        await st.stop_session(1)
        cdr = (await emsp.wait_for("POST", "cdrs", match=lambda r: r.body["cdr_token"]["uid"] == "SIGN0201"))[-1].body
        assert_valid("CDR", cdr)
        signed = cdr["signed_data"]
        assert signed["encoding_method"] == "OCMF" and signed["public_key"] == "cHVibGljLWtleQ=="
        assert [(v["nature"], v["signed_data"]) for v in signed["signed_values"]] == [
            ("Start", "c2lnbmVkLWJlZ2lu"), ("End", "c2lnbmVkLWVuZA==")]
    finally:
        await st.close()


async def test_signed_data_mapping():  # async: the module runs its tests on one loop
    """The mapping on its own: 2.0.1 signedMeterValue (encoding and public key given by the
    station), repeated blobs, other measurands, values of no transaction context, oversize blobs."""
    from plugins.roaming_ocpi.objects import signed_data

    assert signed_data([]) is None
    assert signed_data([{"value": "123", "measurand": "Energy.Active.Import.Register"}]) is None
    v201 = [{"value": 1000.0, "context": "Transaction.Begin", "signedMeterValue": {
        "signedMeterData": "c2lnbmVkLWJlZ2lu", "signingMethod": "ECDSA", "encodingMethod": "EDL40 Mennekes",
        "publicKey": "cHVibGljLWtleQ=="}},
        {"value": 3.0, "measurand": "Power.Active.Import", "context": "Transaction.End",
         "signedMeterValue": {"signedMeterData": "cG93ZXI=", "encodingMethod": "EDL40 Mennekes"}},
        {"value": 5000.0, "context": "Transaction.End", "signedMeterValue": {
            "signedMeterData": "c2lnbmVkLWVuZA==", "signingMethod": "ECDSA", "encodingMethod": "EDL40 Mennekes",
            "publicKey": "cHVibGljLWtleQ=="}}]
    data = signed_data(v201)
    assert data == {"encoding_method": "EDL40 Mennekes", "public_key": "cHVibGljLWtleQ==", "signed_values": [
        {"nature": "Start", "plain_data": "1000.0", "signed_data": "c2lnbmVkLWJlZ2lu"},
        {"nature": "End", "plain_data": "5000.0", "signed_data": "c2lnbmVkLWVuZA=="}]}
    assert_valid("CDR", {**_minimal_cdr(), "signed_data": data})
    periodic = [{"value": "AP;0;1;ABC", "format": "SignedData", "context": "Sample.Periodic"},
                {"value": "AP;0;1;ABC", "format": "SignedData", "context": "Sample.Periodic"},
                {"value": "AP;0;2;DEF", "format": "SignedData", "context": "Sample.Periodic"},
                {"value": "X" * 5001, "format": "SignedData", "context": "Transaction.End"}]
    assert signed_data(periodic) == {"encoding_method": "Alfen Eichrecht", "signed_values": [
        {"nature": "Intermediate", "plain_data": "AP;0;1;ABC", "signed_data": "AP;0;1;ABC"},
        {"nature": "Intermediate", "plain_data": "AP;0;2;DEF", "signed_data": "AP;0;2;DEF"}]}


def _minimal_cdr() -> dict:
    return {"country_code": "NL", "party_id": "CPO", "id": "1", "start_date_time": "2026-12-06T10:00:00Z",
            "end_date_time": "2026-12-06T10:30:00Z", "cdr_token": {
                "country_code": "DE", "party_id": "FAK", "uid": "X", "type": "RFID", "contract_id": "DE-FAK-CX"},
            "auth_method": "WHITELIST", "cdr_location": {
                "id": "1", "address": "Damrak 1", "city": "Amsterdam", "country": "NLD",
                "coordinates": {"latitude": "52.370216", "longitude": "4.895168"}, "evse_uid": "A*1",
                "evse_id": "NL*CPO*EA*1", "connector_id": "1", "connector_standard": "IEC_62196_T2",
                "connector_format": "SOCKET", "connector_power_type": "AC_3_PHASE"},
            "currency": "EUR", "charging_periods": [{"start_date_time": "2026-12-06T10:00:00Z", "dimensions": [
                {"type": "ENERGY", "volume": 4.0}]}], "total_cost": {"excl_vat": 0.0},
            "total_energy": 4.0, "total_time": 0.5, "last_updated": "2026-12-06T10:30:00Z"}
