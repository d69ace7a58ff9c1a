"""OCPP 2.0.1 over a real WebSocket, the station being the ``ocpp`` library's ChargePoint."""

from __future__ import annotations

import asyncio

from ocpp.v201 import call

from tests.stations import connect

TS = "2026-01-05T10:00:00.000Z"


def energy(value_wh: float, ts: str = TS, context: str = "Sample.Periodic") -> dict:
    return {"timestamp": ts, "sampled_value": [
        {"value": value_wh, "measurand": "Energy.Active.Import.Register", "context": context,
         "unit_of_measure": {"unit": "Wh"}},
        {"value": 7200.0, "measurand": "Power.Active.Import", "context": context},
        {"value": 10.5, "measurand": "Current.Import", "phase": "L1", "context": context},
    ]}


async def boot(cp) -> None:
    r = await cp.call(call.BootNotification(charging_station={"model": "Wallbox", "vendor_name": "Acme",
                                                              "firmware_version": "1.2.3"}, reason="PowerUp"))
    assert r.status == "Accepted"
    assert r.current_time.endswith("Z") and len(r.current_time) == 24


async def test_boot_status_heartbeat_stored(any_server):
    srv = any_server
    async with connect(srv.ws_url("CS201"), "CS201") as cp:
        await boot(cp)
        await cp.call(call.StatusNotification(timestamp=TS, connector_status="Available", evse_id=1, connector_id=1))
        await cp.call(call.StatusNotification(timestamp=TS, connector_status="Faulted", evse_id=2, connector_id=1))
        hb = await cp.call(call.Heartbeat())
        assert hb.current_time.endswith("Z")
        detail = (await srv.api.get("/stations/CS201")).json()
    assert detail["vendor"] == "Acme" and detail["firmware_version"] == "1.2.3"
    assert detail["ocpp_version"] == "2.0.1" and detail["boot_reason"] == "PowerUp"
    assert {e["evse_id"]: e["status"] for e in detail["evses"]} == {1: "Available", 2: "Faulted"}
    assert detail["last_heartbeat_at"] is not None
    events = (await srv.api.get("/stations/CS201/events", params={"category": "fault"})).json()["items"]
    assert events and events[0]["kind"] == "Faulted"
    await asyncio.sleep(0.2)
    detail = (await srv.api.get("/stations/CS201")).json()
    assert detail["connected"] is False


async def test_transaction_lifecycle_and_exactly_once(any_server):
    srv = any_server
    await srv.api.post("/tokens", json={"id_token": "CARD-1", "type": "ISO14443"})
    async with connect(srv.ws_url("CS2"), "CS2") as cp:
        await boot(cp)
        auth = await cp.call(call.Authorize(id_token={"id_token": "CARD-1", "type": "ISO14443"}))
        assert auth.id_token_info["status"] == "Accepted"
        unknown = await cp.call(call.Authorize(id_token={"id_token": "NOPE", "type": "ISO14443"}))
        assert unknown.id_token_info["status"] == "Unknown"
        started = call.TransactionEvent(
            event_type="Started", timestamp=TS, trigger_reason="Authorized", seq_no=0,
            transaction_info={"transaction_id": "tx-1", "charging_state": "Charging"},
            id_token={"id_token": "CARD-1", "type": "ISO14443"}, evse={"id": 1, "connector_id": 1},
            meter_value=[energy(1000.0, context="Transaction.Begin")],
        )
        r = await cp.call(started)
        assert r.id_token_info["status"] == "Accepted"
        await cp.call(started)  # delivered twice: stored once
        for seq, wh in ((1, 1500.0), (2, 2500.0)):
            await cp.call(call.TransactionEvent(
                event_type="Updated", timestamp=TS, trigger_reason="MeterValuePeriodic", seq_no=seq,
                transaction_info={"transaction_id": "tx-1"}, meter_value=[energy(wh)]))
        live = (await srv.api.get("/sessions", params={"station": "CS2"})).json()["items"]
        assert len(live) == 1 and live[0]["state"] == "active"
        detail = (await srv.api.get(f"/sessions/{live[0]['id']}")).json()
        assert detail["energy_wh"] == 1500.0 and detail["power_w"] == 7200.0
        ended = call.TransactionEvent(
            event_type="Ended", timestamp="2026-01-05T11:00:00.000Z", trigger_reason="StopAuthorized", seq_no=3,
            transaction_info={"transaction_id": "tx-1", "stopped_reason": "Local"},
            meter_value=[energy(4000.0, ts="2026-01-05T11:00:00.000Z", context="Transaction.End")])
        await cp.call(ended)
        await cp.call(ended)  # replayed after a reconnect: no change
    sessions = (await srv.api.get("/sessions", params={"station": "CS2"})).json()["items"]
    assert len(sessions) == 1
    s = sessions[0]
    assert s["state"] == "completed" and s["energy_wh"] == 3000.0 and s["stop_reason"] == "Local"
    assert s["meter_start_wh"] == 1000.0 and s["meter_stop_wh"] == 4000.0
    mv = (await srv.api.get(f"/sessions/{s['id']}/meter-values")).json()["items"]
    energy_rows = [m for m in mv if m["measurand"] == "Energy.Active.Import.Register"]
    assert [m["value"] for m in energy_rows] == [1000.0, 1500.0, 2500.0, 4000.0]
    assert {m["phase"] for m in mv} == {"", "L1"}


