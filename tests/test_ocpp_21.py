"""OCPP 2.1: the handshake, the 2.0.1 messages 2.1 keeps, periodic event streams, and OCPP-J
2.1's SEND (MessageTypeId 6, never answered) and CALLRESULTERROR (5, logged), driven by the
``ocpp-rpc`` strict station (``tests/node/strict_station.mjs --protocol ocpp2.1``: every frame
the CSMS sends is checked against the 2.1 schemas ocpp-rpc ships), raw frames, and the ``ocpp``
library's own ``ocpp.v21`` ChargePoint. The REST commands of the 2.x family go to a strict 2.1
station in ``tests/test_ocpp_rpc_strict.py::test_strict_station_walk_and_commands``."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any, AsyncIterator

import websockets
from ocpp.routing import on
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v21 import call as call21
from ocpp.v21 import call_result as result21
from ocpp.v21.enums import Action as Action21

from csms.core.tables import MessageLog
from csms.plugin_api import SessionCost, hookimpl
from csms.testing.stations import now_iso
from tests.test_final_cost import FlatPricing, register  # noqa: F401 (fixture)
from tests.test_ocpp_rpc_strict import (  # noqa: F401 (fixture)
    Commands,
    create_token,
    eventually,
    node_station,
    sessions_of,
    strict_station,
)

BOOT = {"reason": "PowerUp", "chargingStation": {"model": "M21", "vendorName": "Acme"}}
STREAM_DATA = {"id": 3, "pending": 0, "basetime": "2026-01-01T10:00:00.000Z",
               "data": [{"t": 0, "v": "11.2"}, {"t": 0.5, "v": "11.4"}]}


async def answer(ws: Any) -> list[Any]:
    """The next frame that is not a CALL of the CSMS (such as the local list check after a boot,
    answered NotImplemented here)."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if frame[0] != 2:
            return frame
        await ws.send(json.dumps([4, frame[1], "NotImplemented", "raw test station", {}]))


async def rpc(ws: Any, frame: Any) -> list[Any]:
    await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
    return await answer(ws)


async def events(server: Any, station_id: str, category: str) -> list[dict[str, Any]]:
    return (await server.api.get(f"/stations/{station_id}/events", params={"category": category})).json()["items"]


async def test_handshake_prefers_21_and_stores_the_version(server):
    async with websockets.connect(server.ws_url("V21A"), subprotocols=["ocpp1.6", "ocpp2.0.1", "ocpp2.1"]) as ws:
        assert ws.subprotocol == "ocpp2.1"
        r = await rpc(ws, [2, "b", "BootNotification", BOOT])
        assert r[0] == 3 and r[2]["status"] == "Accepted"
        detail = (await server.api.get("/stations/V21A")).json()
        assert detail["ocpp_version"] == "2.1" and detail["online"] is True
    # without 2.1 in the offer, 2.0.1 still wins over 1.6
    async with websockets.connect(server.ws_url("V21B"), subprotocols=["ocpp1.6", "ocpp2.0.1"]) as ws:
        assert ws.subprotocol == "ocpp2.0.1"


