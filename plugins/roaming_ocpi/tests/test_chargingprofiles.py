"""Charging Profiles (CPO Receiver) against a scripted eMSP over real HTTP, with simulated
stations: a profile sent to a station without a site as its TxProfile (1.6), the same handed to
the smart-charging loop at a site with a grid limit (2.0.1, loadbalancing plugin loaded), composite
schedules, clearing, unknown sessions, bad bodies; the results POSTed to the eMSP's response_url.
Also: unknown paths and methods under /ocpi answered in the envelope. Every OCPI payload is
validated with ocpi-types."""

from __future__ import annotations

import httpx
import pytest
import pytest_asyncio

from csms.testing import SimStation
from plugins.roaming_ocpi.tests.fake_partner import fake_partner, now
from plugins.roaming_ocpi.tests.ocpi_check import assert_envelope, assert_valid
from plugins.roaming_ocpi.tests.stations import eventually, site_with_stations
from plugins.roaming_ocpi.tests.test_transport import ocpi, register_fake, tok

pytestmark = pytest.mark.asyncio(loop_scope="module")


def token(uid: str) -> dict:
    return {"country_code": "DE", "party_id": "FAK", "uid": uid, "type": "RFID", "contract_id": f"DE-FAK-C{uid}",
            "issuer": "Fake", "valid": True, "whitelist": "ALWAYS", "last_updated": now()}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def emsp(server):
    """A scripted eMSP registered with our CPO; a 1.6 station without a site; a 2.0.1 station at a
    site with a 32 A grid connection."""
    async with fake_partner() as partner:
        await register_fake(server, partner)
        solo = SimStation("CPPSOLO", server.ws_url("CPPSOLO"), "1.6", evses=1, heartbeat=False)
        await solo.connect()
        assert await solo.boot() == "Accepted"
        await solo.status(1, "Available")
        site, stations = await site_with_stations(server, "Profiles", ["CPPSITE"])
        r = await server.api.patch(f"/sites/{site['id']}", json={
            "grid_limit_l1_a": 32, "grid_limit_l2_a": 32, "grid_limit_l3_a": 32})
        assert r.status_code == 200, r.text
        partner.site, partner.solo, partner.at_site = site, solo, stations[0]
        yield partner
        for st in (solo, *stations):
            await st.close()


async def start_roaming_session(server, emsp, station: SimStation, uid: str) -> str:
    """A session of one of the eMSP's tokens at ``station``; its OCPI session id."""
    async with httpx.AsyncClient() as c:
        r = await c.put(f"{ocpi(server)}/cpo/2.2.1/tokens/DE/FAK/{uid}", json=token(uid), headers=tok(emsp.token_c))
    assert r.status_code == 201, r.text
    await station.start_session(1, uid)
    puts = await eventually(lambda: [p for p in emsp.pushes("PUT", "sessions") if p.body["cdr_token"]["uid"] == uid])
    return puts[-1].body["id"]


def url(server, session_id: str) -> str:
    return f"{ocpi(server)}/cpo/2.2.1/chargingprofiles/{session_id}"


async def answered(r: httpx.Response, result: str) -> None:
    assert r.status_code == 200, r.text
    response = assert_envelope(r.json())
    assert_valid("ChargingProfileResponse", response)
    assert response["result"] == result and response["timeout"] > 0


async def result_at(emsp, path: str, kind: str) -> dict:
    body = (await emsp.wait_for("POST", path))[-1].body
    assert_valid(kind, body)
    return body


