"""B09 SetNetworkProfile and A05 / B10 moving a station onto a new profile (the profile, its slot
first in NetworkConfigurationPriority, a reset) over REST against real stations on a real
WebSocket; a lower security profile and bad connections are refused before sending; 1.6 has none."""

from __future__ import annotations

from typing import Any, AsyncContextManager

import pytest
from ocpp.routing import on
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from csms.core.tables import Station
from csms.testing.stations import Station201, station
from tests.test_ocpp_rpc_strict import Commands, create_token, node_station, strict_station  # noqa: F401 (fixture)

PROFILE = {"slot": 1, "url": "wss://csms.example.org/ocpp", "security_profile": 2, "interface": "Wireless0",
           "message_timeout": 45}


class NetworkStation(Station201):
    """Keeps its network profiles by slot and its NetworkConfigurationPriority; ``refuse`` names
    the message it answers Rejected."""

    def setup(self, firmware_version: str) -> None:
        super().setup(firmware_version)
        self.profiles: dict[int, dict[str, Any]] = {0: {"ocpp_csms_url": "ws://old/ocpp"}}
        self.priority = "0"
        self.refuse = ""

    @on(Action201.set_network_profile)
    async def on_set_network_profile(self, configuration_slot, connection_data, **kwargs):
        self.received.append(("SetNetworkProfile", {"slot": configuration_slot, "data": connection_data}))
        if self.refuse == "SetNetworkProfile":
            return result201.SetNetworkProfile(status="Rejected")
        self.profiles[configuration_slot] = connection_data
        return result201.SetNetworkProfile(status="Accepted")

    @on(Action201.get_variables)
    async def on_get_variables(self, get_variable_data, **kwargs):
        self.received.append(("GetVariables", get_variable_data))
        return result201.GetVariables(get_variable_result=[
            {"attribute_status": "Accepted", "attribute_value": self.priority, "component": d["component"],
             "variable": d["variable"]} for d in get_variable_data])

    @on(Action201.set_variables)
    async def on_set_variables(self, set_variable_data, **kwargs):
        self.received.append(("SetVariables", set_variable_data))
        status = "Rejected" if self.refuse == "SetVariables" else "Accepted"
        if status == "Accepted":
            self.priority = set_variable_data[0]["attribute_value"]
        return result201.SetVariables(set_variable_result=[
            {"attribute_status": status, "component": d["component"], "variable": d["variable"]}
            for d in set_variable_data])

    @on(Action201.reset)
    async def on_reset(self, type, **kwargs):
        self.received.append(("Reset", {"type": type}))
        return result201.Reset(status="Scheduled")


def network_station(srv: Any, station_id: str) -> AsyncContextManager[NetworkStation]:
    """A booted :class:`NetworkStation` with its receive loop running."""
    return station(srv, station_id, "2.0.1", cls=NetworkStation)


async def test_set_and_switch_network_profile(any_server):
    server = any_server
    sid, url = "NETP1", "/stations/NETP1/network-profiles"
    async with network_station(server, sid) as cp:
        r = await server.api.post(url, json=PROFILE)
        assert r.status_code == 201 and r.json()["status"] == "Accepted" and r.json()["slot"] == 1, r.text
        assert cp.received[-1] == ("SetNetworkProfile", {"slot": 1, "data": {
            "ocpp_version": "OCPP20", "ocpp_transport": "JSON", "ocpp_csms_url": "wss://csms.example.org/ocpp",
            "message_timeout": 45, "security_profile": 2, "ocpp_interface": "Wireless0"}})

        # A05: the new profile in slot 2, first in the priority (the others kept behind), a reset
        cp.priority = "0,1"
        r = await server.api.post(f"{url}/switch", json={**PROFILE, "slot": 2, "security_profile": 3})
        assert r.status_code == 201, r.text
        assert r.json() == {"status": "Accepted", "priority": "2,0,1", "steps": {
            "set_network_profile": "Accepted", "priority": "Accepted", "reset": "Scheduled"}}
        assert [m[0] for m in cp.received[-4:]] == ["SetNetworkProfile", "GetVariables", "SetVariables", "Reset"]
        assert cp.priority == "2,0,1" and cp.received[-1] == ("Reset", {"type": "OnIdle"})
        conf = (await server.api.get(f"/stations/{sid}/configuration")).json()["variables"]
        assert [v["value"] for v in conf if v["variable"] == "NetworkConfigurationPriority"] == ["2,0,1"]

        # without the reset, and with the slot already in the list: it moves to the front
        r = await server.api.post(f"{url}/switch", json={**PROFILE, "slot": 0, "reset": False})
        assert r.json()["priority"] == "0,2,1" and "reset" not in r.json()["steps"]

        # the station refuses a step: the steps after it are not sent
        cp.refuse = "SetVariables"
        count = len(cp.received)
        r = await server.api.post(f"{url}/switch", json=PROFILE)
        assert r.json() == {"status": "Rejected", "failed_at": "priority", "steps": {
            "set_network_profile": "Accepted", "priority": "Rejected"}}
        assert [m[0] for m in cp.received[count:]] == ["SetNetworkProfile", "GetVariables", "SetVariables"]
        cp.refuse = "SetNetworkProfile"
        r = await server.api.post(f"{url}/switch", json=PROFILE)
        assert r.json()["failed_at"] == "set_network_profile" and r.json()["status"] == "Rejected"

        # no downgrade below the profile the station is stored at
        await Station.update({Station.security_profile: 2}).where(Station.station_id == sid)
        count = len(cp.received)
        r = await server.api.post(url, json={**PROFILE, "url": "ws://csms.example.org/ocpp", "security_profile": 1})
        assert r.status_code == 400 and "security profile 2" in r.json()["detail"], r.text
        assert len(cp.received) == count
        audit = (await server.api.get("/audit", params={"object_id": sid})).json()["items"]
        assert [a["after"]["action"] for a in audit if a["action"] == "command"].count("SetNetworkProfile") == 5

    offline = await server.api.post(url, json=PROFILE)
    assert offline.status_code == 409 and offline.json()["extra"]["error"] == "StationOffline"
    assert (await server.api.post("/stations/NOPE/network-profiles", json=PROFILE)).status_code == 404