async def test_strict_21_station_transaction_with_total_cost(server, node_station, register):
    """Boot, authorize, a transaction with meter values whose Ended answer carries totalCost,
    a periodic event stream with its SEND, a V2X charging profile: all checked by ocpp-rpc
    against the 2.1 schemas."""
    register(FlatPricing())
    sid, tag = "STRICT21", "STRICT21-TAG"
    await create_token(server, tag)
    async with strict_station(node_station, server, sid, "ocpp2.1", token=tag, linger=60) as st:
        await st.wait_event("lingering", timeout=60)
        walk = st.find(lambda e: e.get("event") == "tx_stopped")
        stream = st.find(lambda e: e.get("event") == "stream_done")
        assert walk and stream, st.report()
        cmd = Commands(server, st, sid)
        # a V2X profile (2.1 only): discharging down to -7.4 kW, a setpoint, an operation mode
        v2x = {"evseId": 1, "chargingProfile": {
            "id": 21, "stackLevel": 2, "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute",
            "chargingSchedule": [{"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [
                {"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -7400.0,
                 "dischargeLimit": -7400.0, "limit": 11000.0}]}]}}
        data = await cmd.raw("SetChargingProfile", v2x, status="Accepted")
        call = st.find(lambda e: e.get("event") == "call" and e["action"] == "SetChargingProfile")
        assert call["params"] == v2x and data["ocpp_version"] == "2.1"
        st.assert_clean_exit(await st.quit())

    answers = st.find_all(lambda e: e.get("event") == "answer" and e["action"] == "TransactionEvent")
    (ended,) = [a for a in answers if a["params"]["eventType"] == "Ended"]
    (row,) = await sessions_of(server, sid)
    assert row["state"] == "completed" and row["id_token"] == tag
    assert row["energy_wh"] == walk["energyWh"] > 0
    net = (Decimal(str(row["energy_wh"])) / 1000 * Decimal("0.40")).quantize(Decimal("0.01"))
    assert ended["payload"]["totalCost"] == float((net * Decimal("1.21")).quantize(Decimal("0.01")))
    assert all("totalCost" not in a["payload"] for a in answers if a["params"]["eventType"] != "Ended")
    authorize = st.find(lambda e: e.get("event") == "answer" and e["action"] == "Authorize")
    assert authorize["payload"]["idTokenInfo"]["status"] == "Accepted"
    assert (await server.api.get(f"/stations/{sid}")).json()["ocpp_version"] == "2.1"

    # the stream: opened, its SEND stored (and never answered: the script checks every frame), closed
    kinds = [e["kind"] for e in reversed(await events(server, sid, "event_stream"))]
    assert kinds == ["OpenPeriodicEventStream", "NotifyPeriodicEventStream", "ClosePeriodicEventStream"]
    await server.core.writer.flush()
    frames = await MessageLog.select(MessageLog.direction, MessageLog.message_type).where(
        (MessageLog.station_id == sid) & (MessageLog.unique_id == stream["sendId"]))
    assert frames == [{"direction": "in", "message_type": 6}]


