"""GetVariables and SetVariables of chosen variables (OCPP 2.0.1 B05, B06), split as the station's
``ItemsPerMessage``/``BytesPerMessage`` ask (B06.FR.05, B05.FR.06; OCTT TC_B_08 via tzi-OCTT),
and SetVariableMonitoring split by ``MonitoringCtrlr``'s limits (N04.FR.08); configuration read
by name (``configuration/refresh`` with ``keys``) split the same way, and for OCPP 1.6 by
``GetConfigurationMaxKeys``.

The stations are the ``ocpp`` library's ChargePoint (``csms.testing.stations.Station201``)
answering with the values of a small device model and recording each message they get.
"""

from __future__ import annotations

import json
from typing import Any

from ocpp.routing import on
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from csms.testing.stations import Station16, Station201, station

B08 = [  # the five variables of TC_B_08
    {"component": "DeviceDataCtrlr", "variable": "ItemsPerMessage", "variable_instance": "GetReport"},
    {"component": "DeviceDataCtrlr", "variable": "ItemsPerMessage", "variable_instance": "GetVariables"},
    {"component": "DeviceDataCtrlr", "variable": "BytesPerMessage", "variable_instance": "GetReport"},
    {"component": "DeviceDataCtrlr", "variable": "BytesPerMessage", "variable_instance": "GetVariables"},
    {"component": "AuthCtrlr", "variable": "AuthorizeRemoteStart"},
]


def key(component: dict[str, Any], variable: dict[str, Any]) -> str:
    name = f"{component['name']}.{variable['name']}"
    return f"{name}[{variable['instance']}]" if variable.get("instance") else name