async def test_profile_sent_to_the_station(server, emsp):
    session_id = await start_roaming_session(server, emsp, emsp.solo, "PROFSOLO")
    st = emsp.solo
    since = len(st.received_calls)
    body = {"charging_profile": {"charging_rate_unit": "A", "charging_profile_period": [
        {"start_period": 0, "limit": 10.0}, {"start_period": 3600, "limit": 16.0}]},
        "response_url": f"{emsp.base}/ocpi/2.2.1/chargingprofiles/set/1"}
    assert_valid("SetChargingProfile", body)
    async with httpx.AsyncClient() as c:
        await answered(await c.put(url(server, session_id), json=body, headers=tok(emsp.token_c)), "ACCEPTED")
        assert (await result_at(emsp, "chargingprofiles/set/1", "ChargingProfileResult")) == {"result": "ACCEPTED"}
        # the station got it as the transaction's TxProfile
        frame = await st.wait_for_call("SetChargingProfile", since=since)
        profile = frame["csChargingProfiles"]
        assert frame["connectorId"] == 1 and profile["chargingProfilePurpose"] == "TxProfile"
        assert str(profile["transactionId"]) == str(st.evses[1].tx.transaction_id)
        assert [(p["startPeriod"], p["limit"]) for p in profile["chargingSchedule"]["chargingSchedulePeriod"]] == [
            (0, 10.0), (3600, 16.0)]
        assert st.limit_a(1) == 10.0

        # the composite schedule as the station computes it
        r = await c.get(url(server, session_id), params={
            "duration": "900", "response_url": f"{emsp.base}/ocpi/2.2.1/chargingprofiles/get/2"},
            headers=tok(emsp.token_c))
        await answered(r, "ACCEPTED")
        active = await result_at(emsp, "chargingprofiles/get/2", "ActiveChargingProfileResult")
        assert active["result"] == "ACCEPTED"
        assert active["profile"]["charging_profile"]["charging_rate_unit"] == "A"
        assert active["profile"]["charging_profile"]["charging_profile_period"][0]["limit"] == 10.0

        # a new profile replaces it
        body["charging_profile"]["charging_profile_period"] = [{"start_period": 0, "limit": 12.5}]
        body["response_url"] = f"{emsp.base}/ocpi/2.2.1/chargingprofiles/set/3"
        await answered(await c.put(url(server, session_id), json=body, headers=tok(emsp.token_c)), "ACCEPTED")
        assert (await result_at(emsp, "chargingprofiles/set/3", "ChargingProfileResult"))["result"] == "ACCEPTED"
        assert st.limit_a(1) == 12.5

        # cleared at the station; clearing again finds nothing
        r = await c.delete(url(server, session_id), params={
            "response_url": f"{emsp.base}/ocpi/2.2.1/chargingprofiles/clear/4"}, headers=tok(emsp.token_c))
        await answered(r, "ACCEPTED")
        assert (await result_at(emsp, "chargingprofiles/clear/4", "ClearProfileResult")) == {"result": "ACCEPTED"}
        assert (await st.wait_for_call("ClearChargingProfile", since=since))["id"] == profile["chargingProfileId"]
        assert st.limit_a(1) is None
        r = await c.delete(url(server, session_id), params={
            "response_url": f"{emsp.base}/ocpi/2.2.1/chargingprofiles/clear/5"}, headers=tok(emsp.token_c))
        await answered(r, "ACCEPTED")
        assert (await result_at(emsp, "chargingprofiles/clear/5", "ClearProfileResult")) == {"result": "UNKNOWN"}

    r = await server.api.get("/roaming/charging-profiles", params={"session_id": session_id})
    row = r.json()["items"][0]
    assert row["mode"] == "station" and row["status"] == "cleared"
    await st.stop_session(1)


