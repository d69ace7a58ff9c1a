"""OCPP 1.6J over a real WebSocket, the station being the ``ocpp`` library's ChargePoint."""

from __future__ import annotations

from ocpp.v16 import call

from tests.stations import connect

TS = "2026-01-05T10:00:00.000Z"


async def boot(cp) -> None:
    r = await cp.call(call.BootNotification(charge_point_vendor="Acme", charge_point_model="AC22",
                                            firmware_version="4.5", charge_point_serial_number="SN1"))
    assert r.status == "Accepted" and r.interval > 0 and r.current_time.endswith("Z")


def sample(wh: str, ts: str = TS) -> dict:
    return {"timestamp": ts, "sampled_value": [
        {"value": wh, "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        {"value": "11.0", "measurand": "Power.Active.Import", "unit": "kW"},
        {"value": "16.0", "measurand": "Current.Import", "phase": "L2", "unit": "A"},
    ]}


async def test_core_profile_session(any_server):
    srv = any_server
    await srv.api.post("/tokens", json={"id_token": "TAG16", "group_id": "FLEET"})
    async with connect(srv.ws_url("CP16"), "CP16", "1.6") as cp:
        await boot(cp)
        await cp.call(call.StatusNotification(connector_id=0, error_code="NoError", status="Available"))
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))
        auth = await cp.call(call.Authorize(id_tag="TAG16"))
        assert auth.id_tag_info == {"status": "Accepted", "parent_id_tag": "FLEET"}
        assert (await cp.call(call.Authorize(id_tag="UNKNOWN"))).id_tag_info["status"] == "Invalid"
        start = call.StartTransaction(connector_id=1, id_tag="TAG16", meter_start=10000, timestamp=TS)
        r = await cp.call(start)
        tx = r.transaction_id
        assert isinstance(tx, int) and r.id_tag_info["status"] == "Accepted"
        # a replay of the same start (after a lost answer) gets the same transaction id
        assert (await cp.call(start)).transaction_id == tx
        await cp.call(call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[sample("12500")]))
        live = (await srv.api.get("/stations/CP16")).json()["active_sessions"]
        assert live[0]["energy_wh"] == 2500.0 and live[0]["power_w"] == 11000.0
        stop = call.StopTransaction(meter_stop=15000, timestamp="2026-01-05T11:00:00.000Z", transaction_id=tx,
                                    reason="EVDisconnected", id_tag="TAG16",
                                    transaction_data=[sample("14000", "2026-01-05T10:30:00.000Z")])
        r = await cp.call(stop)
        assert r.id_tag_info["status"] == "Accepted"
        await cp.call(stop)  # replayed stop: answered, nothing changes
        # a stop for a transaction we never saw is answered and recorded
        r = await cp.call(call.StopTransaction(meter_stop=500, timestamp=TS, transaction_id=999999))
        await cp.call(call.Heartbeat())
    sessions = (await srv.api.get("/sessions", params={"station": "CP16"})).json()["items"]
    by_tx = {s["transaction_id"]: s for s in sessions}
    s = by_tx[str(tx)]
    assert s["state"] == "completed" and s["energy_wh"] == 5000.0 and s["stop_reason"] == "EVDisconnected"
    assert by_tx["999999"]["flags"] == ["stop_without_start"]
    detail = (await srv.api.get("/stations/CP16")).json()
    assert detail["status"] == "Available" and detail["serial_number"] == "SN1"
    mv = (await srv.api.get(f"/sessions/{s['id']}/meter-values",
                            params={"measurand": "Energy.Active.Import.Register"})).json()["items"]
    assert [m["value"] for m in mv] == [12500.0, 14000.0]


async def test_firmware_security_and_other_messages(server):
    async with connect(server.ws_url("SEC16"), "SEC16", "1.6") as cp:
        await boot(cp)
        await cp.call(call.FirmwareStatusNotification(status="Downloading"))
        await cp.call(call.DiagnosticsStatusNotification(status="Uploaded"))
        await cp.call(call.SecurityEventNotification(type="StartupOfTheDevice", timestamp=TS, tech_info="boot"))
        await cp.call(call.LogStatusNotification(status="Uploading", request_id=3))
        await cp.call(call.SignedFirmwareStatusNotification(status="SignatureVerified", request_id=4))
        r = await cp.call(call.SignCertificate(csr="-----BEGIN CERTIFICATE REQUEST-----"))
        assert r.status == "Rejected"
        r = await cp.call(call.DataTransfer(vendor_id="com.acme", message_id="x", data="y"))
        assert r.status == "UnknownVendorId"
        await cp.call(call.StatusNotification(connector_id=2, error_code="GroundFailure", status="Faulted",
                                              info="RCD tripped", vendor_error_code="E42"))
    detail = (await server.api.get("/stations/SEC16")).json()
    assert detail["firmware_status"] == "SignatureVerified"
    assert detail["log_status"] == "Uploading"
    faults = (await server.api.get("/stations/SEC16/events", params={"category": "fault"})).json()["items"]
    assert faults[0]["kind"] == "Faulted" and faults[0]["details"]["error_code"] == "GroundFailure"
    cats = {e["category"] for e in (await server.api.get("/stations/SEC16/events")).json()["items"]}
    assert {"firmware", "diagnostics", "security", "log", "certificate", "data_transfer", "fault"} <= cats


async def test_commands_16(server):
    async with connect(server.ws_url("C16"), "C16", "1.6") as cp:
        await boot(cp)
        r = await server.api.post("/stations/C16/reset", json={"kind": "hard"})
        assert r.json() == {"status": "Accepted", "response": {"status": "Accepted"}}
        r = await server.api.post("/stations/C16/remote-start", json={"id_token": "APP", "evse_id": 1})
        assert r.json()["status"] == "Accepted" and cp.remote_started == "APP"
        r = await server.api.post("/stations/C16/configuration/refresh", json={})
        assert r.status_code == 201
        keys = (await server.api.get("/stations/C16/configuration")).json()["configuration_keys"]
        assert {(k["key"], k["value"], k["readonly"]) for k in keys} == {
            ("HeartbeatInterval", "300", False), ("NumberOfConnectors", "2", True)}
        r = await server.api.put("/stations/C16/configuration", json={"key": "HeartbeatInterval", "value": "120"})
        assert r.json()["status"] == "Accepted"
        keys = (await server.api.get("/stations/C16/configuration")).json()["configuration_keys"]
        assert ("HeartbeatInterval", "120") in {(k["key"], k["value"]) for k in keys}
        r = await server.api.post("/stations/C16/ocpp/GetLocalListVersion", json={})
        assert r.status_code == 502 and r.json()["extra"]["error"] == "NotImplemented"
