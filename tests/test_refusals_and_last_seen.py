"""What an operator needs to see (issue 15), in the core: refused authorizations are stored and
told, a BootNotification the CSMS asked for is marked as such, and "last seen" follows every frame
without a write per frame."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import websockets

from csms.core import events as ev
from csms.core.services.retention import REFUSALS_PER_STATION
from csms.core.tables import RefusedAuthorization, Station, StationEvent
from csms.core.timeutil import utcnow

BOOT16 = {"chargePointVendor": "Acme", "chargePointModel": "M"}
BOOT201 = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "Acme"}}


async def rpc(ws, frame) -> list:
    await ws.send(json.dumps(frame))
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


def collect(server) -> list[ev.Event]:
    seen: list[ev.Event] = []
    server.core.events.listen(seen.append)
    return seen


async def test_refused_tokens_are_stored_then_told_and_accepted_ones_are_not(server):
    told = collect(server)
    assert (await server.api.post("/tokens", json={"id_token": "GOOD-1"})).status_code == 201
    assert (await server.api.post("/tokens", json={"id_token": "BLOCKED-1", "status": "Blocked"})).status_code == 201
    async with websockets.connect(server.ws_url("RF1"), subprotocols=["ocpp1.6"]) as ws:
        await rpc(ws, [2, "b", "BootNotification", BOOT16])
        for uid, tag in (("1", "UNKNOWN-1"), ("2", "UNKNOWN-1"), ("3", "BLOCKED-1"), ("4", "GOOD-1")):
            answer = await rpc(ws, [2, uid, "Authorize", {"idTag": tag}])
            assert answer[2]["idTagInfo"]["status"] == {"GOOD-1": "Accepted", "BLOCKED-1": "Blocked"}.get(tag, "Invalid")
        # stored before the answer: no flush needed to read it
        rows = await RefusedAuthorization.select().order_by(RefusedAuthorization.id)
    assert [(r["station_id"], r["id_token"], r["status"], r["purpose"]) for r in rows] == [
        ("RF1", "UNKNOWN-1", "Unknown", "authorize"), ("RF1", "UNKNOWN-1", "Unknown", "authorize"),
        ("RF1", "BLOCKED-1", "Blocked", "authorize")]
    assert rows[2]["source"] == "core.local"
    await server.core.events.drain()
    refused = [e for e in told if isinstance(e, ev.AuthorizationRefused)]
    assert [(e.station_id, e.id_token, e.status) for e in refused] == [
        ("RF1", "UNKNOWN-1", "Unknown"), ("RF1", "UNKNOWN-1", "Unknown"), ("RF1", "BLOCKED-1", "Blocked")]


async def test_201_token_type_and_evse_are_kept(server):
    async with websockets.connect(server.ws_url("RF2"), subprotocols=["ocpp2.0.1"]) as ws:
        await rpc(ws, [2, "b", "BootNotification", BOOT201])
        answer = await rpc(ws, [2, "a", "Authorize", {"idToken": {"idToken": "CAFE01", "type": "ISO14443"}}])
        assert answer[2]["idTokenInfo"]["status"] == "Unknown"
    row = await RefusedAuthorization.select().first()
    assert (row["id_token"], row["token_type"], row["status"]) == ("CAFE01", "ISO14443", "Unknown")


async def test_refusals_are_pruned_after_the_retention_and_to_the_newest_of_each_station(any_server):
    server = any_server
    now = utcnow()
    old = now - timedelta(days=server.core.settings.message_log_retention_days + 1)
    await RefusedAuthorization.insert(
        RefusedAuthorization(station_id="OLD", id_token="X", status="Unknown", timestamp=old),
        *(RefusedAuthorization(station_id="BUSY", id_token=f"T{i}", status="Unknown", timestamp=now)
          for i in range(REFUSALS_PER_STATION + 5)),
        RefusedAuthorization(station_id="QUIET", id_token="Q", status="Blocked", timestamp=now),
    )
    removed = await server.core.retention.prune()
    assert removed["refused_authorization"] == 6
    assert await RefusedAuthorization.count().where(RefusedAuthorization.station_id == "BUSY") == REFUSALS_PER_STATION
    kept = {r["id_token"] for r in await RefusedAuthorization.select(RefusedAuthorization.id_token).where(
        RefusedAuthorization.station_id == "BUSY")}
    assert "T0" not in kept and f"T{REFUSALS_PER_STATION + 4}" in kept  # the newest stay
    assert await RefusedAuthorization.count().where(RefusedAuthorization.station_id == "QUIET") == 1
    assert not await RefusedAuthorization.exists().where(RefusedAuthorization.station_id == "OLD")


async def test_a_boot_the_csms_asked_for_is_marked_triggered(server):
    told = collect(server)
    async with websockets.connect(server.ws_url("TB1"), subprotocols=["ocpp2.0.1"]) as ws:
        await rpc(ws, [2, "b1", "BootNotification", BOOT201])
        trigger = asyncio.create_task(server.core.operations.trigger("TB1", message="BootNotification"))
        call = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert call[2] == "TriggerMessage"
        await ws.send(json.dumps([3, call[1], {"status": "Accepted"}]))
        await trigger
        await rpc(ws, [2, "b2", "BootNotification", {**BOOT201, "reason": "Triggered"}])
        await rpc(ws, [2, "b3", "BootNotification", BOOT201])  # asked for once: the next is the station's own
    await server.core.writer.flush()
    await server.core.events.drain()
    boots = [e for e in told if isinstance(e, ev.StationBooted)]
    assert [e.triggered for e in boots] == [False, True, False]
    rows = await StationEvent.select(StationEvent.details).where(
        (StationEvent.station_id == "TB1") & (StationEvent.category == "boot")).order_by(StationEvent.id)
    details = [json.loads(r["details"]) if isinstance(r["details"], str) else r["details"] for r in rows]
    assert [d["triggered"] for d in details] == [False, True, False]


async def test_every_frame_counts_as_seen_and_is_written_in_batches(server):
    stations = server.core.stations
    async with websockets.connect(server.ws_url("LS1"), subprotocols=["ocpp1.6"]) as ws:
        await rpc(ws, [2, "b", "BootNotification", BOOT16])
        await server.core.writer.flush()
        booted = (await Station.select(Station.last_seen_at).where(Station.station_id == "LS1").first())["last_seen_at"]
        await asyncio.sleep(0.05)
        # an answer to a call of ours is a frame too
        reset = asyncio.create_task(server.core.operations.reset("LS1", kind="soft"))
        call = json.loads(await asyncio.wait_for(ws.recv(), 5))
        await ws.send(json.dumps([3, call[1], {"status": "Accepted"}]))
        await reset
        in_memory = stations.last_seen("LS1")
        assert in_memory is not None and in_memory > booted
        assert "LS1" in stations.seen_since(booted)
        # nothing written per frame: the stored time moves with the next batch
        stored = (await Station.select(Station.last_seen_at).where(Station.station_id == "LS1").first())["last_seen_at"]
        assert stored == booted
        stations.write_seen()
        await server.core.writer.flush()
        stored = (await Station.select(Station.last_seen_at).where(Station.station_id == "LS1").first())["last_seen_at"]
        assert stored == in_memory


async def test_last_seen_is_written_on_its_own_every_few_seconds(server):
    server.core.stations.last_seen_interval = 0.1  # the loop reads it each round
    async with websockets.connect(server.ws_url("LS2"), subprotocols=["ocpp1.6"]) as ws:
        await rpc(ws, [2, "b", "BootNotification", BOOT16])
        await asyncio.sleep(0.05)
        await rpc(ws, [2, "d", "DataTransfer", {"vendorId": "x"}])
        last = server.core.stations.last_seen("LS2")
        for _ in range(100):
            await server.core.writer.flush()
            row = await Station.select(Station.last_seen_at).where(Station.station_id == "LS2").first()
            if row["last_seen_at"] == last:
                break
            await asyncio.sleep(0.1)
        assert row["last_seen_at"] == last


async def test_a_card_already_charging_elsewhere_is_a_refusal_too(server):
    assert (await server.api.post("/tokens", json={"id_token": "TWICE-1"})).status_code == 201
    start = {"idTag": "TWICE-1", "meterStart": 0, "timestamp": "2026-01-01T00:00:00Z"}
    async with websockets.connect(server.ws_url("CC1"), subprotocols=["ocpp1.6"]) as ws:
        await rpc(ws, [2, "b", "BootNotification", BOOT16])
        first = await rpc(ws, [2, "s1", "StartTransaction", {**start, "connectorId": 1}])
        assert first[2]["idTagInfo"]["status"] == "Accepted"
        second = await rpc(ws, [2, "s2", "StartTransaction", {**start, "connectorId": 2}])
        assert second[2]["idTagInfo"]["status"] == "ConcurrentTx"
    rows = await RefusedAuthorization.select().where(RefusedAuthorization.station_id == "CC1")
    assert [(r["id_token"], r["status"], r["purpose"], r["evse_id"]) for r in rows] == [
        ("TWICE-1", "ConcurrentTx", "start", 2)]