async def test_send_and_callresulterror_frames(server):
    """A SEND is handled and never answered, not even when it is wrong; a CALLRESULTERROR is
    logged; the connection goes on. Before 2.1 both are MessageTypeNotSupported."""
    sid = "RAW21"
    async with websockets.connect(server.ws_url(sid), subprotocols=["ocpp2.1"]) as ws:
        assert (await rpc(ws, [2, "b", "BootNotification", BOOT]))[2]["status"] == "Accepted"
        await ws.send(json.dumps([6, "s1", "NotifyPeriodicEventStream", STREAM_DATA]))
        await ws.send(json.dumps([6, "s2", "NotifyPeriodicEventStream", {"id": 3}]))  # breaks the schema
        await ws.send(json.dumps([6, "s3", "Heartbeat", {}]))  # not a SEND message
        await ws.send(json.dumps([6, "s4", "NotifyPeriodicEventStream", STREAM_DATA, "extra"]))
        await ws.send(json.dumps([5, "r1", "GenericError", "your answer puzzled me", {}]))
        await ws.send(json.dumps([5, "r2"]))  # too short to be anything
        # the first answer is the Heartbeat's: nothing came back for the frames before it
        r = await rpc(ws, [2, "h", "Heartbeat", {}])
        assert r[:2] == [4, "r2"] and r[2] == "RpcFrameworkError"
        r = await answer(ws)
        assert r[:2] == [3, "h"], r
        # a SEND action as a CALL, an action 2.1 does not have
        r = await rpc(ws, [2, "c1", "NotifyPeriodicEventStream", STREAM_DATA])
        assert r[:3] == [4, "c1", "RpcFrameworkError"]
        r = await rpc(ws, [2, "c2", "ValidateMyParking", {"evseId": 1}])
        assert r[:3] == [4, "c2", "NotImplemented"]
        r = await rpc(ws, [2, "c3", "SetDERControl", {}])  # a CSMS->station message of 2.1
        assert r[:3] == [4, "c3", "NotSupported"]
        r = await rpc(ws, [2, "c4", "OpenPeriodicEventStream", {"constantStreamData": {
            "id": 3, "variableMonitoringId": 9, "params": {"interval": 10}}}])
        assert r == [3, "c4", {"status": "Accepted"}]
        r = await rpc(ws, [7, "x", "Heartbeat", {}])
        assert r[:3] == [4, "x", "MessageTypeNotSupported"]
    stored = await events(server, sid, "event_stream")
    sends = [e for e in stored if e["kind"] == "NotifyPeriodicEventStream"]
    assert [e["details"] for e in sends] == [STREAM_DATA]  # only the valid one
    assert sends[0]["summary"] == "stream 3: 2 values, 0 pending"
    await server.core.writer.flush()
    out = await MessageLog.select(MessageLog.unique_id).where(
        (MessageLog.station_id == sid) & (MessageLog.direction == "out"))
    assert {r["unique_id"] for r in out} & {"s1", "s2", "s3", "s4", "r1"} == set()

    async with websockets.connect(server.ws_url("RAW201"), subprotocols=["ocpp2.0.1"]) as ws:
        assert (await rpc(ws, [2, "b", "BootNotification", BOOT]))[2]["status"] == "Accepted"
        assert (await rpc(ws, [6, "s1", "NotifyPeriodicEventStream", STREAM_DATA]))[:3] == [
            4, "s1", "MessageTypeNotSupported"]
        assert (await rpc(ws, [5, "r1", "GenericError", "", {}]))[:3] == [4, "r1", "MessageTypeNotSupported"]


class Station21(ChargePoint21):
    """The ``ocpp`` library's own 2.1 station: answers the commands the test sends."""

    resets: list[str]

    @on(Action21.reset)
    async def on_reset(self, type, **kwargs):
        self.resets.append(type)
        return result21.Reset(status="Accepted")

    @on(Action21.request_start_transaction)
    async def on_request_start(self, id_token, remote_start_id, **kwargs):
        self.remote_started = (id_token, remote_start_id)
        return result21.RequestStartTransaction(status="Accepted")


@asynccontextmanager
async def library_station(server: Any, sid: str, model: str, cls: type[Station21] | None = None
                          ) -> AsyncIterator[Station21]:
    """The library's 2.1 station ``sid`` (a :class:`Station21`, or ``cls``), connected and booted."""
    async with websockets.connect(server.ws_url(sid), subprotocols=["ocpp2.1"]) as ws:
        cp = (cls or Station21)(sid, ws)
        cp.resets = []
        task = asyncio.create_task(cp.start())
        try:
            boot = await cp.call(call21.BootNotification(
                charging_station={"model": model, "vendor_name": "Acme"}, reason="PowerUp"))
            assert boot.status == "Accepted" and boot.interval > 0
            yield cp
        finally:
            task.cancel()