async def test_profile_handed_to_the_smart_charging_loop(server, emsp):
    session_id = await start_roaming_session(server, emsp, emsp.at_site, "PROFSITE")
    st = emsp.at_site
    site_id = emsp.site["id"]
    core = server.core
    round_ = await core.smart_charging.run_round(site_id)
    assert round_.limits["CPPSITE/1"] > 10.0  # the loop shares the 32 A before any profile
    # 6900 W over three phases at 230 V: 10 A per phase
    body = {"charging_profile": {"charging_rate_unit": "W", "charging_profile_period": [
        {"start_period": 0, "limit": 6900}]}, "response_url": f"{emsp.base}/ocpi/2.2.1/chargingprofiles/set/10"}
    assert_valid("SetChargingProfile", body)
    async with httpx.AsyncClient() as c:
        await answered(await c.put(url(server, session_id), json=body, headers=tok(emsp.token_c)), "ACCEPTED")
        assert (await result_at(emsp, "chargingprofiles/set/10", "ChargingProfileResult"))["result"] == "ACCEPTED"
        assert core.smart_charging.rounds[site_id].limits["CPPSITE/1"] == 10.0
        assert st.limit_a(1) == 10.0  # the loop's TxProfile, not one of ours
        load = next(x for x in core.smart_charging.loads_of(site_id) if x.id == "CPPSITE/1")
        assert load.max_a == 10.0
        profile_ids = {p.get("id") for plist in st.profiles.values() for p in plist}
        assert not any(800_000 <= (pid or 0) < 900_000 for pid in profile_ids)

        # a limit below the station's minimum pauses the session
        body["charging_profile"]["charging_profile_period"] = [{"start_period": 0, "limit": 2000}]
        body["response_url"] = f"{emsp.base}/ocpi/2.2.1/chargingprofiles/set/11"
        await answered(await c.put(url(server, session_id), json=body, headers=tok(emsp.token_c)), "ACCEPTED")
        await result_at(emsp, "chargingprofiles/set/11", "ChargingProfileResult")
        assert core.smart_charging.rounds[site_id].limits["CPPSITE/1"] == 0.0
        assert st.limit_a(1) == 0.0

        r = await c.get(url(server, session_id), params={
            "duration": "300", "response_url": f"{emsp.base}/ocpi/2.2.1/chargingprofiles/get/12"},
            headers=tok(emsp.token_c))
        await answered(r, "ACCEPTED")
        active = await result_at(emsp, "chargingprofiles/get/12", "ActiveChargingProfileResult")
        assert active["profile"]["charging_profile"]["charging_profile_period"][0]["limit"] == 0.0

        # cleared: the loop lifts the cap again
        r = await c.delete(url(server, session_id), params={
            "response_url": f"{emsp.base}/ocpi/2.2.1/chargingprofiles/clear/13"}, headers=tok(emsp.token_c))
        await answered(r, "ACCEPTED")
        assert (await result_at(emsp, "chargingprofiles/clear/13", "ClearProfileResult"))["result"] == "ACCEPTED"
        assert core.smart_charging.rounds[site_id].limits["CPPSITE/1"] > 10.0
        assert st.limit_a(1) > 10.0
    r = await server.api.get("/roaming/charging-profiles", params={"session_id": session_id})
    assert r.json()["items"][0]["mode"] == "loop"
    await st.stop_session(1)