class ModelStation(Station201):
    """Answers GetVariables from ``model`` (unknown: UnknownVariable), takes every SetVariables
    into it, and records every message's items."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model: dict[str, str] = {
            "DeviceDataCtrlr.ItemsPerMessage[GetReport]": "10", "DeviceDataCtrlr.ItemsPerMessage[GetVariables]": "4",
            "DeviceDataCtrlr.BytesPerMessage[GetReport]": "4096", "DeviceDataCtrlr.ItemsPerMessage[SetVariables]": "2",
            "AuthCtrlr.AuthorizeRemoteStart": "true", "OCPPCommCtrlr.OfflineThreshold": "60",
            "MonitoringCtrlr.ItemsPerMessage[SetVariableMonitoring]": "2",
        }
        self.gets: list[list[str]] = []
        self.sets: list[list[str]] = []
        self.monitor_sets: list[int] = []

    @on(Action.get_variables)
    async def on_get_variables(self, get_variable_data, **kwargs):
        self.gets.append([key(d["component"], d["variable"]) for d in get_variable_data])
        results = []
        for d in get_variable_data:
            value = self.model.get(key(d["component"], d["variable"]))
            results.append({"attribute_status": "Accepted" if value is not None else "UnknownVariable",
                            "component": d["component"], "variable": d["variable"],
                            **({"attribute_value": value} if value is not None else {})})
        return call_result.GetVariables(get_variable_result=results)

    @on(Action.set_variables)
    async def on_set_variables(self, set_variable_data, **kwargs):
        self.sets.append([key(d["component"], d["variable"]) for d in set_variable_data])
        for d in set_variable_data:
            self.model[key(d["component"], d["variable"])] = d["attribute_value"]
        return call_result.SetVariables(set_variable_result=[
            {"attribute_status": "Accepted", "component": d["component"], "variable": d["variable"]}
            for d in set_variable_data])

    @on(Action.set_variable_monitoring)
    async def on_set_variable_monitoring(self, set_monitoring_data, **kwargs):
        self.monitor_sets.append(len(set_monitoring_data))
        return call_result.SetVariableMonitoring(set_monitoring_result=[
            {"id": 10 + len(self.monitor_sets) * 10 + n, "status": "Accepted", "type": d["type"],
             "severity": d["severity"], "component": d["component"], "variable": d["variable"]}
            for n, d in enumerate(set_monitoring_data)])


async def test_get_variables_in_messages_of_at_most_items_per_message(server):
    async with station(server, "VARS-1", "2.0.1", cls=ModelStation) as cp:
        r = await server.api.post("/stations/VARS-1/variables/get", json={"variables": B08})
        assert r.status_code == 201, r.text
        # the limit is not known yet: asked first, and that answer is the second variable's
        assert cp.gets == [["DeviceDataCtrlr.ItemsPerMessage[GetVariables]"],
                           ["DeviceDataCtrlr.ItemsPerMessage[GetReport]", "DeviceDataCtrlr.BytesPerMessage[GetReport]",
                            "DeviceDataCtrlr.BytesPerMessage[GetVariables]", "AuthCtrlr.AuthorizeRemoteStart"]]
        answer = r.json()
        assert answer["messages"] == 2
        assert [(x["variable"].get("instance"), x["attributeStatus"], x.get("attributeValue"))
                for x in answer["results"]] == [
            ("GetReport", "Accepted", "10"), ("GetVariables", "Accepted", "4"), ("GetReport", "Accepted", "4096"),
            ("GetVariables", "UnknownVariable", None), (None, "Accepted", "true")]
        # now known (stored with the values read): five variables go as 4 + 1, nothing asked first
        cp.gets.clear()
        again = (await server.api.post("/stations/VARS-1/variables/get", json={"variables": B08})).json()
        assert [len(m) for m in cp.gets] == [4, 1] and again["messages"] == 2
        assert again["results"] == answer["results"]
        stored = (await server.api.get("/stations/VARS-1/configuration")).json()["variables"]
        assert any(v["component"] == "AuthCtrlr" and v["variable"] == "AuthorizeRemoteStart" and v["value"] == "true"
                   for v in stored)
        # one variable: nothing to split, nothing asked
        cp.gets.clear()
        one = await server.api.post("/stations/VARS-1/variables/get", json={"variables": [B08[4]]})
        assert cp.gets == [["AuthCtrlr.AuthorizeRemoteStart"]] and one.json()["messages"] == 1
        bad = await server.api.post("/stations/VARS-1/variables/get", json={"variables": [
            {"component": "AuthCtrlr", "variable": "X", "attribute_type": "Wrong"}]})
        assert bad.status_code == 400 and "attribute_type" in bad.text


async def test_get_variables_keep_to_bytes_per_message(server):
    class Tight(ModelStation):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.model["DeviceDataCtrlr.ItemsPerMessage[GetVariables]"] = "50"
            self.model["DeviceDataCtrlr.BytesPerMessage[GetVariables]"] = "300"

    async with station(server, "VARS-2", "2.0.1", cls=Tight) as cp:
        limits = [{"component": "DeviceDataCtrlr", "variable": v, "variable_instance": "GetVariables"}
                  for v in ("ItemsPerMessage", "BytesPerMessage")]
        assert (await server.api.post("/stations/VARS-2/variables/get", json={"variables": limits})).status_code == 201
        cp.gets.clear()
        many = [{"component": "OCPPCommCtrlr", "variable": "OfflineThreshold", "evse_id": n} for n in range(1, 9)]
        r = (await server.api.post("/stations/VARS-2/variables/get", json={"variables": many})).json()
        assert len(cp.gets) > 1 and sum(len(m) for m in cp.gets) == 8 and r["messages"] == len(cp.gets)
        for n, message in enumerate(cp.gets):  # each CALL frame within the 300 bytes
            sent = many[sum(len(m) for m in cp.gets[:n]):][:len(message)]
            frame = [2, "x" * 36, "GetVariables", {"getVariableData": [
                {"component": {"name": v["component"], "evse": {"id": v["evse_id"]}}, "variable": {"name": v["variable"]}}
                for v in sent]}]
            assert len(json.dumps(frame, separators=(",", ":"))) <= 300
        assert len(r["results"]) == 8


async def test_set_variables_in_messages_of_at_most_items_per_message(server):
    async with station(server, "VARS-3", "2.0.1", cls=ModelStation) as cp:
        values = [{"component": "OCPPCommCtrlr", "variable": "OfflineThreshold", "value": "120"},
                  {"component": "AuthCtrlr", "variable": "AuthorizeRemoteStart", "value": "false"},
                  {"component": "TxCtrlr", "variable": "EVConnectionTimeOut", "value": "30"}]
        r = await server.api.post("/stations/VARS-3/variables/set", json={"variables": values})
        assert r.status_code == 201, r.text
        assert cp.gets == [["DeviceDataCtrlr.ItemsPerMessage[SetVariables]"]]
        assert cp.sets == [["OCPPCommCtrlr.OfflineThreshold", "AuthCtrlr.AuthorizeRemoteStart"],
                           ["TxCtrlr.EVConnectionTimeOut"]]
        assert [x["attributeStatus"] for x in r.json()["results"]] == ["Accepted"] * 3 and r.json()["messages"] == 2
        stored = {(v["component"], v["variable"]): v["value"]
                  for v in (await server.api.get("/stations/VARS-3/configuration")).json()["variables"]}
        assert stored[("OCPPCommCtrlr", "OfflineThreshold")] == "120"
        assert stored[("TxCtrlr", "EVConnectionTimeOut")] == "30"
        missing = await server.api.post("/stations/VARS-3/variables/set", json={"variables": [
            {"component": "OCPPCommCtrlr", "variable": "OfflineThreshold"}]})
        assert missing.status_code == 400 and "value" in missing.text


async def test_set_variable_monitoring_in_messages_of_at_most_items_per_message(server):
    async with station(server, "VARS-4", "2.0.1", cls=ModelStation) as cp:
        monitors = [{"component": "EVSE", "evse_id": 1, "variable": "Power", "type": "UpperThreshold",
                     "value": 20000 + n, "severity": 4} for n in range(3)]
        r = await server.api.post("/stations/VARS-4/monitoring", json={"monitors": monitors})
        assert r.status_code == 201, r.text
        assert cp.gets == [["MonitoringCtrlr.ItemsPerMessage[SetVariableMonitoring]"]]
        assert cp.monitor_sets == [2, 1] and r.json()["messages"] == 2
        assert [x["status"] for x in r.json()["results"]] == ["Accepted"] * 3
        listed = (await server.api.get("/stations/VARS-4/monitoring")).json()
        assert sorted(m["value"] for m in listed["monitors"]) == [20000, 20001, 20002]


async def test_variables_of_a_1_6_station_are_not_supported(server):
    async with station(server, "VARS-16", "1.6"):
        r = await server.api.post("/stations/VARS-16/variables/get", json={"variables": B08[:1]})
        assert r.status_code == 409 and "GetVariables" in r.text


class KeysStation(Station16):
    """A 1.6 station with a few configuration keys that takes at most ``max_keys`` per
    GetConfiguration (more: a CALLERROR, as a strict station answers), recording each one's keys."""

    max_keys = "2"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keys = {"GetConfigurationMaxKeys": self.max_keys, "HeartbeatInterval": "300",
                     "MeterValueSampleInterval": "60", "NumberOfConnectors": "1", "ConnectionTimeOut": "90"}
        self.asked: list[list[str]] = []

    @on(Action16.get_configuration)
    async def on_get_configuration(self, key=None, **kwargs):
        self.asked.append(list(key or []))
        if key and len(key) > int(self.keys["GetConfigurationMaxKeys"]):
            raise ValueError("more keys than GetConfigurationMaxKeys")
        named = key or list(self.keys)
        return result16.GetConfiguration(
            configuration_key=[{"key": k, "readonly": False, "value": self.keys[k]} for k in named if k in self.keys],
            unknown_key=[k for k in named if k not in self.keys] or None)