async def test_library_v21_charge_point(server):
    sid = "LIB21"
    await create_token(server, "LIB21-TAG")
    async with library_station(server, sid, "Lib21") as cp:
        await cp.call(call21.StatusNotification(timestamp=now_iso(), connector_status="Available", evse_id=1,
                                                connector_id=1))
        auth = await cp.call(call21.Authorize(id_token={"id_token": "LIB21-TAG", "type": "ISO14443"}))
        assert auth.id_token_info["status"] == "Accepted"
        tx = "lib21-tx"
        await cp.call(call21.TransactionEvent(
            event_type="Started", timestamp=now_iso(), trigger_reason="Authorized", seq_no=0,
            transaction_info={"transaction_id": tx, "charging_state": "Charging"},
            id_token={"id_token": "LIB21-TAG", "type": "ISO14443"}, evse={"id": 1, "connector_id": 1},
            meter_value=[{"timestamp": now_iso(), "sampled_value": [{"value": 1000.0}]}]))
        r = await server.api.post(f"/stations/{sid}/reset", json={"kind": "soft"})
        assert r.status_code == 201 and r.json()["status"] == "Accepted", r.text
        assert cp.resets == ["OnIdle"]
        r = await server.api.post(f"/stations/{sid}/remote-start", json={"id_token": "LIB21-TAG", "evse_id": 1})
        assert r.status_code == 201 and r.json()["status"] == "Accepted", r.text
        assert cp.remote_started[0]["id_token"] == "LIB21-TAG"
        await cp.call(call21.TransactionEvent(
            event_type="Ended", timestamp=now_iso(), trigger_reason="StopAuthorized", seq_no=1,
            transaction_info={"transaction_id": tx, "stopped_reason": "Local"},
            meter_value=[{"timestamp": now_iso(), "sampled_value": [{"value": 3500.0}]}]))
    (row,) = await sessions_of(server, sid)
    assert row["state"] == "completed" and row["energy_wh"] == 2500
    assert (await server.api.get(f"/stations/{sid}")).json()["ocpp_version"] == "2.1"


async def test_cost_updated_goes_out_as_21(server):
    """The running cost (billing's push, through the core's running_costs service) is 2.1's CostUpdated."""
    sid = "COST21"
    got: list[dict[str, Any]] = []

    class CostStation(ChargePoint21):
        @on(Action21.cost_updated)
        async def on_cost_updated(self, total_cost, transaction_id, **kwargs):
            got.append({"total_cost": total_cost, "transaction_id": transaction_id})
            return result21.CostUpdated()

    async with websockets.connect(server.ws_url(sid), subprotocols=["ocpp2.1"]) as ws:
        cp = CostStation(sid, ws)
        task = asyncio.create_task(cp.start())
        try:
            await cp.call(call21.BootNotification(charging_station={"model": "C", "vendor_name": "A"},
                                                  reason="PowerUp"))
            assert server.core.running_costs.sends_to(sid)
            await cp.call(call21.TransactionEvent(
                event_type="Started", timestamp=now_iso(), trigger_reason="CablePluggedIn", seq_no=0,
                transaction_info={"transaction_id": "c21"}, evse={"id": 1, "connector_id": 1}))
            await server.core.running_costs.send(sid, transaction_id="c21", cost=SessionCost(
                "EUR", Decimal("1.00"), Decimal("1.21"), final=False), meter_wh=None, charging=True)
            await eventually(lambda: got)
        finally:
            task.cancel()
    assert got == [{"total_cost": 1.21, "transaction_id": "c21"}]


