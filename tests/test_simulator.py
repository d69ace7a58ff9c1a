"""The simulated stations against a real server: sessions, every command they answer, the bench."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone

import pytest

from csms_tools.bench import closed_loop
from csms.core.timeutil import ocpp_ts
from csms.testing import free_port
from csms_tools.simulator import Backoff, SimStation
from tests.crashkit import ServerProcess

VERSIONS = ["1.6", "2.0.1"]


def ocpp_base(srv) -> str:
    return srv.ws_url("x").rsplit("/", 1)[0]


async def make_token(srv, token: str) -> None:
    r = await srv.api.post("/tokens", json={"id_token": token})
    assert r.status_code in (200, 201), r.text


async def send(srv, station_id: str, action: str, payload: dict) -> dict:
    """Send a raw OCPP call through the REST API; the server validates the station's answer."""
    r = await srv.api.post(f"/stations/{station_id}/ocpp/{action}", json=payload)
    assert r.status_code in (200, 201), f"{action}: HTTP {r.status_code} {r.text}"
    return r.json()["response"]


async def send_error(srv, station_id: str, action: str, payload: dict) -> str:
    r = await srv.api.post(f"/stations/{station_id}/ocpp/{action}", json=payload)
    assert r.status_code == 502, f"{action}: HTTP {r.status_code} {r.text}"
    return r.json()["extra"]["error"]


async def connected_station(srv, station_id: str, version: str, **kwargs) -> SimStation:
    st = SimStation(station_id, srv.ws_url(station_id), version, check_frames=True, **kwargs)
    await st.connect()
    assert await st.boot() == "Accepted"
    return st


@pytest.mark.parametrize("version", [*VERSIONS, "2.1"])
async def test_session_with_meter_values(server, version):
    sid = f"SIMT{version.replace('.', '')}"
    token = f"CARD{version.replace('.', '')}"
    await make_token(server, token)
    st = await connected_station(server, sid, version)
    try:
        await st.status(1, "Available")
        await st.status(2, "Available")
        tx = await st.start_session(1, token)
        assert tx.auth_status == "Accepted"
        for _ in range(3):
            await st.meter_values(1, advance_s=60)  # one simulated minute at 11 kW each
        done = await st.stop_session(1)
        assert done.energy_wh > 500
        assert st.errors == 0
    finally:
        await st.close()

    r = await server.api.get("/sessions", params={"station": sid})
    assert r.status_code == 200
    items = r.json()["items"]
    assert len(items) == 1
    session = items[0]
    assert session["state"] == "completed"
    assert session["id_token"] == token
    assert session["energy_wh"] > 0
    assert session["energy_wh"] == pytest.approx(done.energy_wh, abs=1.5)  # 1.6 meter readings are whole Wh
    assert str(session["transaction_id"]) == str(done.transaction_id)
    r = await server.api.get(f"/sessions/{session['id']}/meter-values")
    measurands = {row["measurand"] for row in r.json()["items"]}
    assert {"Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Voltage"} <= measurands


def _soon(seconds: int = 3600) -> str:
    return ocpp_ts(datetime.now(timezone.utc) + timedelta(seconds=seconds))