async def test_offline_transaction_replayed(server):
    """A transaction the station ran while offline arrives later as a burst and is stored once."""
    await server.api.post("/tokens", json={"id_token": "CARD-2"})
    async with connect(server.ws_url("OFF1"), "OFF1") as cp:
        await boot(cp)
        for seq, (etype, wh) in enumerate((("Started", 0.0), ("Updated", 500.0), ("Ended", 900.0))):
            info = {"transaction_id": "offline-tx"}
            if etype == "Ended":
                info["stopped_reason"] = "EVDisconnected"
            await cp.call(call.TransactionEvent(
                event_type=etype, timestamp=TS, trigger_reason="EVDetected", seq_no=seq, offline=True,
                transaction_info=info, evse={"id": 1, "connector_id": 1},
                id_token={"id_token": "CARD-2", "type": "ISO14443"} if etype == "Started" else None,
                meter_value=[energy(wh)]))
    s = (await server.api.get("/sessions", params={"station": "OFF1"})).json()["items"]
    assert len(s) == 1 and s[0]["energy_wh"] == 900.0 and "replayed_offline" in s[0]["flags"]


async def test_all_other_station_messages_answered(server):
    async with connect(server.ws_url("MSGS"), "MSGS") as cp:
        await boot(cp)
        await cp.call(call.NotifyReport(request_id=1, generated_at=TS, seq_no=0, report_data=[
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"},
             "variable_attribute": [{"type": "Actual", "value": "300", "mutability": "ReadWrite"}],
             "variable_characteristics": {"data_type": "integer", "supports_monitoring": False}}]))
        await cp.call(call.NotifyEvent(generated_at=TS, seq_no=0, event_data=[
            {"event_id": 1, "timestamp": TS, "trigger": "Delta", "actual_value": "Faulted",
             "event_notification_type": "HardWiredNotification", "component": {"name": "Connector"},
             "variable": {"name": "AvailabilityState"}}]))
        await cp.call(call.NotifyMonitoringReport(request_id=2, seq_no=0, generated_at=TS))
        await cp.call(call.FirmwareStatusNotification(status="Downloading", request_id=5))
        await cp.call(call.PublishFirmwareStatusNotification(status="Published"))
        await cp.call(call.LogStatusNotification(status="Uploaded", request_id=6))
        await cp.call(call.SecurityEventNotification(type="FirmwareUpdated", timestamp=TS))
        r = await cp.call(call.SignCertificate(csr="-----BEGIN CERTIFICATE REQUEST-----x"))
        assert r.status in ("Accepted", "Rejected")
        r = await cp.call(call.Get15118EVCertificate(iso15118_schema_version="urn:iso:15118:2:2013:MsgDef",
                                                     action="Install", exi_request="AAAA"))
        assert r.status == "Failed"
        r = await cp.call(call.GetCertificateStatus(ocsp_request_data={
            "hash_algorithm": "SHA256", "issuer_name_hash": "a", "issuer_key_hash": "b", "serial_number": "c",
            "responder_url": "http://ocsp.invalid"}))
        assert r.status == "Failed"
        await cp.call(call.ReservationStatusUpdate(reservation_id=9, reservation_update_status="Expired"))
        await cp.call(call.NotifyChargingLimit(charging_limit={"charging_limit_source": "EMS"}, evse_id=1))
        await cp.call(call.ClearedChargingLimit(charging_limit_source="EMS", evse_id=1))
        r = await cp.call(call.NotifyEVChargingNeeds(evse_id=1, charging_needs={"requested_energy_transfer": "AC_three_phase"}))
        assert r.status in ("Accepted", "Rejected", "Processing")
        r = await cp.call(call.NotifyEVChargingSchedule(time_base=TS, evse_id=1, charging_schedule={
            "id": 1, "charging_rate_unit": "A", "charging_schedule_period": [{"start_period": 0, "limit": 16.0}]}))
        assert r.status == "Accepted"
        await cp.call(call.ReportChargingProfiles(request_id=3, charging_limit_source="CSO", evse_id=1,
                                                  charging_profile=[{
                                                      "id": 7, "stack_level": 0,
                                                      "charging_profile_purpose": "TxDefaultProfile",
                                                      "charging_profile_kind": "Absolute",
                                                      "charging_schedule": [{"id": 1, "charging_rate_unit": "A",
                                                                             "charging_schedule_period": [
                                                                                 {"start_period": 0, "limit": 16.0}]}]}]))
        await cp.call(call.NotifyCustomerInformation(data="none", seq_no=0, generated_at=TS, request_id=4))
        await cp.call(call.NotifyDisplayMessages(request_id=8))
        r = await cp.call(call.DataTransfer(vendor_id="com.acme", message_id="hello", data="x"))
        assert r.status == "UnknownVendorId"
        await cp.call(call.MeterValues(evse_id=0, meter_value=[energy(123.0)]))
    cfg = (await server.api.get("/stations/MSGS/configuration")).json()
    assert [v["variable"] for v in cfg["variables"]] == ["HeartbeatInterval"]
    assert cfg["variables"][0]["value"] == "300"
    cats = {e["category"] for e in (await server.api.get("/stations/MSGS/events", params={"limit": 200})).json()["items"]}
    assert {"report", "event", "monitoring", "firmware", "firmware_publish", "log", "security", "certificate",
            "reservation", "charging_limit", "ev_charging_needs", "ev_charging_schedule", "charging_profiles",
            "customer_information", "display_messages", "data_transfer"} <= cats
    detail = (await server.api.get("/stations/MSGS")).json()
    assert detail["firmware_status"] == "Downloading" and detail["log_status"] == "Uploaded"


