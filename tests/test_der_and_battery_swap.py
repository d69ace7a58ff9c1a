"""DER controls and battery swaps of an OCPP 2.1 station over REST: the ``ocpp`` library's 2.1
ChargePoint takes each call (it checks every incoming payload against the 2.1 schemas) and
reports back as a DER-capable battery swap station would; bad bodies are refused with 400 and
nothing sent; a 2.0.1 station answers 409."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v21 import call as call21
from ocpp.v21 import call_result as result21
from ocpp.v21.enums import Action as Action21

from csms.core.tables import MessageLog
from csms.testing.stations import station
from tests.test_ocpp_21 import Station21, events, library_station

DROOP = {"priority": 1, "overFreq": 50.2, "underFreq": 49.8, "overDroop": 0.05, "underDroop": 0.05, "responseTime": 2}
CURVE = {"priority": 2, "yUnit": "PctMaxW", "curveData": [{"x": 50.2, "y": 100}, {"x": 51.5, "y": 0}]}


class DerStation(Station21):
    """Keeps what it is asked and reports as the spec says (ReportDERControl, BatterySwap)."""

    calls: list[tuple[str, dict[str, Any]]]

    @on(Action21.set_der_control)
    async def on_set_der_control(self, is_default, control_id, control_type, **kwargs):
        self.calls.append(("SetDERControl", {"control_id": control_id, "control_type": control_type, **kwargs}))
        return result21.SetDERControl(status="Accepted", superseded_ids=["old-1"] if control_type == "FreqDroop" else None)

    @on(Action21.get_der_control)
    async def on_get_der_control(self, request_id, **kwargs):
        self.calls.append(("GetDERControl", {"request_id": request_id, **kwargs}))
        return result21.GetDERControl(status="Accepted")

    @on(Action21.clear_der_control)
    async def on_clear_der_control(self, is_default, **kwargs):
        self.calls.append(("ClearDERControl", {"is_default": is_default, **kwargs}))
        return result21.ClearDERControl(status="NotFound" if kwargs.get("control_id") == "nope" else "Accepted")

    @on(Action21.request_battery_swap)
    async def on_request_battery_swap(self, request_id, id_token, **kwargs):
        self.calls.append(("RequestBatterySwap", {"request_id": request_id, "id_token": id_token}))
        return result21.RequestBatterySwap(status="Accepted")


async def test_der_controls_and_battery_swap_over_rest(server):
    sid, api = "DER21", server.api
    async with library_station(server, sid, "Der21", DerStation) as cp:
        cp.calls = []
        r = await api.post(f"/stations/{sid}/der-controls", json={
            "control_id": "droop-1", "control_type": "FreqDroop", "control": DROOP})
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "Accepted" and r.json()["superseded_ids"] == ["old-1"]
        r = await api.post(f"/stations/{sid}/der-controls", json={
            "control_id": "fw-1", "control_type": "FreqWatt", "control": CURVE, "is_default": True})
        assert r.status_code == 201 and r.json()["superseded_ids"] == [], r.text
        assert [c[1]["control_type"] for c in cp.calls] == ["FreqDroop", "FreqWatt"]
        assert cp.calls[0][1]["freq_droop"]["over_freq"] == 50.2  # the library's snake_case
        assert cp.calls[1][1]["curve"]["y_unit"] == "PctMaxW"

        r = await api.get(f"/stations/{sid}/der-controls", params={"control_type": "FreqDroop"})
        assert r.status_code == 200, r.text
        request_id = r.json()["request_id"]
        assert r.json()["status"] == "Accepted" and cp.calls[-1] == (
            "GetDERControl", {"request_id": request_id, "control_type": "FreqDroop"})
        await cp.call(call21.ReportDERControl(request_id=request_id, freq_droop=[
            {"id": "droop-1", "is_default": False, "is_superseded": False, "freq_droop": DROOP_SNAKE}]))

        r = await api.post(f"/stations/{sid}/der-controls/clear", json={"is_default": False, "control_id": "droop-1"})
        assert r.status_code == 201 and r.json()["status"] == "Accepted", r.text
        r = await api.post(f"/stations/{sid}/der-controls/clear", json={"is_default": True, "control_id": "nope"})
        assert r.json()["status"] == "NotFound"

        r = await api.post(f"/stations/{sid}/battery-swap", json={"id_token": "SWAP-7"})
        assert r.status_code == 201 and r.json()["status"] == "Accepted", r.text
        swap_id = r.json()["request_id"]
        assert cp.calls[-1] == ("RequestBatterySwap", {"request_id": swap_id,
                                                       "id_token": {"id_token": "SWAP-7", "type": "ISO14443"}})
        await cp.call(call21.BatterySwap(
            event_type="BatteryOut", request_id=swap_id, id_token={"id_token": "SWAP-7", "type": "ISO14443"},
            battery_data=[{"evse_id": 1, "serial_number": "B-7", "so_c": 80, "so_h": 95}]))

        # bodies are checked: unknown fields and types, and the control against the 2.1 schema
        sent = await MessageLog.count().where(MessageLog.station_id == sid)
        for body in ({"control_id": "x", "control_type": "Bogus", "control": DROOP},
                     {"control_id": "x", "control_type": "FreqDroop", "control": DROOP, "extra": 1},
                     {"control_id": "", "control_type": "FreqDroop", "control": DROOP}):
            r = await api.post(f"/stations/{sid}/der-controls", json=body)
            assert r.status_code == 400, (body, r.text)
        r = await api.post(f"/stations/{sid}/der-controls", json={
            "control_id": "x", "control_type": "FreqDroop", "control": {"priority": 1}})
        assert r.status_code == 400 and "rejected before sending" in r.json()["detail"], r.text
        r = await api.post(f"/stations/{sid}/battery-swap", json={"id_token": "S", "token_type": "Card"})
        assert r.status_code == 400, r.text
        assert await MessageLog.count().where(MessageLog.station_id == sid) == sent
        assert len(cp.calls) == 6

    der = [e for e in await events(server, sid, "der") if e["kind"] == "ReportDERControl"]
    assert der and der[0]["details"]["requestId"] == request_id
    (swap,) = await events(server, sid, "battery_swap")
    assert swap["details"]["requestId"] == swap_id

    # the commands and their answers are in the station's command history
    rows = (await api.get(f"/stations/{sid}/commands", params={"limit": 50})).json()["items"]
    assert {c["action"] for c in rows} >= {"SetDERControl", "GetDERControl", "ClearDERControl", "RequestBatterySwap"}


DROOP_SNAKE = {"priority": 1, "over_freq": 50.2, "under_freq": 49.8, "over_droop": 0.05, "under_droop": 0.05,
               "response_time": 2}


async def test_an_older_station_has_no_der_controls(server):
    async with station(server, "DER201", "2.0.1"):
        r = await server.api.post("/stations/DER201/der-controls", json={
            "control_id": "d", "control_type": "FreqDroop", "control": DROOP})
        assert r.status_code == 409 and r.json()["extra"]["error"] == "NotSupported", r.text
        r = await server.api.post("/stations/DER201/battery-swap", json={"id_token": "T"})
        assert r.status_code == 409
