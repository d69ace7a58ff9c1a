"""B08 Get Custom Report (OCPP 2.0.1 GetReport with componentVariable / componentCriteria) over
REST against real stations on a real WebSocket: the NotifyReport parts are stored with the
station's variables like a base report's; bad requests are refused before sending; 1.6 has none."""

from __future__ import annotations

from typing import Any, AsyncContextManager

import pytest
from ocpp.routing import after, on
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from csms.testing.stations import Station201, now_iso, station
from tests.test_display_messages import eventually
from tests.test_ocpp_rpc_strict import Commands, create_token, node_station, strict_station  # noqa: F401 (fixture)

DEVICE = [  # what the test station's device model holds
    ("OCPPCommCtrlr", None, "HeartbeatInterval", "300"),
    ("OCPPCommCtrlr", None, "NetworkConfigurationPriority", "1"),
    ("EVSE", 1, "Power", "22000"),
    ("EVSE", 1, "AvailabilityState", "Available"),
    ("EVSE", 2, "AvailabilityState", "Faulted"),
]


class ReportStation(Station201):
    """Reports the variables of :data:`DEVICE` a GetReport asks for, two per NotifyReport;
    criterion ``Problem`` gives EVSE 2."""

    def _wanted(self, component_criteria, component_variable) -> list[tuple[Any, ...]]:
        rows = DEVICE
        if component_variable:
            rows = [r for r in rows if any(
                w["component"]["name"] == r[0]
                and (w["component"].get("evse") is None or w["component"]["evse"]["id"] == r[1])
                and (w.get("variable") is None or w["variable"]["name"] == r[2]) for w in component_variable)]
        if component_criteria and "Problem" in component_criteria:
            rows = [r for r in rows if r[3] == "Faulted"]
        return rows

    @on(Action201.get_report)
    async def on_get_report(self, request_id, component_criteria=None, component_variable=None, **kwargs):
        self.received.append(("GetReport", {"criteria": component_criteria, "component_variable": component_variable}))
        found = self._wanted(component_criteria, component_variable)
        return result201.GetReport(status="Accepted" if found else "EmptyResultSet")

    @after(Action201.get_report)
    async def after_get_report(self, request_id, component_criteria=None, component_variable=None, **kwargs):
        found = self._wanted(component_criteria, component_variable)
        for seq, start in enumerate(range(0, len(found), 2)):
            data = [{"component": {"name": c, **({"evse": {"id": e}} if e else {})}, "variable": {"name": v},
                     "variable_attribute": [{"type": "Actual", "value": value, "mutability": "ReadWrite"}],
                     "variable_characteristics": {"data_type": "string", "supports_monitoring": False}}
                    for c, e, v, value in found[start:start + 2]]
            await self.call(call201.NotifyReport(request_id=request_id, generated_at=now_iso(), seq_no=seq,
                                                 report_data=data, tbc=start + 2 < len(found)))


def report_station(srv: Any, station_id: str) -> AsyncContextManager[ReportStation]:
    """A booted :class:`ReportStation` with its receive loop running."""
    return station(srv, station_id, "2.0.1", cls=ReportStation)


async def variables(server: Any, station_id: str) -> set[tuple[Any, ...]]:
    r = await server.api.get(f"/stations/{station_id}/configuration")
    return {(v["component"], v["evse_id"], v["variable"], v["value"]) for v in r.json()["variables"]}