async def test_answers_commands_16(server):
    sid, token = "SIMCMD16", "CARDCMD16"
    await make_token(server, token)
    st = await connected_station(server, sid, "1.6")
    try:
        await st.announce()
        # configuration
        res = await send(server, sid, "GetConfiguration", {})
        keys = {k["key"]: k for k in res["configurationKey"]}
        assert {"HeartbeatInterval", "MeterValueSampleInterval", "ChargeProfileMaxStackLevel"} <= set(keys)
        res = await send(server, sid, "GetConfiguration", {"key": ["HeartbeatInterval", "NoSuchKey"]})
        assert res["unknownKey"] == ["NoSuchKey"]
        assert (await send(server, sid, "ChangeConfiguration",
                           {"key": "MeterValueSampleInterval", "value": "30"}))["status"] == "Accepted"
        assert st.config["MeterValueSampleInterval"][0] == "30"
        assert (await send(server, sid, "ChangeConfiguration",
                           {"key": "ChargeProfileMaxStackLevel", "value": "3"}))["status"] == "Rejected"
        assert (await send(server, sid, "ChangeConfiguration", {"key": "Nope", "value": "1"}))["status"] == \
            "NotSupported"
        st.meter_interval = 0  # keep the test quiet

        # remote start and stop
        assert (await send(server, sid, "RemoteStartTransaction",
                           {"connectorId": 2, "idTag": token}))["status"] == "Accepted"
        await st.settle()
        tx = st.evses[2].tx
        assert tx is not None and tx.id_token == token
        assert (await send(server, sid, "RemoteStopTransaction",
                           {"transactionId": tx.transaction_id}))["status"] == "Accepted"
        await st.settle()
        assert st.evses[2].tx is None and tx.stop_reason == "Remote"
        assert (await send(server, sid, "RemoteStopTransaction", {"transactionId": 999999}))["status"] == "Rejected"

        # smart charging
        await st.start_session(1, token)
        profile = {"chargingProfileId": 11, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
                   "chargingProfileKind": "Relative",
                   "chargingSchedule": {"chargingRateUnit": "A",
                                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}]}}
        assert (await send(server, sid, "SetChargingProfile",
                           {"connectorId": 1, "csChargingProfiles": profile}))["status"] == "Accepted"
        assert st.profiles[1][0]["chargingProfileId"] == 11
        assert st.limit_a(1) == 16
        station_max = {"chargingProfileId": 12, "stackLevel": 0, "chargingProfilePurpose": "ChargePointMaxProfile",
                       "chargingProfileKind": "Absolute",
                       "chargingSchedule": {"chargingRateUnit": "W", "startSchedule": ocpp_ts(),
                                            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6900}]}}
        assert (await send(server, sid, "SetChargingProfile",
                           {"connectorId": 0, "csChargingProfiles": station_max}))["status"] == "Accepted"
        assert st.limit_a(1) == pytest.approx(10)
        assert (await send(server, sid, "SetChargingProfile",
                           {"connectorId": 1, "csChargingProfiles": {**station_max, "chargingProfileId": 13}}
                           ))["status"] == "Rejected"  # a station maximum belongs on connector 0
        res = await send(server, sid, "GetCompositeSchedule",
                         {"connectorId": 1, "duration": 3600, "chargingRateUnit": "A"})
        assert res["status"] == "Accepted"
        assert res["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == pytest.approx(10)
        await st.meter_values(1, advance_s=60)
        assert st.evses[1].current_a == pytest.approx(10)  # the simulated car obeys the limit
        assert (await send(server, sid, "ClearChargingProfile", {"id": 12}))["status"] == "Accepted"
        assert (await send(server, sid, "ClearChargingProfile", {"id": 12}))["status"] == "Unknown"
        assert st.limit_a(1) == 16

        # triggers, firmware, diagnostics, logs
        n = len(st.events)
        for what in ("StatusNotification", "Heartbeat", "MeterValues", "BootNotification",
                     "FirmwareStatusNotification", "DiagnosticsStatusNotification"):
            assert (await send(server, sid, "TriggerMessage",
                               {"requestedMessage": what, "connectorId": 1}))["status"] == "Accepted"
        await st.settle()
        assert (await send(server, sid, "UpdateFirmware",
                           {"location": "https://example.com/fw-2.0.bin", "retrieveDate": ocpp_ts()})) == {}
        res = await send(server, sid, "GetDiagnostics", {"location": "ftp://example.com/upload"})
        assert res["fileName"].endswith(".log")
        res = await send(server, sid, "GetLog", {"logType": "DiagnosticsLog", "requestId": 5,
                                                 "log": {"remoteLocation": "ftp://example.com/logs"}})
        assert res["status"] == "Accepted"
        await st.settle()
        assert st.firmware_status == "Installed" and st.firmware == "fw-2.0.bin"
        assert st.diagnostics_status == "Uploaded" and st.log_status == "Uploaded"
        assert len(st.events) > n

        # reservations, connectors, availability, misc
        assert (await send(server, sid, "ReserveNow", {"connectorId": 2, "expiryDate": _soon(), "idTag": token,
                                                       "reservationId": 7}))["status"] == "Accepted"
        assert (await send(server, sid, "ReserveNow", {"connectorId": 1, "expiryDate": _soon(), "idTag": token,
                                                       "reservationId": 8}))["status"] == "Occupied"
        assert (await send(server, sid, "CancelReservation", {"reservationId": 7}))["status"] == "Accepted"
        assert (await send(server, sid, "CancelReservation", {"reservationId": 7}))["status"] == "Rejected"
        assert (await send(server, sid, "UnlockConnector", {"connectorId": 2}))["status"] == "Unlocked"
        assert (await send(server, sid, "ChangeAvailability",
                           {"connectorId": 2, "type": "Inoperative"}))["status"] == "Accepted"
        assert (await send(server, sid, "ChangeAvailability",
                           {"connectorId": 1, "type": "Inoperative"}))["status"] == "Scheduled"
        await st.settle()
        assert st.evses[2].status == "Unavailable"
        assert (await send(server, sid, "ChangeAvailability",
                           {"connectorId": 0, "type": "Operative"}))["status"] == "Accepted"
        assert (await send(server, sid, "ClearCache", {}))["status"] == "Accepted"
        assert (await send(server, sid, "DataTransfer", {"vendorId": "com.example", "data": "ping"})) == \
            {"status": "Accepted", "data": "ping"}
        assert await send_error(server, sid, "SendLocalList", {"listVersion": 1, "updateType": "Full"}) == \
            "NotSupported"

        # a soft reset stops the session and boots again
        assert (await send(server, sid, "Reset", {"type": "Soft"}))["status"] == "Accepted"
        await st.settle()
        assert st.evses[1].tx is None and st.registration == "Accepted"
        actions = [c.action for c in st.received_calls]
        assert "Reset" in actions and "SetChargingProfile" in actions
        assert st.errors == 0, list(st.events)
    finally:
        await st.close()


async def test_answers_commands_201(server):
    sid, token = "SIMCMD201", "CARDCMD201"
    await make_token(server, token)
    st = await connected_station(server, sid, "2.0.1")
    try:
        await st.announce()
        # device model
        res = await send(server, sid, "GetVariables", {"getVariableData": [
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
            {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "AvailabilityState"}},
            {"component": {"name": "NoSuchCtrlr"}, "variable": {"name": "X"}},
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "NoSuchVariable"}},
        ]})
        statuses = [r["attributeStatus"] for r in res["getVariableResult"]]
        assert statuses == ["Accepted", "Accepted", "UnknownComponent", "UnknownVariable"]
        assert res["getVariableResult"][0]["attributeValue"] == "300"
        res = await send(server, sid, "SetVariables", {"setVariableData": [
            {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"},
             "attributeValue": "0"},
            {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": "ProfileStackLevel"},
             "attributeValue": "2"},
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"},
             "attributeValue": "soon"},
        ]})
        assert [r["attributeStatus"] for r in res["setVariableResult"]] == ["Accepted", "Rejected", "Rejected"]
        n_calls = st.calls_sent
        assert (await send(server, sid, "GetBaseReport", {"requestId": 1, "reportBase": "FullInventory"}))[
            "status"] == "Accepted"
        await st.settle()
        assert st.calls_sent > n_calls  # NotifyReport parts
        r = await server.api.get(f"/stations/{sid}/configuration")
        assert r.status_code == 200

        # remote start and stop, with remoteStartId
        res = await send(server, sid, "RequestStartTransaction", {
            "idToken": {"idToken": token, "type": "ISO14443"}, "remoteStartId": 42, "evseId": 2})
        assert res["status"] == "Accepted"
        await st.settle()
        tx = st.evses[2].tx
        assert tx is not None and tx.remote_start_id == 42 and tx.transaction_id == res["transactionId"]
        assert (await send(server, sid, "RequestStopTransaction",
                           {"transactionId": tx.transaction_id}))["status"] == "Accepted"
        await st.settle()
        assert st.evses[2].tx is None and tx.stop_reason == "Remote"
        r = await server.api.get("/sessions", params={"station": sid})
        assert r.json()["items"][0]["remote_start_id"] == 42

        # smart charging
        await st.start_session(1, token)
        profile = {"id": 5, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile",
                   "chargingProfileKind": "Absolute",
                   "chargingSchedule": [{"id": 1, "startSchedule": ocpp_ts(), "chargingRateUnit": "W",
                                         "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6900.0}]}]}
        assert (await send(server, sid, "SetChargingProfile",
                           {"evseId": 1, "chargingProfile": profile}))["status"] == "Accepted"
        assert st.profiles[1][0]["id"] == 5
        assert st.limit_a(1) == pytest.approx(10)
        assert st.limit(1, "W") == pytest.approx(6900)
        tx_profile = {"id": 6, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
                      "chargingProfileKind": "Relative", "transactionId": st.evses[1].tx.transaction_id,
                      "chargingSchedule": [{"id": 2, "chargingRateUnit": "A", "chargingSchedulePeriod": [
                          {"startPeriod": 0, "limit": 8.0}]}]}
        assert (await send(server, sid, "SetChargingProfile",
                           {"evseId": 1, "chargingProfile": tx_profile}))["status"] == "Accepted"
        assert st.limit_a(1) == pytest.approx(8)  # a TxProfile beats the default
        res = await send(server, sid, "GetCompositeSchedule", {"duration": 600, "evseId": 1,
                                                               "chargingRateUnit": "A"})
        assert res["schedule"]["chargingSchedulePeriod"][0]["limit"] == pytest.approx(8)
        assert (await send(server, sid, "ClearChargingProfile",
                           {"chargingProfileCriteria": {"chargingProfilePurpose": "TxProfile"}}))["status"] == \
            "Accepted"
        assert st.limit_a(1) == pytest.approx(10)

        # triggers, firmware, logs
        for what in ("StatusNotification", "Heartbeat", "MeterValues", "TransactionEvent", "BootNotification",
                     "FirmwareStatusNotification", "LogStatusNotification"):
            assert (await send(server, sid, "TriggerMessage",
                               {"requestedMessage": what, "evse": {"id": 1}}))["status"] == "Accepted"
        assert (await send(server, sid, "TriggerMessage",
                           {"requestedMessage": "SignV2GCertificate"}))["status"] == "NotImplemented"
        await st.settle()
        res = await send(server, sid, "UpdateFirmware", {"requestId": 3, "firmware": {
            "location": "https://example.com/fw-3.bin", "retrieveDateTime": ocpp_ts()}})
        assert res["status"] == "Accepted"
        res = await send(server, sid, "GetLog", {"logType": "SecurityLog", "requestId": 4,
                                                 "log": {"remoteLocation": "ftp://example.com/logs"}})
        assert res["status"] == "Accepted" and res["filename"]
        await st.settle()
        assert st.firmware_status == "Installed" and st.log_status == "Uploaded"

        # reservations, connectors, availability, reset, misc
        reserve = {"id": 9, "expiryDateTime": _soon(), "idToken": {"idToken": token, "type": "ISO14443"},
                   "evseId": 2}
        assert (await send(server, sid, "ReserveNow", reserve))["status"] == "Accepted"
        assert (await send(server, sid, "CancelReservation", {"reservationId": 9}))["status"] == "Accepted"
        assert (await send(server, sid, "UnlockConnector", {"evseId": 2, "connectorId": 1}))["status"] == \
            "Unlocked"
        assert (await send(server, sid, "UnlockConnector", {"evseId": 1, "connectorId": 1}))["status"] == \
            "OngoingAuthorizedTransaction"
        assert (await send(server, sid, "UnlockConnector", {"evseId": 7, "connectorId": 1}))["status"] == \
            "UnknownConnector"
        assert (await send(server, sid, "ChangeAvailability",
                           {"operationalStatus": "Inoperative", "evse": {"id": 2}}))["status"] == "Accepted"
        await st.settle()
        assert st.evses[2].status == "Unavailable"
        assert (await send(server, sid, "ChangeAvailability",
                           {"operationalStatus": "Operative", "evse": {"id": 2}}))["status"] == "Accepted"
        assert (await send(server, sid, "ClearCache", {}))["status"] == "Accepted"
        assert (await send(server, sid, "DataTransfer", {"vendorId": "com.example"}))["status"] == "Accepted"
        assert await send_error(server, sid, "GetReport", {"requestId": 2}) == "NotSupported"
        assert (await send(server, sid, "Reset", {"type": "OnIdle"}))["status"] == "Scheduled"
        boots = st.calls_sent
        await st.stop_session(1)
        await st.settle()
        assert st.registration == "Accepted" and st.calls_sent > boots + 2  # Ended, status, then a new boot
        assert st.errors == 0, list(st.events)
    finally:
        await st.close()


async def test_closed_loop_bench(server):
    for i in range(1, 6):
        await make_token(server, f"BENCH{i:05d}")
    result = await closed_loop(ocpp_base(server), stations=5, duration=2.0, warmup=0.3, version="mixed")
    assert result["stations_up"] == 5
    assert result["calls"] > 0
    assert result["errors"] == 0
    assert set(result["per_action"]) == {"MeterValues"}


async def test_mix_bench(server):
    for i in range(1, 5):
        await make_token(server, f"BENCH{i:05d}")
    result = await closed_loop(ocpp_base(server), stations=4, duration=2.0, warmup=0.3, version="mixed", mix=True)
    assert result["calls"] > 0
    assert result["errors"] == 0


def test_reconnect_backoff_draws_like_an_ocpp_201_station():
    """RetryBackOffWaitMinimum plus 0..RetryBackOffRandomRange, doubling per failed attempt up to
    RetryBackOffRepeatTimes and the maximum; a successful reconnection starts over."""
    b = Backoff(1.0, 4.0, repeat=2, maximum=10.0, rnd=random.Random(7))
    assert b.interval == 5.0
    delays = [b.next() for _ in range(5)]
    assert 1.0 <= delays[0] <= 5.0 and 2.0 <= delays[1] <= 6.0
    assert all(4.0 <= d <= 8.0 for d in delays[2:])  # doubled twice at most
    assert len({round(d, 6) for d in delays}) == 5  # jittered
    b.reset()
    assert 1.0 <= b.next() <= 5.0
    assert Backoff(20.0, 5.0, maximum=10.0).next() == 10.0


@pytest.mark.parametrize("version", VERSIONS)
async def test_station_reconnects_and_boots_after_the_server_comes_back(tmp_path, version):
    """The CSMS is killed (SIGKILL) under a station with a session open and started again on the
    same port after a while: the station retries with its back-off (the first attempts are
    refused), connects, boots and reports its connectors again, and its session goes on."""
    srv = ServerProcess(tmp_path / "srv", free_port())
    await srv.start()
    sid = f"RECON{version.replace('.', '')}"
    events: list[str] = []
    st = SimStation(sid, srv.ws_url(sid), version, check_frames=True, heartbeat=False,
                    on_event=lambda _st, text: events.append(text))
    try:
        await st.connect()
        assert await st.boot() == "Accepted"
        await st.announce()
        tx = await st.start_session(1, "RECONTOKEN", authorize=False)
        srv.kill()
        await asyncio.wait_for(st.wait_closed(), 10)
        assert not st.connected
        boots = sum(1 for e in events if e.startswith("boot Accepted"))
        backoff = Backoff(0.2, 0.2, rnd=random.Random(1))
        back = asyncio.ensure_future(st.reconnect(backoff, open_timeout=5, boot_timeout=30))
        await asyncio.sleep(1.0)  # a few refused attempts while the server is down
        assert not back.done()
        await srv.start()
        assert await asyncio.wait_for(back, 60) is True
        assert st.connected and st.registration == "Accepted"
        assert sum(1 for e in events if e.startswith("boot Accepted")) == boots + 1
        assert sum(1 for e in events if e.startswith("reconnection failed")) >= 2
        assert backoff.attempts == 0  # reset once back
        await st.meter_values(1, advance_s=60)  # the session outlived the outage
        assert st.evses[1].tx is tx
        done = await st.stop_session(1)
        assert done.stop_reason
    finally:
        await st.close()
        srv.stop()
