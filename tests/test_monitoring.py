"""Variable monitoring and customer information (OCPP 2.0.1) over REST, against the ``ocpp-rpc``
strict station ``tests/node/monitoring_station.mjs``: every frame the CSMS sends
(SetVariableMonitoring, ClearVariableMonitoring, GetMonitoringReport, SetMonitoringBase,
SetMonitoringLevel, CustomerInformation and the answers to NotifyEvent, NotifyMonitoringReport,
NotifyCustomerInformation) is validated against the official schema. OCPP 1.6 has neither."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ocpp.routing import on
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action

from csms.testing.stations import Station201, station
from tests.test_ocpp_rpc_strict import Commands, StrictStation, eventually, node_station  # noqa: F401 (fixture)

SCRIPT = Path(__file__).parent / "node" / "monitoring_station.mjs"


async def monitoring_station(node_station: list[str], server: Any, station_id: str) -> StrictStation:
    st = await StrictStation.start([node_station[0], str(SCRIPT)], server, station_id, "ocpp2.0.1", linger=120)
    await st.wait_event("lingering", timeout=30)
    return st


async def test_strict_station_monitoring(server, node_station):
    sid = "MONSTRICT"
    url = f"/stations/{sid}/monitoring"
    st = await monitoring_station(node_station, server, sid)
    try:
        cmd = Commands(server, st, sid)
        mark = st.mark()
        data = await cmd.send("POST", "/monitoring", {"monitors": [
            {"component": "EVSE", "evse_id": 1, "variable": "Power", "type": "UpperThreshold", "value": 20000,
             "severity": 4},
            {"component": "ChargingStation", "variable": "Temperature", "type": "Delta", "value": 5, "severity": 6,
             "transaction": True},
            {"component": "Nope", "variable": "X", "type": "Periodic", "value": 60, "severity": 8},
        ]}, action="SetVariableMonitoring")
        results = data["results"]
        assert [(r["status"], r.get("id")) for r in results] == [
            ("Accepted", 100), ("Accepted", 101), ("UnknownComponent", None)]
        assert results[2]["words"] == "the station has no such component"
        assert results[0]["words"] == "accepted"
        sent = (await st.reply_to("SetVariableMonitoring", since=mark))
        call = st.find(lambda e: e.get("event") == "call" and e["action"] == "SetVariableMonitoring", since=mark)
        assert call["params"]["setMonitoringData"][0] == {
            "value": 20000, "type": "UpperThreshold", "severity": 4,
            "component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"}}
        assert call["params"]["setMonitoringData"][1]["transaction"] is True
        assert sent["payload"]["setMonitoringResult"][0]["id"] == 100
        audit = (await server.api.get("/audit", params={"object_id": sid})).json()["items"]
        assert any(a["action"] == "command" and a["after"]["action"] == "SetVariableMonitoring" for a in audit)

        # the accepted monitors tripped at once: their NotifyEvent, shown per component/variable
        await st.wait_event("events_sent", since=mark)

        async def listing() -> dict[str, Any]:
            return (await server.api.get(url)).json()

        async def events_known():
            got = await listing()
            return got if len(got["events"]) == 2 else None

        got = await eventually(events_known, what="the NotifyEvent events")
        assert got["supported"] is True and got["ocpp_version"] == "2.0.1"
        assert [(m["monitor_id"], m["component"], m["variable"], m["type"], m["value"], m["severity"], m["source"],
                 m["evse_id"], m["transaction"]) for m in got["monitors"]] == [
            (101, "ChargingStation", "Temperature", "Delta", 5.0, 6, "csms", None, True),
            (100, "EVSE", "Power", "UpperThreshold", 20000.0, 4, "csms", 1, False)]
        power = next(e for e in got["events"] if e["variable"] == "Power")
        assert (power["component"], power["evse_id"], power["actual_value"], power["trigger"], power["severity"],
                power["severity_name"], power["monitor_id"]) == ("EVSE", 1, "20001", "Alerting", 4, "Error", 100)
        assert power["timestamp"]
        events = (await server.api.get(f"{url}/events")).json()["items"]
        assert {(e["component"], e["variable"]) for e in events} == {("EVSE", "Power"), ("ChargingStation", "Temperature")}

        # a full report: the station's own hard-wired monitor joins, assembled from its parts
        mark = st.mark()
        data = await cmd.send("POST", "/monitoring/report", {}, action="GetMonitoringReport", status="Accepted")
        report = await st.wait_event("monitoring_report_sent", since=mark)
        assert report["requestId"] == data["request_id"] and report["monitors"] == 3

        async def reported():
            got = await listing()
            return got if len(got["monitors"]) == 3 else None

        got = await eventually(reported, what="the NotifyMonitoringReport parts")
        by_id = {m["monitor_id"]: m for m in got["monitors"]}
        assert (by_id[1]["component"], by_id[1]["variable"], by_id[1]["type"], by_id[1]["source"]) == (
            "ChargingStation", "Problem", "Delta", "station")
        assert by_id[100]["source"] == "csms"  # reported again, still the CSMS's

        # a filtered report adds what it reports and forgets nothing
        await cmd.send("POST", "/monitoring/report", {"criteria": ["ThresholdMonitoring"], "component_variables": [
            {"component": "EVSE", "evse_id": 1}]}, action="GetMonitoringReport", status="Accepted")
        call = st.find_all(lambda e: e.get("event") == "call" and e["action"] == "GetMonitoringReport")[-1]
        assert call["params"]["monitoringCriteria"] == ["ThresholdMonitoring"]
        assert call["params"]["componentVariable"] == [{"component": {"name": "EVSE", "evse": {"id": 1}}}]
        data = await cmd.send("POST", "/monitoring/report", {"criteria": ["PeriodicMonitoring"]},
                              action="GetMonitoringReport", status="EmptyResultSet")
        assert data["words"] == "the station has no monitors matching the request"
        assert len((await listing())["monitors"]) == 3

        data = await cmd.send("POST", "/monitoring/clear", {"monitor_ids": [100, 1, 999]},
                              action="ClearVariableMonitoring")
        assert [(r["id"], r["status"], r["words"]) for r in data["results"]] == [
            (100, "Accepted", "accepted"), (1, "Rejected", "rejected by the station"),
            (999, "NotFound", "the station has no monitor with this id")]
        assert sorted(m["monitor_id"] for m in (await listing())["monitors"]) == [1, 101]

        await cmd.send("POST", "/monitoring/base", {"base": "HardWiredOnly"}, action="SetMonitoringBase",
                       status="Accepted")
        await cmd.send("POST", "/monitoring/level", {"severity": 5}, action="SetMonitoringLevel", status="Accepted")
        await cmd.send("POST", "/monitoring/report", {}, action="GetMonitoringReport", status="Accepted")

        async def only_hard_wired():
            return [m["monitor_id"] for m in (await listing())["monitors"]] == [1]

        await eventually(only_hard_wired, what="the report after HardWiredOnly to replace the monitors")

        # refused before anything is sent, with a clear 400
        monitor = {"component": "EVSE", "variable": "Power", "type": "UpperThreshold", "value": 1, "severity": 4}
        for path, body, words in (
                ("/monitoring", {"monitors": [{**monitor, "type": "Above"}]}, "type must be one of"),
                ("/monitoring", {"monitors": [{**monitor, "severity": 10}]}, "severity must be"),
                ("/monitoring", {"monitors": [{**monitor, "severity": -1}]}, "severity must be"),
                ("/monitoring", {"monitors": [{**monitor, "type": "Periodic", "value": 0}]}, "more than 0"),
                ("/monitoring", {"monitors": [{**monitor, "component": "C" * 51}]}, "at most 50"),
                ("/monitoring", {"monitors": [{**monitor, "value": "high"}]}, ""),
                ("/monitoring", {"monitors": []}, "at least one monitor"),
                ("/monitoring/clear", {"monitor_ids": []}, "at least one monitor id"),
                ("/monitoring/report", {"criteria": ["Everything"]}, "criteria are"),
                ("/monitoring/base", {"base": "Some"}, "base must be one of"),
                ("/monitoring/level", {"severity": 12}, "severity must be")):
            refused = await cmd.refused("POST", path, body)
            assert words in refused.get("detail", ""), (path, body, refused)
        st.assert_clean_exit(await st.quit())
    finally:
        await st.kill()


async def test_strict_station_customer_information(server, node_station):
    sid = "CUSTSTRICT"
    url = f"/stations/{sid}/customer-information"
    st = await monitoring_station(node_station, server, sid)
    try:
        cmd = Commands(server, st, sid)
        mark = st.mark()
        data = await cmd.send("POST", "/customer-information", {"customer_identifier": "CUST-1"},
                              action="CustomerInformation", status="Accepted")
        call = st.find(lambda e: e.get("event") == "call" and e["action"] == "CustomerInformation", since=mark)
        assert call["params"] == {"requestId": data["request_id"], "report": True, "clear": False,
                                  "customerIdentifier": "CUST-1"}
        await st.wait_event("customer_information_sent", since=mark)

        async def complete(request_id: int):
            items = (await server.api.get(url, params={"request_id": request_id})).json()["items"]
            return items[0] if items and items[0]["complete"] else None

        got = await eventually(lambda: complete(data["request_id"]), what="the NotifyCustomerInformation parts")
        assert got["data"] == "name=Ada Lovelace;card=CUST-1;sessions=12;last=2026-11-30T18:02:11Z"
        assert (got["state"], got["parts"], got["customer"], got["report"], got["clear"]) == (
            "complete", 3, "customer CUST-1", True, False)
        assert got["requested_by"] == "api_key:tests"

        # report and clear by id token, then the station no longer knows the customer
        mark = st.mark()
        cleared = await cmd.send("POST", "/customer-information", {
            "id_token": "CUST-1", "token_type": "ISO14443", "report": True, "clear": True},
            action="CustomerInformation", status="Accepted")
        call = st.find(lambda e: e.get("event") == "call" and e["action"] == "CustomerInformation", since=mark)
        assert call["params"]["idToken"] == {"idToken": "CUST-1", "type": "ISO14443"}
        await st.wait_event("customer_information_sent", since=mark, cleared=True)
        await eventually(lambda: complete(cleared["request_id"]))
        again = await cmd.send("POST", "/customer-information", {"customer_identifier": "CUST-1", "report": False,
                                                                 "clear": True}, action="CustomerInformation",
                               status="Invalid")
        items = (await server.api.get(url)).json()["items"]
        assert [i["request_id"] for i in items][:1] == [again["request_id"]]
        assert items[0]["state"] == "refused" and "invalid" in items[0]["words"]
        audit = (await server.api.get("/audit", params={"object_id": sid})).json()["items"]
        assert [a["after"]["action"] for a in audit if a["action"] == "command"].count("CustomerInformation") == 3
        assert (await server.api.get(url, params={"request_id": 12345})).json()["items"] == []

        certificate = {"hash_algorithm": "SHA256", "issuer_name_hash": "ab" * 32, "issuer_key_hash": "cd" * 32,
                       "serial_number": "01"}
        await cmd.send("POST", "/customer-information", {"customer_certificate": certificate},
                       action="CustomerInformation", status="Invalid")
        for body, words in (({}, "exactly one"), ({"id_token": "A", "customer_identifier": "B"}, "exactly one"),
                            ({"id_token": "A", "report": False}, "a report, a clear, or both"),
                            ({"customer_identifier": "X" * 65}, "at most 64"),
                            ({"id_token": "A", "token_type": "Magic"}, "token_type must be"),
                            ({"customer_certificate": {**certificate, "hash_algorithm": "MD5"}}, "hash_algorithm")):
            refused = await cmd.refused("POST", "/customer-information", body)
            assert words in refused["detail"], (body, refused)
        st.assert_clean_exit(await st.quit())
    finally:
        await st.kill()


async def test_ocpp16_refused_unknown_404_viewer_reads(server):
    """1.6 has neither (409 NotSupported, nothing sent); an unknown station is 404; a viewer
    reads but may not ask."""
    sid = "MON16"
    async with station(server, sid, "1.6"):
        for path, body in (("/monitoring", {"monitors": [{"component": "EVSE", "variable": "Power",
                                                           "type": "Delta", "value": 1, "severity": 5}]}),
                           ("/monitoring/clear", {"monitor_ids": [1]}), ("/monitoring/report", {}),
                           ("/monitoring/base", {"base": "All"}), ("/monitoring/level", {"severity": 3}),
                           ("/customer-information", {"customer_identifier": "C"})):
            r = await server.api.post(f"/stations/{sid}{path}", json=body)
            assert r.status_code == 409, (path, r.text)
            assert r.json()["extra"]["error"] == "NotSupported" and "OCPP 1.6 has no " in r.json()["detail"]
        listing = (await server.api.get(f"/stations/{sid}/monitoring")).json()
        assert listing["supported"] is False and listing["monitors"] == [] and listing["events"] == []
        assert (await server.api.get(f"/stations/{sid}/customer-information")).json()["items"] == []
    assert (await server.api.get("/stations/NOPE/monitoring")).status_code == 404
    assert (await server.api.get("/stations/NOPE/customer-information")).status_code == 404

    from csms.core.security import new_api_key
    from csms.core.tables import ApiKey

    key, prefix, digest = new_api_key()
    await ApiKey(name="viewer", prefix=prefix, key_hash=digest, role="viewer").save()
    headers = {"Authorization": f"Bearer {key}"}
    for path, body in (("/monitoring", {"monitors": []}), ("/customer-information", {"customer_identifier": "C"})):
        assert (await server.api.get(f"/stations/{sid}{path}", headers=headers)).status_code == 200
        assert (await server.api.post(f"/stations/{sid}{path}", json=body, headers=headers)).status_code == 403


async def test_periodic_monitor_and_its_events(server):
    """N08: a Periodic monitor set through REST goes out as SetVariableMonitoring, and the
    NotifyEvents it triggers (trigger Periodic) are stored per component/variable with the monitor."""
    class PeriodicStation(Station201):
        sent: list[dict[str, Any]] = []

        @on(Action.set_variable_monitoring)
        async def on_set_variable_monitoring(self, set_monitoring_data, **kwargs):
            self.sent.extend(set_monitoring_data)
            return call_result.SetVariableMonitoring(set_monitoring_result=[
                {"id": 7, "status": "Accepted", "type": d["type"], "severity": d["severity"],
                 "component": d["component"], "variable": d["variable"]} for d in set_monitoring_data])

    sid = "PERIODIC"
    async with station(server, sid, "2.0.1", cls=PeriodicStation) as cp:
        r = await server.api.post(f"/stations/{sid}/monitoring", json={"monitors": [
            {"component": "EVSE", "evse_id": 1, "variable": "Power", "type": "Periodic", "value": 300,
             "severity": 7}]})
        assert r.status_code in (200, 201), r.text
        assert [x["status"] for x in r.json()["results"]] == ["Accepted"]
        assert cp.sent == [{"value": 300, "type": "Periodic", "severity": 7,
                            "component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"}}]
        for n, watts in enumerate(("7100", "7300")):
            await cp.call(call.NotifyEvent(generated_at="2026-01-05T10:00:00Z", seq_no=0, event_data=[{
                "event_id": n + 1, "timestamp": f"2026-01-05T10:0{5 * n}:00Z", "trigger": "Periodic",
                "actual_value": watts, "component": {"name": "EVSE", "evse": {"id": 1}},
                "variable": {"name": "Power"}, "variable_monitoring_id": 7,
                "event_notification_type": "CustomMonitor"}]))
    listing = (await server.api.get(f"/stations/{sid}/monitoring")).json()
    assert [(m["monitor_id"], m["type"], m["value"]) for m in listing["monitors"]] == [(7, "Periodic", 300.0)]
    events = (await server.api.get(f"/stations/{sid}/monitoring/events")).json()["items"]
    assert sorted((e["trigger"], e["actual_value"], e["monitor_id"]) for e in events) == [
        ("Periodic", "7100", 7), ("Periodic", "7300", 7)]


async def test_clearing_more_monitors_than_a_message_may_carry(server):
    """N04 (OCTT TC_N_18 via tzi-OCTT): the CSMS reads MonitoringCtrlr.ItemsPerMessage
    [ClearVariableMonitoring] with GetVariables and clears in messages of at most that many ids;
    the answers of every message come back together. A reported value is used without asking."""
    class SmallStation(Station201):
        asked: list[dict[str, Any]] = []
        cleared: list[list[int]] = []

        @on(Action.get_variables)
        async def on_get_variables(self, get_variable_data, **kwargs):
            self.asked.extend(get_variable_data)
            return call_result.GetVariables(get_variable_result=[
                {"attribute_status": "Accepted", "attribute_value": "2", "component": d["component"],
                 "variable": d["variable"]} for d in get_variable_data])

        @on(Action.clear_variable_monitoring)
        async def on_clear_variable_monitoring(self, id, **kwargs):  # noqa: A002 (OCPP's name)
            self.cleared.append(list(id))
            return call_result.ClearVariableMonitoring(clear_monitoring_result=[
                {"id": i, "status": "Accepted"} for i in id])

    sid = "SMALL-N18"
    async with station(server, sid, "2.0.1", cls=SmallStation) as cp:
        r = await server.api.post(f"/stations/{sid}/monitoring/clear", json={"monitor_ids": [1, 2, 3, 4, 5]})
        assert r.status_code in (200, 201), r.text
        assert cp.asked == [{"component": {"name": "MonitoringCtrlr"},
                             "variable": {"name": "ItemsPerMessage", "instance": "ClearVariableMonitoring"}}]
        assert cp.cleared == [[1, 2], [3, 4], [5]]
        assert [x["id"] for x in r.json()["results"]] == [1, 2, 3, 4, 5]
        assert r.json()["messages"] == 3
        r = await server.api.post(f"/stations/{sid}/monitoring/clear", json={"monitor_ids": [6]})
        assert cp.cleared[-1] == [6] and len(cp.asked) == 1  # one id: nothing to split, nothing asked