async def test_battery_swap_der_settlement_and_priority_reports_are_stored(server):
    """What a 2.1 station reports that 2.0.1 has no message for: answered per the 2.1 schemas (the
    library's ChargePoint checks every answer) and kept in the station's event log."""
    sid = "LIB21R"
    async with library_station(server, sid, "Swap21") as cp:
        await cp.call(call21.BatterySwap(
            event_type="BatteryIn", request_id=7, id_token={"id_token": "SWAP-1", "type": "ISO14443"},
            battery_data=[{"evse_id": 1, "serial_number": "B-100", "so_c": 12.5, "so_h": 97,
                           "production_date": "2025-03-01T00:00:00Z"}]))
        await cp.call(call21.NotifyDERAlarm(control_type="FreqDroop", timestamp="2026-12-06T10:00:00Z",
                                            grid_event_fault="OverFrequency"))
        await cp.call(call21.NotifyDERAlarm(control_type="FreqDroop", timestamp="2026-12-06T10:05:00Z",
                                            alarm_ended=True))
        await cp.call(call21.NotifyDERStartStop(control_id="ctl-1", started=True,
                                                timestamp="2026-12-06T10:01:00Z", superseded_ids=["ctl-0"]))
        await cp.call(call21.ReportDERControl(request_id=4, tbc=False, gradient=[
            {"id": "g-1", "gradient": {"priority": 1, "gradient": 30, "soft_gradient": 60}},
            {"id": "g-2", "gradient": {"priority": 2, "gradient": 10, "soft_gradient": 20}}]))
        failed = await cp.call(call21.NotifySettlement(
            psp_ref="PSP-43", status="Failed", settlement_amount=5, settlement_time="2026-12-06T11:10:00Z"))
        assert failed.receipt_id is None and failed.receipt_url is None
        await cp.call(call21.NotifyPriorityCharging(transaction_id="tx-9", activated=True))
    # (the library spells receipt_url "receiptURL", which the schema does not know: a raw frame)
    async with websockets.connect(server.ws_url(sid), subprotocols=["ocpp2.1"]) as ws:
        r = await rpc(ws, [2, "n1", "NotifySettlement", {
            "pspRef": "PSP-42", "status": "Settled", "settlementAmount": 12.34, "settlementTime": "2026-12-06T11:00:00Z",
            "transactionId": "tx-9", "receiptId": "R-1", "receiptUrl": "https://station.example/r/1"}])
        assert r == [3, "n1", {"receiptId": "R-1", "receiptUrl": "https://station.example/r/1"}]

    (swap,) = await events(server, sid, "battery_swap")
    assert swap["kind"] == "BatteryIn"
    assert swap["summary"] == "BatteryIn (request 7, token SWAP-1): B-100 12.5 %"
    der = list(reversed(await events(server, sid, "der")))
    assert [(e["kind"], e["summary"]) for e in der] == [
        ("NotifyDERAlarm", "FreqDroop alarm raised (OverFrequency)"),
        ("NotifyDERAlarm", "FreqDroop alarm ended"),
        ("NotifyDERStartStop", "DER control ctl-1 started, superseding ctl-0"),
        ("ReportDERControl", "report 4: 2 gradient"),
    ]
    payments = list(reversed(await events(server, sid, "payment")))
    assert [e["summary"] for e in payments] == [
        "Failed 5 (PSP reference PSP-43)", "Settled 12.34 for transaction tx-9 (PSP reference PSP-42)"]
    assert payments[1]["details"]["receiptUrl"] == "https://station.example/r/1"
    (priority,) = await events(server, sid, "charging_limit")
    assert priority["summary"] == "priority charging activated for transaction tx-9"


