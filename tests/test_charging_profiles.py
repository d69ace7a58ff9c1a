"""Charging profiles at a station over REST against real stations on a real WebSocket (the
``ocpp`` library's ChargePoint): K09 GetChargingProfiles with ReportChargingProfiles stored,
K10 / 1.6 ClearChargingProfile by id and by criteria (stored profiles change only after the
station accepts), K05 / 1.6 remote start with a TxProfile, checked before sending."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import pytest
import websockets
from ocpp.routing import after, on
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from csms.core.runtime import get_core
from csms.testing.stations import Station16, Station201
from tests.test_display_messages import eventually
from tests.test_ocpp_rpc_strict import (Commands, create_token, node_station,  # noqa: F401 (fixture)
                                        strict_station)


def schedule(limit: float) -> dict[str, Any]:
    return {"charging_rate_unit": "A", "charging_schedule_period": [{"start_period": 0, "limit": limit}]}


class Profiles:
    """What both test stations keep: their profiles by id, with the EVSE (1.6: connector)."""

    def keep(self, evse_id: int, profile: dict[str, Any], profile_id: int) -> None:
        self.held[profile_id] = (evse_id, profile)

    def clear_matching(self, profile_id: int | None, evse_id: int | None, purpose: str | None,
                       stack_level: int | None) -> str:
        if self.refuse_clear:
            return "Unknown"
        gone = [pid for pid, (evse, profile) in self.held.items()
                if (profile_id is None or pid == profile_id)
                and (evse_id is None or evse == evse_id)
                and (purpose is None or profile["charging_profile_purpose"] == purpose)
                and (stack_level is None or profile["stack_level"] == stack_level)]
        for pid in gone:
            del self.held[pid]
        return "Accepted" if gone else "Unknown"


class ProfileStation201(Profiles, Station201):
    def setup(self, firmware_version: str) -> None:
        super().setup(firmware_version)
        self.held: dict[int, tuple[int, dict[str, Any]]] = {}
        self.refuse_clear = False

    @on(Action201.set_charging_profile)
    async def on_set_charging_profile(self, evse_id, charging_profile, **kwargs):
        self.keep(evse_id, charging_profile, charging_profile["id"])
        return result201.SetChargingProfile(status="Accepted")

    @on(Action201.clear_charging_profile)
    async def on_clear_charging_profile(self, charging_profile_id=None, charging_profile_criteria=None, **kwargs):
        self.received.append(("ClearChargingProfile", {"id": charging_profile_id,
                                                       "criteria": charging_profile_criteria}))
        c = charging_profile_criteria or {}
        return result201.ClearChargingProfile(status=self.clear_matching(
            charging_profile_id, c.get("evse_id"), c.get("charging_profile_purpose"), c.get("stack_level")))

    @on(Action201.get_charging_profiles)
    async def on_get_charging_profiles(self, request_id, charging_profile, evse_id=None, **kwargs):
        self.received.append(("GetChargingProfiles", {"evse_id": evse_id, "criteria": charging_profile}))
        return result201.GetChargingProfiles(status="Accepted" if self._matching(evse_id, charging_profile)
                                             else "NoProfiles")

    @after(Action201.get_charging_profiles)
    async def after_get_charging_profiles(self, request_id, charging_profile, evse_id=None, **kwargs):
        found = self._matching(evse_id, charging_profile)
        evses = sorted({evse for evse, _ in found})
        for number, evse in enumerate(evses):
            await self.call(call201.ReportChargingProfiles(
                request_id=request_id, charging_limit_source="CSO", evse_id=evse,
                charging_profile=[p for e, p in found if e == evse], tbc=number + 1 < len(evses)))

    def _matching(self, evse_id: int | None, criteria: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
        return [(evse, p) for pid, (evse, p) in self.held.items()
                if (evse_id is None or evse == evse_id)
                and criteria.get("charging_profile_purpose") in (None, p["charging_profile_purpose"])
                and criteria.get("stack_level") in (None, p["stack_level"])
                and (not criteria.get("charging_profile_id") or pid in criteria["charging_profile_id"])]

    @on(Action201.request_start_transaction)
    async def on_request_start(self, id_token, remote_start_id, evse_id=None, charging_profile=None, **kwargs):
        self.received.append(("RequestStartTransaction", {"evse_id": evse_id, "charging_profile": charging_profile}))
        if charging_profile is not None:
            self.keep(evse_id, charging_profile, charging_profile["id"])
        return result201.RequestStartTransaction(status="Accepted")


class ProfileStation16(Profiles, Station16):
    def setup(self, firmware_version: str) -> None:
        super().setup(firmware_version)
        self.held = {}
        self.refuse_clear = False

    @on(Action16.set_charging_profile)
    async def on_set_charging_profile(self, connector_id, cs_charging_profiles, **kwargs):
        self.keep(connector_id, cs_charging_profiles, cs_charging_profiles["charging_profile_id"])
        return result16.SetChargingProfile(status="Accepted")

    @on(Action16.clear_charging_profile)
    async def on_clear_charging_profile(self, id=None, connector_id=None, charging_profile_purpose=None,
                                        stack_level=None, **kwargs):
        self.received.append(("ClearChargingProfile", {"id": id, "connector_id": connector_id,
                                                       "purpose": charging_profile_purpose,
                                                       "stack_level": stack_level}))
        return result16.ClearChargingProfile(status=self.clear_matching(id, connector_id, charging_profile_purpose,
                                                                        stack_level))

    @on(Action16.remote_start_transaction)
    async def on_remote_start(self, id_tag, connector_id=None, charging_profile=None, **kwargs):
        self.received.append(("RemoteStartTransaction", {"connector_id": connector_id,
                                                         "charging_profile": charging_profile}))
        if charging_profile is not None:
            self.keep(connector_id, charging_profile, charging_profile["charging_profile_id"])
        return result16.RemoteStartTransaction(status="Accepted")


@asynccontextmanager
async def profile_station(srv: Any, station_id: str, version: str) -> AsyncIterator[Any]:
    """A booted profile-keeping station of ``version`` with its receive loop running."""
    protocol = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"
    async with websockets.connect(srv.ws_url(station_id), subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        cp = (ProfileStation16 if version == "1.6" else ProfileStation201)(station_id, ws)
        cp.setup("1.0")
        task = asyncio.create_task(cp.start())
        try:
            await cp.boot()
            yield cp
        finally:
            task.cancel()


async def send_profile(server: Any, station_id: str, version: str, *, evse_id: int, profile_id: int,
                       purpose: str, stack_level: int, limit: float) -> None:
    """SetChargingProfile through the operation the smart-charging loop sends its profiles with
    (it stores the profile with the station's answer)."""
    sched = {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}
    if version == "1.6":
        profile = {"chargingProfileId": profile_id, "stackLevel": stack_level, "chargingProfilePurpose": purpose,
                   "chargingProfileKind": "Relative", "chargingSchedule": sched}
    else:
        profile = {"id": profile_id, "stackLevel": stack_level, "chargingProfilePurpose": purpose,
                   "chargingProfileKind": "Relative", "chargingSchedule": [{"id": 1, **sched}]}
    result = await get_core().operations.set_charging_profile(station_id, evse_id=evse_id, profile=profile)
    assert result["status"] == "Accepted", result


async def stored(server: Any, station_id: str) -> list[tuple[Any, ...]]:
    r = await server.api.get(f"/stations/{station_id}/charging-profiles")
    assert r.status_code == 200, r.text
    return [(p["source"], p["evse_id"], p["profile_id"], p["purpose"], p["stack_level"]) for p in r.json()["items"]]


async def test_report_and_clear_on_201(any_server):
    server = any_server
    sid, url = "CPROF1", "/stations/CPROF1/charging-profiles"
    async with profile_station(server, sid, "2.0.1") as cp:
        # the station holds profiles the CSMS did not send (another back office, or before a restore)
        cp.keep(0, {"id": 5, "stack_level": 0, "charging_profile_purpose": "ChargingStationMaxProfile",
                    "charging_profile_kind": "Absolute", "charging_schedule": [{"id": 1, "start_schedule":
                    "2030-01-01T00:00:00.000Z", **schedule(63)}]}, 5)
        cp.keep(1, {"id": 6, "stack_level": 1, "charging_profile_purpose": "TxDefaultProfile",
                    "charging_profile_kind": "Relative", "charging_schedule": [{"id": 1, **schedule(16)}]}, 6)
        cp.keep(2, {"id": 7, "stack_level": 1, "charging_profile_purpose": "TxDefaultProfile",
                    "charging_profile_kind": "Relative", "charging_schedule": [{"id": 1, **schedule(20)}]}, 7)
        listing = (await server.api.get(url)).json()
        assert listing["reports_supported"] is True and listing["items"] == []

        r = await server.api.post(f"{url}/report")
        assert r.status_code == 201 and r.json()["status"] == "Accepted", r.text
        request_id = r.json()["request_id"]
        assert cp.received[-1] == ("GetChargingProfiles", {"evse_id": None, "criteria": {}})

        async def three() -> list[tuple[Any, ...]] | None:
            rows = await stored(server, sid)
            return rows if len(rows) == 3 else None

        assert await eventually(three) == [("station", 0, 5, "ChargingStationMaxProfile", 0),
                                           ("station", 1, 6, "TxDefaultProfile", 1),
                                           ("station", 2, 7, "TxDefaultProfile", 1)]
        item = (await server.api.get(url)).json()["items"][0]
        assert item["status"] == "CSO" and item["limit"] == "63 A" and item["payload"]["id"] == 5
        events = (await server.api.get(f"/stations/{sid}/events", params={"category": "charging_profiles"})).json()
        assert {e["details"]["request_id"] for e in events["items"]} == {request_id}

        # asked again (with criteria): no duplicates; what the station no longer has is forgotten
        del cp.held[7]
        r = await server.api.post(f"{url}/report", json={"purpose": "tx_default", "stack_level": 1})
        assert r.json()["status"] == "Accepted"
        assert cp.received[-1][1]["criteria"] == {"charging_profile_purpose": "TxDefaultProfile", "stack_level": 1}

        async def two() -> list[tuple[Any, ...]] | None:
            rows = await stored(server, sid)
            return rows if len(rows) == 2 else None

        assert [row[2] for row in await eventually(two)] == [5, 6]

        # a profile the CSMS sends is listed with the station's answer
        await send_profile(server, sid, "2.0.1", evse_id=1, profile_id=40, purpose="TxDefaultProfile",
                           stack_level=2, limit=10)
        assert ("csms", 1, 40, "TxDefaultProfile", 2) in await stored(server, sid)

        # K10: by id; the stored profile is marked cleared only after the station's Accepted
        r = await server.api.delete(f"{url}/40")
        assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text
        assert cp.received[-1] == ("ClearChargingProfile", {"id": 40, "criteria": None})
        assert 40 not in cp.held and ("csms", 1, 40, "TxDefaultProfile", 2) not in await stored(server, sid)

        # by criteria
        r = await server.api.post(f"{url}/clear", json={"evse_id": 1, "purpose": "tx_default", "stack_level": 1})
        assert r.status_code == 201 and r.json()["status"] == "Accepted", r.text
        assert cp.received[-1][1]["criteria"] == {"evse_id": 1, "charging_profile_purpose": "TxDefaultProfile",
                                                  "stack_level": 1}
        assert await stored(server, sid) == [("station", 0, 5, "ChargingStationMaxProfile", 0)]

        # the station answers Unknown: nothing stored changes
        cp.refuse_clear = True
        r = await server.api.delete(f"{url}/5")
        assert r.json()["status"] == "Unknown"
        assert await stored(server, sid) == [("station", 0, 5, "ChargingStationMaxProfile", 0)]
        cp.refuse_clear = False

        # nothing matches: NoProfiles, and the reported ones of that EVSE are forgotten
        r = await server.api.post(f"{url}/report", json={"evse_id": 3})
        assert r.json()["status"] == "NoProfiles"
        audit = (await server.api.get("/audit", params={"object_id": sid})).json()["items"]
        actions = [a["after"]["action"] for a in audit if a["action"] == "command"]
        assert actions.count("GetChargingProfiles") == 3 and actions.count("ClearChargingProfile") == 3

    offline = await server.api.post(f"{url}/clear", json={"profile_id": 5})
    assert offline.status_code == 409 and offline.json()["extra"]["error"] == "StationOffline"
    offline = await server.api.post(f"{url}/report")
    assert offline.status_code == 409 and offline.json()["extra"]["error"] == "StationOffline"
    assert (await server.api.get("/stations/NOPE/charging-profiles")).status_code == 404
    assert (await server.api.post("/stations/NOPE/charging-profiles/clear", json={})).status_code == 404


async def test_clear_on_16_and_no_report(server):
    sid, url = "CPROF16", "/stations/CPROF16/charging-profiles"
    async with profile_station(server, sid, "1.6") as cp:
        await send_profile(server, sid, "1.6", evse_id=1, profile_id=11, purpose="TxDefaultProfile",
                           stack_level=1, limit=16)
        await send_profile(server, sid, "1.6", evse_id=0, profile_id=12, purpose="ChargePointMaxProfile",
                           stack_level=0, limit=32)
        listing = (await server.api.get(url)).json()
        assert listing["reports_supported"] is False and listing["ocpp_version"] == "1.6"
        assert [(p["profile_id"], p["limit"]) for p in listing["items"]] == [(12, "32 A"), (11, "16 A")]

        r = await server.api.post(f"{url}/report")
        assert r.status_code == 409 and r.json()["extra"]["error"] == "NotSupported" and "1.6" in r.json()["detail"]

        r = await server.api.post(f"{url}/clear", json={"evse_id": 1, "purpose": "tx_default"})
        assert r.status_code == 201 and r.json()["status"] == "Accepted", r.text
        assert cp.received[-1] == ("ClearChargingProfile", {"id": None, "connector_id": 1,
                                                            "purpose": "TxDefaultProfile", "stack_level": None})
        assert [p[2] for p in await stored(server, sid)] == [12]
        r = await server.api.post(f"{url}/clear", json={"purpose": "station_max"})
        assert r.json()["status"] == "Accepted" and cp.received[-1][1]["purpose"] == "ChargePointMaxProfile"
        assert await stored(server, sid) == [] and cp.held == {}
        r = await server.api.delete(f"{url}/12")
        assert r.json()["status"] == "Unknown" and cp.received[-1][1]["id"] == 12


@pytest.mark.parametrize("body", [
    {"profile_id": 3, "evse_id": 1}, {"purpose": "ChargingStationExternalConstraints"}, {"evse_id": -1},
    {"stack_level": -2}, {"purpose": 7}, {"unknown": 1},
])
async def test_bad_clear_requests_are_refused_before_sending(server, body):
    async with profile_station(server, "CPROF2", "2.0.1") as cp:
        r = await server.api.post("/stations/CPROF2/charging-profiles/clear", json=body)
        assert r.status_code == 400, r.text
        r = await server.api.post("/stations/CPROF2/charging-profiles/report", json={"limit_sources": ["Grid"]})
        assert r.status_code == 400, r.text
        assert not [m for m in cp.received if m[0] in ("ClearChargingProfile", "GetChargingProfiles")]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_remote_start_with_a_profile(server, version):
    sid = f"CPROFRS{version.replace('.', '')}"
    async with profile_station(server, sid, version) as cp:
        body = {"id_token": "CARD-1", "evse_id": 1, "charging_profile": {
            "unit": "A", "duration": 7200, "stack_level": 2,
            "periods": [{"limit": 16, "number_phases": 3}, {"start_period": 1800, "limit": 10.04}]}}
        r = await server.api.post(f"/stations/{sid}/remote-start", json=body)
        assert r.status_code == 201 and r.json()["status"] == "Accepted", r.text
        profile_id = r.json()["profile_id"]
        assert profile_id == 1
        action, sent = cp.received[-1]
        profile = sent["charging_profile"]
        periods = [{"start_period": 0, "limit": 16.0, "number_phases": 3}, {"start_period": 1800, "limit": 10.0}]
        if version == "1.6":
            assert action == "RemoteStartTransaction" and sent["connector_id"] == 1
            assert profile == {"charging_profile_id": 1, "stack_level": 2, "charging_profile_purpose": "TxProfile",
                               "charging_profile_kind": "Relative", "charging_schedule": {
                                   "charging_rate_unit": "A", "charging_schedule_period": periods, "duration": 7200}}
        else:
            assert action == "RequestStartTransaction" and sent["evse_id"] == 1
            assert profile == {"id": 1, "stack_level": 2, "charging_profile_purpose": "TxProfile",
                               "charging_profile_kind": "Relative", "charging_schedule": [{
                                   "id": 1, "charging_rate_unit": "A", "charging_schedule_period": periods,
                                   "duration": 7200}]}
            assert "transaction_id" not in profile  # K05: the transaction does not exist yet
        assert (await stored(server, sid)) == [("csms", 1, 1, "TxProfile", 2)]
        r = await server.api.post(f"/stations/{sid}/remote-start", json={**body, "evse_id": 2})
        assert r.json()["profile_id"] == 2

        # refused before anything is sent
        count = len(cp.received)
        for bad in ({"periods": []}, {"periods": [{"start_period": 5, "limit": 16}]},
                    {"periods": [{"limit": 16}, {"start_period": 0, "limit": 8}]},
                    {"periods": [{"limit": -1}]}, {"periods": [{"limit": 16, "number_phases": 4}]},
                    {"periods": [{"limit": 16}], "unit": "kW"}, {"periods": [{"limit": 16}], "duration": 0},
                    {"periods": [{"limit": 16}], "stack_level": -1}):
            r = await server.api.post(f"/stations/{sid}/remote-start", json={**body, "charging_profile": bad})
            assert r.status_code == 400, (bad, r.text)
        r = await server.api.post(f"/stations/{sid}/remote-start", json={**body, "evse_id": None})
        assert r.status_code == 400 and "EVSE" in r.json()["detail"]
        assert len(cp.received) == count


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_an_operator_sets_a_profile(server, version):
    """K01 by hand: a recurring TxDefaultProfile, a station maximum and a transaction's
    TxProfile, each checked first, sent in the station's version and listed with its answer."""
    sid = f"CPROFSET{version.replace('.', '')}"
    url = f"/stations/{sid}/charging-profiles"
    await create_token(server, f"TAG-{sid}")
    async with profile_station(server, sid, version) as cp:
        daily = {"evse_id": 1, "purpose": "tx_default", "kind": "Recurring", "recurrency": "Daily",
                 "start_at": "2026-12-07T22:00:00Z", "stack_level": 1, "unit": "W",
                 "periods": [{"limit": 11000, "number_phases": 3}, {"start_period": 28800, "limit": 4000}],
                 "valid_to": "2027-01-01T00:00:00Z"}
        r = await server.api.post(url, json=daily)
        assert r.status_code == 201 and r.json()["status"] == "Accepted" and r.json()["profile_id"] == 1, r.text
        evse, held = cp.held[1]
        schedule = held["charging_schedule"]
        schedule = schedule[0] if isinstance(schedule, list) else schedule
        assert evse == 1 and held["charging_profile_kind"] == "Recurring" and held["recurrency_kind"] == "Daily"
        assert schedule["start_schedule"].startswith("2026-12-07T22:00:00") and held["valid_to"].startswith("2027")
        assert [p["limit"] for p in schedule["charging_schedule_period"]] == [11000.0, 4000.0]
        r = await server.api.post(url, json={"evse_id": 0, "purpose": "station_max", "periods": [{"limit": 32}]})
        assert r.status_code == 201 and r.json()["profile_id"] == 2, r.text
        assert cp.held[2][1]["charging_profile_purpose"] == ("ChargePointMaxProfile" if version == "1.6"
                                                             else "ChargingStationMaxProfile")
        # a transaction's own profile needs the transaction running at that EVSE
        tx = await cp.start_session(f"TAG-{sid}")
        body = {"evse_id": 1, "purpose": "tx", "kind": "Relative", "periods": [{"limit": 10}],
                "transaction_id": str(tx)}
        r = await server.api.post(url, json=body)
        assert r.status_code == 201 and r.json()["profile_id"] == 3, r.text
        assert str(cp.held[3][1]["transaction_id"]) == str(tx)
        assert [(p[2], p[3]) for p in await stored(server, sid)] == [
            (2, "ChargePointMaxProfile" if version == "1.6" else "ChargingStationMaxProfile"),
            (1, "TxDefaultProfile"), (3, "TxProfile")]
        # refused before anything is sent
        count = len(cp.held)
        for bad, reason in (
                ({**body, "transaction_id": "nope"}, "is not running at EVSE 1"),
                ({**body, "transaction_id": None}, "names its EVSE and the transaction"),
                ({"evse_id": 1, "purpose": "station_max", "periods": [{"limit": 32}]}, "for EVSE 0"),
                ({"evse_id": 0, "purpose": "station_max", "kind": "Relative", "periods": [{"limit": 32}]}, "EVSE 0"),
                ({**daily, "recurrency": None}, "recurs Daily or Weekly"),
                ({**daily, "kind": "Absolute"}, "only a Recurring profile"),
                ({**daily, "purpose": "max"}, "purpose must be one of"),
                ({**daily, "valid_from": "2027-02-01T00:00:00Z"}, "valid_to must come after"),
                ({**daily, "periods": [{"start_period": 60, "limit": 5}]}, "first period starts at 0"),
                ({**daily, "kind": "Sometimes", "recurrency": None}, "kind must be one of")):
            r = await server.api.post(url, json=bad)
            assert r.status_code == 400 and reason in r.json()["detail"], (bad, r.text)
        assert len(cp.held) == count
    r = await server.api.post(url, json={"evse_id": 0, "purpose": "station_max", "periods": [{"limit": 32}]})
    assert r.status_code == 409, r.text  # offline


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_strict_station_profiles(server, node_station, protocol):
    """The ocpp-rpc strict station checks GetChargingProfiles, ClearChargingProfile and the
    remote start with a TxProfile against the official schemas; it reports its profiles in
    ReportChargingProfiles (2.0.1), which are stored."""
    v16 = protocol == "ocpp1.6"
    sid = "CPSTRICT16" if v16 else "CPSTRICT201"
    url = f"/stations/{sid}/charging-profiles"
    await create_token(server, f"{sid}-TAG")
    async with strict_station(node_station, server, sid, protocol, token=f"{sid}-TAG", linger=120) as st:
        await st.wait_event("lingering", timeout=60)
        cmd = Commands(server, st, sid)
        station_max = "ChargePointMaxProfile" if v16 else "ChargingStationMaxProfile"
        await send_profile(server, sid, "1.6" if v16 else "2.0.1", evse_id=1, profile_id=21,
                           purpose="TxDefaultProfile", stack_level=1, limit=16)
        await send_profile(server, sid, "1.6" if v16 else "2.0.1", evse_id=0, profile_id=22,
                           purpose=station_max, stack_level=0, limit=30)
        assert [r[:3] for r in await stored(server, sid)] == [("csms", 0, 22), ("csms", 1, 21)]
        if v16:
            refused = await cmd.refused("POST", "/charging-profiles/report", None, http=409)
            assert refused["extra"]["error"] == "NotSupported"
        else:
            mark = st.mark()
            data = await cmd.send("POST", "/charging-profiles/report", None,
                                  action="GetChargingProfiles", status="Accepted")
            await st.wait_event("profiles_reported", since=mark, requestId=data["request_id"])

            async def reported() -> list[tuple[Any, ...]] | None:
                rows = [r for r in await stored(server, sid) if r[0] == "station"]
                return rows if len(rows) == 2 else None

            assert await eventually(reported) == [("station", 0, 22, station_max, 0),
                                                  ("station", 1, 21, "TxDefaultProfile", 1)]
            await cmd.send("POST", "/charging-profiles/report", {"evse_id": 1, "stack_level": 9},
                           action="GetChargingProfiles", status="NoProfiles")
        await cmd.send("POST", "/charging-profiles/clear", {"evse_id": 0, "purpose": "station_max", "stack_level": 0},
                       action="ClearChargingProfile", status="Accepted")
        assert [r[2] for r in await stored(server, sid)] == [21] * (1 if v16 else 2)
        await cmd.send("DELETE", "/charging-profiles/22", None, action="ClearChargingProfile", status="Unknown",
                       http=200)

        mark = st.mark()
        data = await cmd.send("POST", "/remote-start", {"id_token": f"{sid}-TAG", "evse_id": 1, "charging_profile": {
            "periods": [{"limit": 20, "number_phases": 3}, {"start_period": 600, "limit": 13.5}], "duration": 3600}},
            action="RemoteStartTransaction" if v16 else "RequestStartTransaction", status="Accepted")
        sent = st.find(lambda e: e.get("event") == "call" and e["action"] in (
            "RemoteStartTransaction", "RequestStartTransaction"), since=mark)
        assert sent is not None
        profile = sent["params"]["chargingProfile"]
        assert profile["chargingProfilePurpose"] == "TxProfile" and "transactionId" not in profile
        assert (profile["chargingProfileId"] if v16 else profile["id"]) == data["profile_id"]

        await st.wait_event("tx_started", idTag=f"{sid}-TAG", since=mark)
        assert ("csms", 1, data["profile_id"], "TxProfile", 0) in await stored(server, sid)
        mark = st.mark()
        await cmd.send("POST", "/remote-stop", {}, action="RemoteStopTransaction" if v16 else "RequestStopTransaction",
                       status="Accepted")
        await st.wait_event("tx_stopped", since=mark)

        async def tx_profile_gone() -> bool:
            return all(row[3] != "TxProfile" for row in await stored(server, sid))

        await eventually(tx_profile_gone)  # a TxProfile ends with its transaction
        await cmd.refused("POST", "/remote-start", {"id_token": f"{sid}-TAG", "evse_id": 2, "charging_profile": {
            "periods": [{"start_period": 60, "limit": 20}]}})
        await cmd.refused("POST", "/charging-profiles/clear", {"profile_id": 1, "stack_level": 0})
        st.assert_clean_exit(await st.quit())
