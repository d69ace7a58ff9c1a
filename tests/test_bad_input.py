"""Bad input gets the spec's answer; the connection, the process and stored data survive."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.stations import basic_auth, connect

BOOT16 = {"chargePointVendor": "Acme", "chargePointModel": "M"}
BOOT201 = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "Acme"}}


async def rpc(ws, frame) -> list:
    await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


@pytest.mark.parametrize("version,boot,codes", [
    ("ocpp1.6", BOOT16, {"format": "FormationViolation", "occurrence": "OccurenceConstraintViolation",
                         "rpc": "FormationViolation", "type_id": "ProtocolError"}),
    ("ocpp2.0.1", BOOT201, {"format": "FormatViolation", "occurrence": "OccurrenceConstraintViolation",
                            "rpc": "RpcFrameworkError", "type_id": "MessageTypeNotSupported"}),
    ("ocpp2.1", BOOT201, {"format": "FormatViolation", "occurrence": "OccurrenceConstraintViolation",
                          "rpc": "RpcFrameworkError", "type_id": "MessageTypeNotSupported"}),
])
async def test_malformed_frames_get_callerrors_and_connection_survives(server, version, boot, codes):
    async with websockets.connect(server.ws_url("BAD1"), subprotocols=[version]) as ws:
        assert (await rpc(ws, [2, "b1", "BootNotification", boot]))[2]["status"] == "Accepted"
        r = await rpc(ws, "{not json")
        assert r[:3] == [4, "-1", codes["rpc"]]
        r = await rpc(ws, [2, "x1", "Heartbeat"])  # CALL with 3 elements
        assert r[:3] == [4, "x1", codes["rpc"]]
        r = await rpc(ws, [7, "x2", "Heartbeat", {}])
        assert r[:3] == [4, "x2", codes["type_id"]]
        r = await rpc(ws, [2, "x3", "NoSuchAction", {}])
        assert r[:3] == [4, "x3", "NotImplemented"]
        r = await rpc(ws, [2, "x4", "Reset", {"type": "Hard"}])  # a CSMS->station action
        assert r[:3] == [4, "x4", "NotSupported"]
        r = await rpc(ws, [2, "x5", "Heartbeat", {"extra": 1}])
        assert r[:3] == [4, "x5", codes["format"]]
        r = await rpc(ws, [2, "x6", "BootNotification", {}])
        assert r[:3] == [4, "x6", codes["occurrence"]]
        r = await rpc(ws, [2, "x7", "Heartbeat", []])
        assert r[:3] == [4, "x7", codes["format"]]
        r = await rpc(ws, [2, "x8", "Heartbeat", {}])
        assert r[0] == 3 and r[1] == "x8" and r[2]["currentTime"].endswith("Z")


async def test_schema_violations_by_kind(server):
    async with websockets.connect(server.ws_url("BAD2"), subprotocols=["ocpp2.0.1"]) as ws:
        await rpc(ws, [2, "b", "BootNotification", BOOT201])
        r = await rpc(ws, [2, "t", "StatusNotification", {"timestamp": "2026-01-01T00:00:00Z",
                                                          "connectorStatus": "Available", "evseId": "one",
                                                          "connectorId": 1}])
        assert r[2] == "TypeConstraintViolation"
        r = await rpc(ws, [2, "p", "StatusNotification", {"timestamp": "2026-01-01T00:00:00Z",
                                                          "connectorStatus": "Sleeping", "evseId": 1,
                                                          "connectorId": 1}])
        assert r[2] == "PropertyConstraintViolation"
        r = await rpc(ws, [2, "l", "BootNotification", {"reason": "PowerUp", "chargingStation": {
            "model": "M" * 21, "vendorName": "Acme"}}])
        assert r[2] == "PropertyConstraintViolation"
        # an integer too large for a float (found by test_fuzz_frames): a type error, not an InternalError
        huge = "1" + "0" * 400
        r = await rpc(ws, json.dumps([2, "h", "NotifyEvent", {
            "generatedAt": "2026-01-01T00:00:00Z", "seqNo": 0, "eventData": [
                {"eventId": 0, "timestamp": "2026-01-01T00:00:00Z", "trigger": "Delta", "actualValue": "",
                 "eventNotificationType": "CustomMonitor", "component": {"name": "EVSE", "evse": {"id": "HUGE"}},
                 "variable": {"name": "Power"}}]}]).replace('"HUGE"', huge))
        assert r[2] == "TypeConstraintViolation", r


async def test_oversized_frame_closes_with_1009_and_is_not_stored(tmp_path):
    from csms.core.tables import MessageLog
    from csms.testing import running_server

    async with running_server(tmp_path, unknown_stations="accept", max_frame_bytes=2048) as srv:
        async with websockets.connect(srv.ws_url("BIG"), subprotocols=["ocpp2.0.1"], max_size=None) as ws:
            await rpc(ws, [2, "b", "BootNotification", BOOT201])
            await ws.send(json.dumps([2, "big", "DataTransfer", {"vendorId": "x", "data": "A" * 5000}]))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd.code == 1009
        async with websockets.connect(srv.ws_url("BIG"), subprotocols=["ocpp2.0.1"]) as ws:
            assert (await rpc(ws, [2, "hb", "Heartbeat", {}]))[0] == 3
        await srv.core.writer.flush()
        assert not await MessageLog.exists().where(MessageLog.unique_id == "big")


async def test_handshake_refusals(tmp_path):
    from csms.testing import running_server

    async with running_server(tmp_path, unknown_stations="reject") as srv:
        # no supported subprotocol
        with pytest.raises(InvalidStatus):
            async with websockets.connect(srv.ws_url("X"), subprotocols=["ocpp1.5"]):
                pass
        # unknown station under the reject policy
        with pytest.raises(InvalidStatus):
            async with websockets.connect(srv.ws_url("UNKNOWN"), subprotocols=["ocpp1.6"]):
                pass
        r = await srv.api.post("/stations/", json={"station_id": "KNOWN", "password": "p" * 20})
        assert r.status_code == 201, r.text
        # wrong password, and credentials for another station id
        for headers in (basic_auth("KNOWN", "wrong-password-123"), basic_auth("OTHER", "p" * 20), None):
            with pytest.raises(InvalidStatus):
                async with websockets.connect(srv.ws_url("KNOWN"), subprotocols=["ocpp2.0.1"],
                                              additional_headers=headers):
                    pass
        # the right password; 2.0.1 preferred over 1.6, 2.1 over both
        async with websockets.connect(srv.ws_url("KNOWN"), subprotocols=["ocpp1.6", "ocpp2.0.1"],
                                      additional_headers=basic_auth("KNOWN", "p" * 20)) as ws:
            assert ws.subprotocol == "ocpp2.0.1"
            assert (await rpc(ws, [2, "b", "BootNotification", BOOT201]))[2]["status"] == "Accepted"
        async with websockets.connect(srv.ws_url("KNOWN"), subprotocols=["ocpp1.6", "ocpp2.1", "ocpp2.0.1"],
                                      additional_headers=basic_auth("KNOWN", "p" * 20)) as ws:
            assert ws.subprotocol == "ocpp2.1"
            assert (await rpc(ws, [2, "b", "BootNotification", BOOT201]))[2]["status"] == "Accepted"
        log = (await srv.api.get("/stations/", params={"q": "UNKNOWN"})).json()
        assert log["total"] == 0


async def test_pending_station_until_approved(tmp_path):
    from csms.testing import running_server

    async with running_server(tmp_path, unknown_stations="pending") as srv:
        async with websockets.connect(srv.ws_url("NEW1"), subprotocols=["ocpp2.0.1"]) as ws:
            r = await rpc(ws, [2, "b1", "BootNotification", BOOT201])
            assert r[2]["status"] == "Pending"
            r = await rpc(ws, [2, "h1", "Heartbeat", {}])
            assert r[:3] == [4, "h1", "SecurityError"]
            assert (await srv.api.post("/stations/NEW1/approve")).status_code == 201
            # approved while connected: asked to boot again now, not at the end of its interval
            call = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert call[0] == 2 and call[2:] == ["TriggerMessage", {"requestedMessage": "BootNotification"}], call
            await ws.send(json.dumps([3, call[1], {"status": "Accepted"}]))
            r = await rpc(ws, [2, "b2", "BootNotification", BOOT201])
            assert r[2]["status"] == "Accepted"
            assert (await rpc(ws, [2, "h2", "Heartbeat", {}]))[0] == 3
            assert (await srv.api.post("/stations/NEW1/approve")).status_code == 201  # already accepted
            assert (await rpc(ws, [2, "h3", "Heartbeat", {}]))[1] == "h3"  # no second trigger came first
        async with websockets.connect(srv.ws_url("NEW2"), subprotocols=["ocpp1.6"]) as ws:
            assert (await rpc(ws, [2, "b1", "BootNotification", BOOT16]))[2]["status"] == "Pending"
            await srv.api.post("/stations/NEW2/reject")
            assert (await rpc(ws, [2, "b2", "BootNotification", BOOT16]))[2]["status"] == "Rejected"
            assert (await rpc(ws, [2, "s", "StatusNotification", {
                "connectorId": 1, "errorCode": "NoError", "status": "Available"}]))[2] == "SecurityError"
            await srv.api.patch("/stations/NEW2", json={"registration_status": "Accepted"})
            call = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert call[2:] == ["TriggerMessage", {"requestedMessage": "BootNotification"}], call
            await ws.send(json.dumps([3, call[1], {"status": "Accepted"}]))
            assert (await rpc(ws, [2, "b3", "BootNotification", BOOT16]))[2]["status"] == "Accepted"


async def test_reconnect_replaces_old_socket_and_other_stations_unaffected(server):
    async with websockets.connect(server.ws_url("DUP"), subprotocols=["ocpp1.6"]) as first, \
            websockets.connect(server.ws_url("CALM"), subprotocols=["ocpp1.6"]) as calm:
        await rpc(first, [2, "a", "BootNotification", BOOT16])
        await rpc(calm, [2, "a", "BootNotification", BOOT16])
        async with websockets.connect(server.ws_url("DUP"), subprotocols=["ocpp1.6"]) as second:
            await rpc(second, [2, "b", "BootNotification", BOOT16])
            await asyncio.wait_for(first.wait_closed(), 5)
            assert first.close_code == 4000
            assert (await rpc(second, [2, "c", "Heartbeat", {}]))[0] == 3
            assert (await rpc(calm, [2, "c", "Heartbeat", {}]))[0] == 3
            detail = (await server.api.get("/stations/DUP")).json()
            assert detail["connected"] is True


async def test_dead_socket_evicted_by_ping(tmp_path):
    from csms.testing import running_server

    async with running_server(tmp_path, unknown_stations="accept", ping_interval=0.2, ping_timeout=0.3) as srv:
        # a client that never answers pings (the websockets client answers automatically unless paused)
        ws = await websockets.connect(srv.ws_url("SILENT"), subprotocols=["ocpp1.6"], ping_interval=None)
        await rpc(ws, [2, "a", "BootNotification", BOOT16])
        ws.transport.pause_reading()  # stop reading: no pong goes back
        for _ in range(300):  # the server waits for its close handshake before dropping the socket
            await asyncio.sleep(0.1)
            if "SILENT" not in srv.core.connections:
                break
        assert "SILENT" not in srv.core.connections
        ws.transport.abort()


async def test_session_survives_server_restart(tmp_path):
    from csms.testing import running_server
    from ocpp.v201 import call

    async with running_server(tmp_path, unknown_stations="accept") as srv:
        async with connect(srv.ws_url("RS"), "RS") as cp:
            await cp.call(call.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"))
            await cp.call(call.TransactionEvent(
                event_type="Started", timestamp="2026-01-05T10:00:00Z", trigger_reason="CablePluggedIn", seq_no=0,
                transaction_info={"transaction_id": "keep"}, evse={"id": 1, "connector_id": 1},
                meter_value=[{"timestamp": "2026-01-05T10:00:00Z", "sampled_value": [{"value": 100.0}]}]))
    async with running_server(tmp_path, unknown_stations="accept") as srv:  # same data directory
        assert ("RS", "keep") in srv.core.sessions.active
        async with connect(srv.ws_url("RS"), "RS") as cp:
            await cp.call(call.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"))
            await cp.call(call.TransactionEvent(
                event_type="Ended", timestamp="2026-01-05T11:00:00Z", trigger_reason="EVDeparted", seq_no=1,
                transaction_info={"transaction_id": "keep", "stopped_reason": "EVDisconnected"},
                meter_value=[{"timestamp": "2026-01-05T11:00:00Z", "sampled_value": [{"value": 2100.0}]}]))
        s = (await srv.api.get("/sessions", params={"station": "RS"})).json()["items"]
        assert len(s) == 1 and s[0]["state"] == "completed" and s[0]["energy_wh"] == 2000.0


async def test_frame_log_written_and_pruned_after_retention(server):
    from datetime import timedelta

    from csms.core.tables import MessageLog
    from csms.core.timeutil import utcnow

    async with websockets.connect(server.ws_url("LOG1"), subprotocols=["ocpp1.6"]) as ws:
        await rpc(ws, [2, "a", "BootNotification", BOOT16])
        await rpc(ws, [2, "b", "Heartbeat", {}])
    await server.core.writer.flush()
    frames = (await server.api.get("/stations/LOG1/messages", params={"action": "Heartbeat"})).json()
    assert [(f["direction"], f["message_type"]) for f in frames["items"]] == [("out", 3), ("in", 2)]
    assert json.loads(frames["items"][1]["payload"]) == [2, "b", "Heartbeat", {}]
    old = utcnow() - timedelta(days=server.core.settings.message_log_retention_days + 1)
    await MessageLog.update({MessageLog.created_at: old}).where(MessageLog.action == "BootNotification")
    removed = await server.core.retention.prune()
    assert removed["message_log"] == 2
    left = (await server.api.get("/stations/LOG1/messages")).json()
    assert {f["action"] for f in left["items"]} == {"Heartbeat"}


@pytest.mark.parametrize("allowed", [False, True])
async def test_compression_only_when_allowed(tmp_path, allowed):
    """A station offering permessage-deflate talks uncompressed unless ``ws_compression`` is on
    (zlib state per connection and CPU per frame); either way it is served the same."""
    from csms.testing import running_server

    async with running_server(tmp_path, unknown_stations="accept", ws_compression=allowed) as srv:
        async with websockets.connect(srv.ws_url("ZIP"), subprotocols=["ocpp2.0.1"], compression="deflate") as ws:
            agreed = ws.response.headers.get("sec-websocket-extensions", "")
            assert ("permessage-deflate" in agreed) is allowed
            assert (await rpc(ws, [2, "b", "BootNotification", BOOT201]))[0] == 3
            assert (await rpc(ws, [2, "hb", "Heartbeat", {}]))[0] == 3