async def test_cost_a_station_calculates_itself_is_kept(server):
    """2.1 local cost calculation: the station's own ``costDetails`` in TransactionEvent are kept in
    its event log; the transaction is stored as always."""
    sid = "LIB21C"
    async with library_station(server, sid, "Cost21") as cp:
        tx = "cost21-tx"
        await cp.call(call21.TransactionEvent(
            event_type="Started", timestamp=now_iso(), trigger_reason="CablePluggedIn", seq_no=0,
            transaction_info={"transaction_id": tx}, evse={"id": 1, "connector_id": 1},
            meter_value=[{"timestamp": now_iso(), "sampled_value": [{"value": 1000.0}]}]))
        await cp.call(call21.TransactionEvent(
            event_type="Updated", timestamp=now_iso(), trigger_reason="RunningCost", seq_no=1,
            transaction_info={"transaction_id": tx},
            cost_details={"total_cost": {"currency": "EUR", "type_of_cost": "NormalCost",
                                         "total": {"excl_tax": 0.5}},
                          "total_usage": {"energy": 1200, "charging_time": 600, "idle_time": 0},
                          "failure_to_calculate": True, "failure_reason": "tariff expired"}))
        await cp.call(call21.TransactionEvent(
            event_type="Ended", timestamp=now_iso(), trigger_reason="EVDeparted", seq_no=2,
            transaction_info={"transaction_id": tx, "stopped_reason": "EVDisconnected"},
            meter_value=[{"timestamp": now_iso(), "sampled_value": [{"value": 3500.0}]}],
            cost_details={"total_cost": {"currency": "EUR", "type_of_cost": "NormalCost",
                                         "fixed": {"excl_tax": 0.5, "incl_tax": 0.6},
                                         "total": {"excl_tax": 1.5, "incl_tax": 1.82}},
                          "total_usage": {"energy": 2500, "charging_time": 1800, "idle_time": 60}}))
    (row,) = await sessions_of(server, sid)
    assert row["state"] == "completed" and row["energy_wh"] == 2500
    costs = list(reversed(await events(server, sid, "station_cost")))
    assert [e["summary"] for e in costs] == [
        "Updated: NormalCost cost 0.5 EUR excl. tax for 1200 Wh, 600 s charging (transaction cost21-tx); "
        "not calculated: tariff expired",
        "Ended: NormalCost cost 1.82 EUR incl. tax for 2500 Wh, 1800 s charging (transaction cost21-tx)",
    ]
    assert costs[1]["details"]["transaction_id"] == "cost21-tx"
    assert costs[1]["details"]["totalCost"]["fixed"] == {"exclTax": 0.5, "inclTax": 0.6}


TARIFF = {"tariffId": "T-DAY", "currency": "EUR", "description": [{"format": "UTF8", "language": "en",
                                                                  "content": "0.35 per kWh"}],
          "energy": {"prices": [{"priceKwh": 0.35}], "taxRates": [{"type": "VAT", "tax": 21}]},
          "idleTime": {"prices": [{"priceMinute": 0.10, "conditions": {"minIdleTime": 600}}]}}


