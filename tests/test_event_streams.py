"""OCPP 2.1 periodic event streams read back and steered: a station (the ``ocpp`` library's 2.1
ChargePoint) gets a periodic monitor over REST, opens a stream for it, sends values in SEND
frames and closes another; ``GET /stations/{id}/event-streams`` shows each stream with its
monitor's component and variable, its parameters, open or closed, and the values with their
times; ``refresh`` asks the station (GetPeriodicEventStream) and the listing follows its answer;
``adjust`` changes a stream (AdjustPeriodicEventStream, checked against the 2.1 schema before it
leaves). A 2.0.1 station: 409; bad bodies: 400."""

from __future__ import annotations

import json
from typing import Any

from ocpp.routing import on
from ocpp.v21 import call as call21
from ocpp.v21 import call_result as result21
from ocpp.v21.enums import Action as Action21

from csms.testing.stations import station
from tests.test_ocpp_21 import Station21, library_station
from tests.test_ocpp_rpc_strict import eventually


class StreamingStation(Station21):
    """Takes one periodic monitor (id 7), lists stream 3 as open, adjusts it unless told "values 0"."""

    adjusted: list[dict[str, Any]] = []

    @on(Action21.set_variable_monitoring)
    async def on_set_variable_monitoring(self, set_monitoring_data, **kwargs):
        return result21.SetVariableMonitoring(set_monitoring_result=[{
            "id": 7, "status": "Accepted", "type": item["type"], "severity": item["severity"],
            "component": item["component"], "variable": item["variable"]} for item in set_monitoring_data])

    @on(Action21.get_periodic_event_stream)
    async def on_get_periodic_event_stream(self, **kwargs):
        return result21.GetPeriodicEventStream(constant_stream_data=[
            {"id": 3, "variable_monitoring_id": 7, "params": {"interval": 60, "values": 10}}])

    @on(Action21.adjust_periodic_event_stream)
    async def on_adjust_periodic_event_stream(self, id, params, **kwargs):
        self.adjusted.append({"id": id, **params})
        return result21.AdjustPeriodicEventStream(status="Rejected" if params.get("values") == 0 else "Accepted")


async def send(cp: Any, unique_id: str, payload: dict[str, Any]) -> None:
    """A SEND frame (MessageTypeId 6): the library has no call for it."""
    await cp._connection.send(json.dumps([6, unique_id, "NotifyPeriodicEventStream", payload]))


async def test_streams_listed_with_their_monitor_values_refreshed_and_adjusted(server):
    sid, url = "STREAM21", "/stations/STREAM21/event-streams"
    async with library_station(server, sid, "Stream21", cls=StreamingStation) as cp:
        r = await server.api.post(f"/stations/{sid}/monitoring", json={"monitors": [
            {"component": "EVSE", "evse_id": 1, "variable": "Power", "type": "Periodic", "value": 10, "severity": 7}]})
        assert r.status_code == 201, r.text
        for stream_id, values in ((3, 5), (4, 1)):
            answer = await cp.call(call21.OpenPeriodicEventStream(constant_stream_data={
                "id": stream_id, "variable_monitoring_id": 7 if stream_id == 3 else 99,
                "params": {"interval": 30, "values": values}}))
            assert answer.status == "Accepted"
        await send(cp, "s1", {"id": 3, "pending": 2, "basetime": "2026-12-07T10:00:00.000Z",
                              "data": [{"t": 0, "v": "11.0"}, {"t": 10, "v": "11.5"}]})
        await send(cp, "s2", {"id": 3, "pending": 0, "basetime": "2026-12-07T10:00:20.000Z",
                              "data": [{"t": 0, "v": "12.25"}]})
        await cp.call(call21.ClosePeriodicEventStream(id=4))

        async def listed() -> Any:
            body = (await server.api.get(url)).json()
            streams = {s["id"]: s for s in body["streams"]}
            return body if streams.get(3, {}).get("received") == 3 else None

        body = await eventually(listed, what="the stream's three values")
        assert body["supported"] is True
        (three, four) = body["streams"]  # the open one first
        assert (three["id"], three["open"], three["interval"], three["values"]) == (3, True, 30, 5)
        assert three["monitor"] == {"id": 7, "component": "EVSE", "evse_id": 1, "variable": "Power",
                                    "type": "Periodic"}
        assert three["series"] == [{"at": "2026-12-07T10:00:00.000Z", "value": "11.0"},
                                   {"at": "2026-12-07T10:00:10.000Z", "value": "11.5"},
                                   {"at": "2026-12-07T10:00:20.000Z", "value": "12.25"}]
        assert three["last"] == {"at": "2026-12-07T10:00:20.000Z", "value": "12.25"}
        assert (four["id"], four["open"], four["monitor"], four["received"]) == (4, False, {"id": 99}, 0)
        assert four["closed_at"] is not None
        short = (await server.api.get(url, params={"values": 1})).json()["streams"][0]["series"]
        assert short == [{"at": "2026-12-07T10:00:20.000Z", "value": "12.25"}]

        # the station's own word: stream 3 runs every 60 s with 10 values
        r = await server.api.post(f"{url}/refresh")
        assert r.status_code == 201 and r.json()["streams"][0]["id"] == 3, r.text
        (three, four) = (await server.api.get(url)).json()["streams"]
        assert (three["open"], three["interval"], three["values"], four["open"]) == (True, 60, 10, False)

        r = await server.api.post(f"{url}/3/adjust", json={"interval": 15})
        assert r.status_code == 201 and r.json()["status"] == "Accepted", r.text
        assert cp.adjusted == [{"id": 3, "interval": 15}]
        assert (await server.api.get(url)).json()["streams"][0]["interval"] == 15
        r = await server.api.post(f"{url}/3/adjust", json={"values": 0})
        assert r.status_code == 201 and r.json()["status"] == "Rejected", r.text
        assert (await server.api.get(url)).json()["streams"][0]["values"] == 10  # a refusal changes nothing
        for body, status in (({}, 400), ({"interval": -1}, 400), ({"every": 5}, 400)):
            r = await server.api.post(f"{url}/3/adjust", json=body)
            assert r.status_code == status, (body, r.text)
    async with station(server, "STREAM201", "2.0.1"):
        r = await server.api.post("/stations/STREAM201/event-streams/refresh")
        assert r.status_code == 409 and r.json()["extra"]["error"] == "NotSupported", r.text
        assert (await server.api.get("/stations/STREAM201/event-streams")).json()["supported"] is False
    assert (await server.api.get("/stations/NOPE/event-streams")).status_code == 404