async def test_unknown_sessions_and_bad_requests(server, emsp):
    good = {"charging_profile": {"charging_rate_unit": "A", "charging_profile_period": [
        {"start_period": 0, "limit": 8}]}, "response_url": f"{emsp.base}/ocpi/2.2.1/chargingprofiles/set/20"}
    async with httpx.AsyncClient() as c:
        for session_id in ("99999", "not-a-session"):
            await answered(await c.put(url(server, session_id), json=good, headers=tok(emsp.token_c)),
                           "UNKNOWN_SESSION")
        r = await c.get(url(server, "99999"), params={"duration": "60", "response_url": good["response_url"]},
                        headers=tok(emsp.token_c))
        await answered(r, "UNKNOWN_SESSION")
        r = await c.delete(url(server, "99999"), params={"response_url": good["response_url"]},
                           headers=tok(emsp.token_c))
        await answered(r, "UNKNOWN_SESSION")
        # a session that ended is not active any more
        ended = [p.path.rsplit("/", 1)[1] for p in emsp.pushes("PATCH", "sessions")
                 if p.body.get("status") == "COMPLETED"]
        assert ended
        await answered(await c.put(url(server, ended[-1]), json=good, headers=tok(emsp.token_c)), "UNKNOWN_SESSION")
        # malformed bodies and parameters: 2001
        bad_bodies = [
            {"response_url": good["response_url"]},
            {**good, "charging_profile": {"charging_profile_period": [{"start_period": 0, "limit": 8}]}},
            {**good, "charging_profile": {**good["charging_profile"], "charging_rate_unit": "kW"}},
            {**good, "charging_profile": {**good["charging_profile"], "charging_profile_period": [
                {"start_period": 60, "limit": 8}, {"start_period": 0, "limit": 6}]}},
            {**good, "charging_profile": {**good["charging_profile"], "charging_profile_period": [
                {"start_period": 0, "limit": -1}]}},
            {**good, "response_url": "ftp://nowhere"},
            [1, 2, 3],
        ]
        for bad in bad_bodies:
            r = await c.put(url(server, "99999"), json=bad, headers=tok(emsp.token_c))
            assert r.status_code == 200, bad
            assert assert_envelope(r.json(), 2001) is None, bad
        r = await c.put(url(server, "99999"), content=b"{nope", headers={**tok(emsp.token_c),
                                                                          "Content-Type": "application/json"})
        assert r.status_code == 400 and assert_envelope(r.json(), 2001) is None
        for params in ({"response_url": good["response_url"]}, {"duration": "0", "response_url": good["response_url"]},
                       {"duration": "60"}):
            r = await c.get(url(server, "99999"), params=params, headers=tok(emsp.token_c))
            assert r.status_code == 200 and assert_envelope(r.json(), 2001) is None, params
        r = await c.delete(url(server, "99999"), headers=tok(emsp.token_c))
        assert assert_envelope(r.json(), 2001) is None
        # no token: 401 in the envelope
        r = await c.put(url(server, "99999"), json=good)
        assert r.status_code == 401 and assert_envelope(r.json(), 2000) is None


async def test_offline_station_is_not_supported(server, emsp):
    session_id = await start_roaming_session(server, emsp, emsp.solo, "PROFGONE")
    await emsp.solo.close()
    await eventually(lambda: server.core.commands.version_of("CPPSOLO") is None)
    body = {"charging_profile": {"charging_rate_unit": "A", "charging_profile_period": [
        {"start_period": 0, "limit": 8}]}, "response_url": f"{emsp.base}/ocpi/2.2.1/chargingprofiles/set/30"}
    async with httpx.AsyncClient() as c:
        await answered(await c.put(url(server, session_id), json=body, headers=tok(emsp.token_c)), "NOT_SUPPORTED")


async def test_module_in_version_details(server, emsp):
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{ocpi(server)}/2.2.1", headers=tok(emsp.token_c))
    details = assert_envelope(r.json())
    assert_valid("VersionDetails", details)
    assert {"identifier": "chargingprofiles", "role": "RECEIVER",
            "url": f"{ocpi(server)}/cpo/2.2.1/chargingprofiles"} in details["endpoints"]


async def test_unknown_paths_and_methods_answer_in_the_envelope(server, emsp):
    async with httpx.AsyncClient() as c:
        for path in ("/cpo/2.2.1/nothing", "/emsp/2.2.1/locations", "/2.0", "", "/cpo/2.2.1/chargingprofiles"):
            r = await c.get(f"{ocpi(server)}{path}", headers=tok(emsp.token_c))
            assert r.status_code == 404, path
            assert_envelope(r.json(), 2000)
            assert r.json()["status_message"] and r.headers["x-request-id"]
            r = await c.get(f"{ocpi(server)}{path}")
            assert r.status_code == 401, path
            assert_envelope(r.json(), 2000)
        r = await c.post(f"{ocpi(server)}/cpo/2.2.1/locations", json={}, headers=tok(emsp.token_c))
        assert r.status_code == 405 and assert_envelope(r.json(), 2000) is None
        r = await c.patch(f"{ocpi(server)}/2.2.1/credentials", json={})
        assert r.status_code == 401 and assert_envelope(r.json(), 2000) is None