class TariffOfTheStation:
    """A throwaway plugin answering ``station_tariff``."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    @hookimpl
    def station_tariff(self, station_id, evse_id):
        self.asked.append((station_id, evse_id))
        return {**TARIFF, "tariffId": f"PLUGIN-{evse_id}"}


async def test_strict_21_station_default_and_transaction_tariffs(server, node_station, register):
    """SetDefaultTariff, GetTariffs, ClearTariffs and ChangeTransactionTariff over REST to a strict
    2.1 station (every frame checked against the 2.1 schemas), with the operator's tariff or the
    station_tariff hook's; a tariff breaking the schema never leaves; 2.0.1 has none."""
    sid, tag = "TARIFF21", "TARIFF21-TAG"
    await create_token(server, tag)
    async with strict_station(node_station, server, sid, "ocpp2.1", token=tag, linger=60) as st:
        await st.wait_event("lingering", timeout=60)
        cmd = Commands(server, st, sid)
        data = await cmd.send("POST", "/tariffs/default", {"evse_id": 1, "tariff": TARIFF},
                              action="SetDefaultTariff", status="Accepted")
        assert data["tariff"] == TARIFF
        call = st.find(lambda e: e.get("event") == "call" and e["action"] == "SetDefaultTariff")
        assert call["params"] == {"evseId": 1, "tariff": TARIFF}
        # no tariff given and no plugin with one: refused in words, nothing sent
        r = await cmd.refused("POST", "/tariffs/default", {"evse_id": 0}, http=400)
        assert "no plugin has one" in r["detail"]
        # a plugin's tariff
        plugin = register(TariffOfTheStation())
        data = await cmd.send("POST", "/tariffs/default", {}, action="SetDefaultTariff", status="Accepted")
        assert data["tariff"]["tariffId"] == "PLUGIN-0" and plugin.asked == [(sid, 0)]
        # broken tariffs are refused before sending: no currency; a price that is not a number
        r = await cmd.refused("POST", "/tariffs/default", {"tariff": {"tariffId": "X"}}, http=400)
        assert "payload rejected before sending" in r["detail"]
        bad = {**TARIFF, "energy": {"prices": [{"priceKwh": "cheap"}]}}
        await cmd.refused("POST", "/tariffs/default", {"tariff": bad}, http=400)
        await cmd.refused("POST", "/tariffs/default", {"evse_id": -1, "tariff": TARIFF}, http=400)
        data = await cmd.send("GET", "/tariffs/", action="GetTariffs", status="Accepted", http=200)
        assert sorted(a["tariffId"] for a in data["assignments"]) == ["PLUGIN-0", "T-DAY"]
        data = await cmd.send("POST", "/tariffs/clear", {"tariff_ids": ["T-DAY"]}, action="ClearTariffs",
                              status="Accepted")
        assert data["results"] == [{"tariffId": "T-DAY", "status": "Accepted"}]
        data = await cmd.send("GET", "/tariffs/?evse_id=1", action="GetTariffs", http=200)
        assert [a["tariffId"] for a in data["assignments"]] == ["PLUGIN-0"]
        await cmd.send("POST", "/tariffs/clear", {}, action="ClearTariffs", status="Accepted")
        data = await cmd.send("POST", "/tariffs/clear", {}, action="ClearTariffs", status="Accepted")
        assert data["results"] == [{"status": "NoTariff"}]  # nothing left to clear
        assert (await cmd.send("GET", "/tariffs/", action="GetTariffs", http=200))["status"] == "NoTariff"
        # a transaction that is not running: refused; the walk's transaction has ended
        r = await cmd.refused("POST", "/tariffs/transaction", {"transaction_id": "nope"}, http=400)
        assert "no running transaction" in r["detail"]
        st.assert_clean_exit(await st.quit())

    async with websockets.connect(server.ws_url("TARIFF201"), subprotocols=["ocpp2.0.1"]) as ws:
        assert (await rpc(ws, [2, "b", "BootNotification", BOOT]))[2]["status"] == "Accepted"
        r = await server.api.post("/stations/TARIFF201/tariffs/default", json={"tariff": TARIFF})
        assert r.status_code == 409 and r.json()["extra"]["error"] == "NotSupported", r.text
        assert "OCPP 2.1 has" in r.json()["detail"]


async def test_a_running_transaction_gets_a_new_tariff(server, register):
    """ChangeTransactionTariff for a running transaction of the library's 2.1 station, with the
    tariff the station_tariff hook has for the transaction's EVSE."""
    plugin = register(TariffOfTheStation())
    got: list[dict[str, Any]] = []

    class TariffStation(Station21):
        @on(Action21.change_transaction_tariff)
        async def on_change_tariff(self, transaction_id, tariff, **kwargs):
            got.append({"transaction_id": transaction_id, "tariff": tariff})
            return result21.ChangeTransactionTariff(status="Accepted")

    sid = "TXTARIFF21"
    async with websockets.connect(server.ws_url(sid), subprotocols=["ocpp2.1"]) as ws:
        cp = TariffStation(sid, ws)
        task = asyncio.create_task(cp.start())
        try:
            await cp.call(call21.BootNotification(charging_station={"model": "T21", "vendor_name": "Acme"},
                                                  reason="PowerUp"))
            await cp.call(call21.TransactionEvent(
                event_type="Started", timestamp=now_iso(), trigger_reason="CablePluggedIn", seq_no=0,
                transaction_info={"transaction_id": "tt-1"}, evse={"id": 2, "connector_id": 1}))
            r = await server.api.post(f"/stations/{sid}/tariffs/transaction", json={"transaction_id": "tt-1"})
            assert r.status_code == 201 and r.json()["status"] == "Accepted", r.text
        finally:
            task.cancel()
    assert plugin.asked == [(sid, 2)]
    assert got[0]["transaction_id"] == "tt-1" and got[0]["tariff"]["tariff_id"] == "PLUGIN-2"