async def test_commands_through_rest(server):
    async with connect(server.ws_url("CMD201"), "CMD201") as cp:
        await boot(cp)
        r = await server.api.post("/stations/CMD201/reset", json={"kind": "hard"})
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "Accepted"
        r = await server.api.post("/stations/CMD201/remote-start", json={"id_token": "APP-1", "evse_id": 1})
        assert r.json()["status"] == "Accepted" and cp.remote_started["id_token"] == "APP-1"
        r = await server.api.put("/stations/CMD201/configuration",
                                 json={"key": "OCPPCommCtrlr.HeartbeatInterval", "value": "60"})
        assert r.json()["status"] == "Accepted"
        r = await server.api.post("/stations/CMD201/configuration/refresh",
                                  json={"keys": ["SampledDataCtrlr.TxUpdatedInterval"]})
        assert r.status_code == 201, r.text
        cfg = (await server.api.get("/stations/CMD201/configuration")).json()["variables"]
        assert {(v["component"], v["variable"], v["value"]) for v in cfg} == {
            ("OCPPCommCtrlr", "HeartbeatInterval", "60"), ("SampledDataCtrlr", "TxUpdatedInterval", "60")}
        # the station has no handler for ClearCache: the library answers a CALLERROR
        r = await server.api.post("/stations/CMD201/ocpp/ClearCache", json={})
        assert r.status_code == 502 and r.json()["extra"]["error"] == "NotImplemented"
        # our own payload is checked before anything is sent
        r = await server.api.post("/stations/CMD201/ocpp/Reset", json={"type": "Sometimes"})
        assert r.status_code == 400 and "PropertyConstraintViolation" in r.json()["detail"]
        r = await server.api.post("/stations/CMD201/ocpp/NoSuchAction", json={})
        assert r.status_code == 400
        history = (await server.api.get("/stations/CMD201/commands")).json()["items"]
        assert history[0]["action"] == "Reset" and history[0]["status"] == "invalid"
        assert history[1]["status"] == "error" and history[1]["error_code"] == "NotImplemented"
    r = await server.api.post("/stations/CMD201/reset", json={"kind": "soft"})
    assert r.status_code == 409 and "offline" in r.json()["detail"]