async def test_custom_report_stored_like_a_base_report(any_server):
    server = any_server
    sid, url = "CREP1", "/stations/CREP1/configuration/report"
    async with report_station(server, sid) as cp:
        r = await server.api.post(url, json={"component_variables": [
            {"component": "EVSE", "evse_id": 1}, {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}]})
        assert r.status_code == 201 and r.json()["status"] == "Accepted", r.text
        request_id = r.json()["request_id"]
        assert cp.received[-1] == ("GetReport", {"criteria": None, "component_variable": [
            {"component": {"name": "EVSE", "evse": {"id": 1}}},
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]})

        async def three() -> set[tuple[Any, ...]] | None:
            found = await variables(server, sid)
            return found if len(found) == 3 else None

        assert await eventually(three) == {("OCPPCommCtrlr", None, "HeartbeatInterval", "300"),
                                           ("EVSE", 1, "Power", "22000"), ("EVSE", 1, "AvailabilityState", "Available")}
        events = (await server.api.get(f"/stations/{sid}/events", params={"category": "report"})).json()["items"]
        assert sorted(e["details"]["seq_no"] for e in events if e["details"]["request_id"] == request_id) == [0, 1]

        r = await server.api.post(url, json={"criteria": ["Problem"], "component_variables": [
            {"component": "EVSE", "evse_id": 2, "variable": "AvailabilityState"}]})
        assert r.json()["status"] == "Accepted"
        assert cp.received[-1][1]["criteria"] == ["Problem"]
        assert ("EVSE", 2, "AvailabilityState", "Faulted") in await eventually(
            lambda: _with(server, sid, ("EVSE", 2, "AvailabilityState", "Faulted")))

        r = await server.api.post(url, json={"criteria": ["Problem"], "component_variables": [{"component": "Nope"}]})
        assert r.status_code == 201 and r.json()["status"] == "EmptyResultSet"
        audit = (await server.api.get("/audit", params={"object_id": sid})).json()["items"]
        assert [a["after"]["action"] for a in audit if a["action"] == "command"].count("GetReport") == 3

    offline = await server.api.post(url, json={"criteria": ["Active"]})
    assert offline.status_code == 409 and offline.json()["extra"]["error"] == "StationOffline"
    assert (await server.api.post("/stations/NOPE/configuration/report", json={"criteria": ["Active"]})).status_code \
        == 404


async def _with(server: Any, sid: str, row: tuple[Any, ...]) -> set[tuple[Any, ...]] | None:
    found = await variables(server, sid)
    return found if row in found else None


@pytest.mark.parametrize("body", [
    {}, {"criteria": []}, {"criteria": ["Broken"]}, {"component_variables": [{"component": ""}]},
    {"component_variables": [{"component": "x" * 51}]},
    {"component_variables": [{"component": "EVSE", "connector_id": 1}]},
    {"component_variables": [{"component": "EVSE", "evse_id": -1}]},
    {"component_variables": [{"component": "EVSE", "variable_instance": "A"}]},
    {"component_variables": [{"variable": "Power"}]}, {"criteria": ["Active"], "base": "Full"},
])
async def test_bad_custom_reports_are_refused_before_sending(server, body):
    async with report_station(server, "CREP2") as cp:
        r = await server.api.post("/stations/CREP2/configuration/report", json=body)
        assert r.status_code == 400, r.text
        assert not [m for m in cp.received if m[0] == "GetReport"]


async def test_ocpp16_has_no_custom_report(server):
    async with station(server, "CREP16", "1.6"):
        r = await server.api.post("/stations/CREP16/configuration/report", json={"criteria": ["Active"]})
        assert r.status_code == 409 and r.json()["extra"]["error"] == "NotSupported" and "1.6" in r.json()["detail"]


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_strict_station_custom_report(server, node_station, protocol):
    """The ocpp-rpc strict station checks GetReport against the official schema and sends the
    NotifyReport parts, stored as the station's variables; a 1.6 station is sent nothing."""
    sid = "CREPSTRICT16" if protocol == "ocpp1.6" else "CREPSTRICT201"
    await create_token(server, f"{sid}-TAG")
    async with strict_station(node_station, server, sid, protocol, token=f"{sid}-TAG", linger=120) as st:
        await st.wait_event("lingering", timeout=60)
        cmd = Commands(server, st, sid)
        if protocol == "ocpp1.6":
            refused = await cmd.refused("POST", "/configuration/report", {"criteria": ["Active"]}, http=409)
            assert refused["extra"]["error"] == "NotSupported"
        else:
            mark = st.mark()
            data = await cmd.send("POST", "/configuration/report", {"criteria": ["Available"], "component_variables": [
                {"component": "AuthCtrlr"}, {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}]},
                action="GetReport", status="Accepted")
            sent = await st.wait_event("report_sent", since=mark, requestId=data["request_id"])
            assert sent["items"] >= 2

            async def stored() -> set[tuple[Any, ...]] | None:
                found = {(c, v) for c, _, v, _ in await variables(server, sid)}
                return found if ("OCPPCommCtrlr", "HeartbeatInterval") in found and any(
                    c == "AuthCtrlr" for c, _ in found) else None

            assert await eventually(stored)
            await cmd.send("POST", "/configuration/report", {"criteria": ["Problem"]}, action="GetReport",
                           status="EmptyResultSet")
            await cmd.refused("POST", "/configuration/report", {"criteria": ["Broken"]})
        st.assert_clean_exit(await st.quit())