async def test_1_6_configuration_keys_by_name_in_messages_of_at_most_get_configuration_max_keys(server):
    async with station(server, "KEYS-16", "1.6", cls=KeysStation) as cp:
        names = ["HeartbeatInterval", "MeterValueSampleInterval", "NoSuchKey", "ConnectionTimeOut", "HeartbeatInterval"]
        r = await server.api.post("/stations/KEYS-16/configuration/refresh", json={"keys": names})
        assert r.status_code == 201, r.text
        # the limit is not known yet: asked first; then the four distinct keys as 2 + 2
        assert cp.asked == [["GetConfigurationMaxKeys"], ["HeartbeatInterval", "MeterValueSampleInterval"],
                            ["NoSuchKey", "ConnectionTimeOut"]]
        answer = r.json()
        assert answer["status"] == "Accepted" and answer["messages"] == 2
        assert [k["key"] for k in answer["response"]["configurationKey"]] == [
            "HeartbeatInterval", "MeterValueSampleInterval", "ConnectionTimeOut"]
        assert answer["response"]["unknownKey"] == ["NoSuchKey"]
        stored = {k["key"]: k["value"] for k in (await server.api.get("/stations/KEYS-16/configuration")).json()[
            "configuration_keys"]}
        assert stored["ConnectionTimeOut"] == "90" and stored["GetConfigurationMaxKeys"] == "2"
        # known now: nothing asked first; all keys (no names) is one message, as before
        cp.asked.clear()
        again = (await server.api.post("/stations/KEYS-16/configuration/refresh", json={"keys": names[:3]})).json()
        assert cp.asked == [["HeartbeatInterval", "MeterValueSampleInterval"], ["NoSuchKey"]] and again["messages"] == 2
        cp.asked.clear()
        everything = (await server.api.post("/stations/KEYS-16/configuration/refresh", json={})).json()
        assert cp.asked == [[]] and len(everything["response"]["configurationKey"]) == 5


async def test_2_0_1_configuration_by_name_in_messages_of_at_most_items_per_message(server):
    async with station(server, "KEYS-201", "2.0.1", cls=ModelStation) as cp:
        names = ["AuthCtrlr.AuthorizeRemoteStart", "OCPPCommCtrlr.OfflineThreshold", "TxCtrlr.Nothing",
                 "DeviceDataCtrlr/ItemsPerMessage.GetReport", "OCPPCommCtrlr.Missing"]
        r = await server.api.post("/stations/KEYS-201/configuration/refresh", json={"keys": names})
        assert r.status_code == 201, r.text
        assert cp.gets[0] == ["DeviceDataCtrlr.ItemsPerMessage[GetVariables]"]  # the limit (4), asked first
        assert [len(m) for m in cp.gets[1:]] == [4, 1] and r.json()["messages"] == 2
        results = r.json()["response"]["getVariableResult"]
        assert [x["attributeStatus"] for x in results] == ["Accepted", "Accepted", "UnknownVariable", "Accepted",
                                                           "UnknownVariable"]