async def test_stop_with_a_master_pass(server):
    """C16: the operator sets AuthCtrlr.MasterPassGroupId through the configuration endpoint and
    gives the master pass cards that group; Authorize answers such a card with its groupIdToken
    (what the station compares with MasterPassGroupId), and the transactions the station then
    stops end with stoppedReason MasterPass."""
    api = server.api
    assert (await api.post("/tokens", json={"id_token": "DRIVER-C16", "type": "ISO14443"})).status_code == 201
    assert (await api.post("/tokens", json={"id_token": "MASTER-C16", "type": "ISO14443",
                                            "group_id": "MASTERPASS"})).status_code == 201
    async with connect(server.ws_url("C16"), "C16") as cp:
        await boot(cp)
        r = await api.put("/stations/C16/configuration", json={"key": "AuthCtrlr.MasterPassGroupId",
                                                               "value": "MASTERPASS"})
        assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text
        cfg = (await api.get("/stations/C16/configuration")).json()["variables"]
        assert ("AuthCtrlr", "MasterPassGroupId", "MASTERPASS") in {
            (v["component"], v["variable"], v["value"]) for v in cfg}
        started = await cp.call(call.TransactionEvent(
            event_type="Started", timestamp=TS, trigger_reason="Authorized", seq_no=0,
            transaction_info={"transaction_id": "c16", "charging_state": "Charging"},
            id_token={"id_token": "DRIVER-C16", "type": "ISO14443"}, evse={"id": 1, "connector_id": 1},
            meter_value=[energy(100.0, context="Transaction.Begin")]))
        assert started.id_token_info["status"] == "Accepted"
        master = await cp.call(call.Authorize(id_token={"id_token": "MASTER-C16", "type": "ISO14443"}))
        assert master.id_token_info["status"] == "Accepted"
        assert master.id_token_info["group_id_token"] == {"id_token": "MASTERPASS", "type": "Central"}
        driver = await cp.call(call.Authorize(id_token={"id_token": "DRIVER-C16", "type": "ISO14443"}))
        assert "group_id_token" not in driver.id_token_info
        await cp.call(call.TransactionEvent(
            event_type="Ended", timestamp=TS, trigger_reason="StopAuthorized", seq_no=1,
            transaction_info={"transaction_id": "c16", "stopped_reason": "MasterPass"},
            id_token={"id_token": "MASTER-C16", "type": "ISO14443"},
            meter_value=[energy(900.0, context="Transaction.End")]))
    session = (await api.get("/sessions", params={"station": "C16"})).json()["items"][0]
    assert session["state"] == "completed" and session["stop_reason"] == "MasterPass"
    assert session["id_token"] == "DRIVER-C16"  # the driver's session, stopped by the master pass