@pytest.mark.parametrize("change", [
    {"slot": -1}, {"security_profile": 0}, {"security_profile": 4}, {"url": "https://csms.example.org/ocpp"},
    {"url": "ws://csms.example.org/ocpp"}, {"url": "wss://"}, {"url": "wss://x/" + "a" * 520},
    {"security_profile": 1}, {"interface": "Ethernet"}, {"message_timeout": 0}, {"apn": "internet"},
])
async def test_bad_profiles_are_refused_before_sending(server, change):
    async with network_station(server, "NETP2") as cp:
        r = await server.api.post("/stations/NETP2/network-profiles", json={**PROFILE, **change})
        assert r.status_code == 400, r.text
        assert not [m for m in cp.received if m[0] == "SetNetworkProfile"]


async def test_ocpp16_has_no_network_profiles(server):
    async with station(server, "NETP16", "1.6"):
        for path in ("/stations/NETP16/network-profiles", "/stations/NETP16/network-profiles/switch"):
            r = await server.api.post(path, json=PROFILE)
            assert r.status_code == 409 and r.json()["extra"]["error"] == "NotSupported", r.text
            assert "1.6" in r.json()["detail"] and "SecurityProfile" in r.json()["detail"]


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_strict_station_network_profile(server, node_station, protocol):
    """The ocpp-rpc strict station checks SetNetworkProfile, the GetVariables / SetVariables of
    the priority and the Reset against the official schemas, and reboots; 1.6 is sent nothing."""
    sid = "NETSTRICT16" if protocol == "ocpp1.6" else "NETSTRICT201"
    await create_token(server, f"{sid}-TAG")
    async with strict_station(node_station, server, sid, protocol, token=f"{sid}-TAG", linger=120) as st:
        await st.wait_event("lingering", timeout=60)
        cmd = Commands(server, st, sid)
        if protocol == "ocpp1.6":
            refused = await cmd.refused("POST", "/network-profiles", PROFILE, http=409)
            assert refused["extra"]["error"] == "NotSupported"
        else:
            await cmd.send("POST", "/network-profiles", {**PROFILE, "slot": 9}, action="SetNetworkProfile",
                           status="Rejected")
            mark = st.mark()
            r = await server.api.post(f"/stations/{sid}/network-profiles/switch",
                                      json={**PROFILE, "url": "ws://csms.example.org/ocpp", "security_profile": 1})
            assert r.status_code == 201 and r.json() == {"status": "Accepted", "priority": "1,0", "steps": {
                "set_network_profile": "Accepted", "priority": "Accepted", "reset": "Accepted"}}, r.text
            stored = await st.wait_event("network_profile", since=mark, slot=1)
            assert stored["profile"]["ocppCsmsUrl"] == "ws://csms.example.org/ocpp"
            await st.wait_event("rebooted", since=mark, timeout=30)
            await cmd.refused("POST", "/network-profiles", {**PROFILE, "interface": "Ethernet"})
        assert not st.errors, st.report()
        st.assert_clean_exit(await st.quit())
