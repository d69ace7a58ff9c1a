"""Transactions a rebooted station lost: checked after its BootNotification and closed once, at
the last stored meter reading, with ``session.stopped`` heard exactly once."""

from __future__ import annotations

import asyncio

from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.core import events as ev
from csms.core.tables import ChargingSession, Command, StationEvent
from csms.testing import running_server
from csms.testing.stations import now_iso, station


async def open_session(server, sid: str, version: str) -> tuple[int, str | int]:
    """A session with a stored reading of 1750 Wh (started at 1000 Wh, 2.0.1 at 1000 Wh too)."""
    r = await server.api.post("/tokens", json={"id_token": f"{sid}-TAG", "type": "ISO14443"})
    assert r.status_code == 201, r.text
    async with station(server, sid, version) as cp:
        tx = await cp.start_session(f"{sid}-TAG")
        if version == "1.6":
            await cp.call(call16.MeterValues(connector_id=1, transaction_id=tx, meter_value=[
                {"timestamp": now_iso(), "sampled_value": [{"value": "1750",
                                                            "measurand": "Energy.Active.Import.Register"}]}]))
        else:
            for seq_no, wh in ((1, 1000), (2, 1750)):
                await cp.call(call201.TransactionEvent(
                    event_type="Updated", timestamp=now_iso(), trigger_reason="MeterValuePeriodic", seq_no=seq_no,
                    transaction_info={"transactionId": tx}, evse={"id": 1, "connectorId": 1},
                    meter_value=[{"timestamp": now_iso(), "sampledValue": [
                        {"value": wh, "measurand": "Energy.Active.Import.Register"}]}]))
    session = await ChargingSession.select().where(ChargingSession.transaction_id == str(tx)).first()
    assert session["state"] == "active"
    return session["id"], tx


async def ended(cp, tx: str, seq_no: int) -> None:
    """The station's own Ended of ``tx`` (a seqNo after the stored ones)."""
    await cp.call(call201.TransactionEvent(
        event_type="Ended", timestamp=now_iso(), trigger_reason="StopAuthorized", seq_no=seq_no,
        transaction_info={"transactionId": tx, "stoppedReason": "Local"}))


def stopped_events(server) -> list[ev.SessionStopped]:
    heard: list[ev.SessionStopped] = []
    server.core.events.listen(lambda e: heard.append(e) if isinstance(e, ev.SessionStopped) else None)
    return heard


async def settled(server) -> None:
    """Every event delivered and every check it started done."""
    await server.core.events.drain()
    await server.core.reconciliation.drain()
    await server.core.events.drain()


async def row(session_id: int) -> dict:
    return await ChargingSession.select().where(ChargingSession.id == session_id).first()


async def test_201_lost_transaction_is_closed_once(server):
    session_id, tx = await open_session(server, "REC201", "2.0.1")
    heard = stopped_events(server)
    async with station(server, "REC201", "2.0.1") as cp:  # rebooted: it knows no transaction
        await settled(server)
        assert cp.received == [("GetTransactionStatus", {"transaction_id": tx})]
        done = await row(session_id)
        assert done["state"] == "completed" and done["stop_reason"] == "Reboot"
        assert "closed_after_reboot" in done["flags"]
        assert done["meter_stop_wh"] == 1750 and done["energy_wh"] == 750
        assert [e.session_id for e in heard] == [session_id]
        await cp.boot()  # a second boot finds nothing open: nothing asked, nothing stopped again
        await settled(server)
        assert len(cp.received) == 1 and [e.session_id for e in heard] == [session_id]
        # the station's own Ended, delivered late, replaces the CSMS's account without a second stop
        await ended(cp, tx, 3)
        await settled(server)
        assert "ended_late_by_station" in (await row(session_id))["flags"]
        assert [e.session_id for e in heard] == [session_id]
    commands = await Command.select().where(Command.action == "GetTransactionStatus")
    assert [(c["status"], c["requested_by"]) for c in commands] == [("answered", "reconciliation")]
    logged = await StationEvent.select().where((StationEvent.station_id == "REC201")
                                               & (StationEvent.kind == "reconciled"))
    assert len(logged) == 1 and "unknown to the station" in logged[0]["summary"]


async def test_201_ongoing_or_queued_transaction_stays_open(server):
    session_id, tx = await open_session(server, "REC201B", "2.0.1")
    heard = stopped_events(server)
    async with station(server, "REC201B", "2.0.1", boot=False) as cp:
        cp.ongoing.add(tx)
        await cp.boot()
        await settled(server)
        assert ("GetTransactionStatus", {"transaction_id": tx}) in cp.received
        assert (await row(session_id))["state"] == "active"
    async with station(server, "REC201B", "2.0.1", boot=False) as cp:  # not running, but messages queued
        cp.queued.add(tx)
        await cp.boot()
        await settled(server)
        assert cp.received == [("GetTransactionStatus", {"transaction_id": tx})]
        assert (await row(session_id))["state"] == "active"
        await ended(cp, tx, 3)  # the queued Ended arrives
        await settled(server)
    done = await row(session_id)
    assert done["state"] == "completed" and done["stop_reason"] == "Local"
    assert "closed_after_reboot" not in done["flags"]
    assert [e.session_id for e in heard] == [session_id]


async def test_16_connector_available_after_boot_closes(server):
    session_id, tx = await open_session(server, "REC16", "1.6")
    heard = stopped_events(server)
    async with station(server, "REC16", "1.6") as cp:
        await settled(server)
        assert (await row(session_id))["state"] == "active"  # 1.6 cannot be asked: wait for the connector
        await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
        await settled(server)
        done = await row(session_id)
        assert done["state"] == "completed" and done["stop_reason"] == "Reboot"
        assert "closed_after_reboot" in done["flags"]
        assert done["meter_stop_wh"] == 1750 and done["energy_wh"] == 750
        assert [e.session_id for e in heard] == [session_id]
        await cp.stop_session(tx)  # the station's queued stop arrives later: its account, no second stop
        await settled(server)
        again = await row(session_id)
        assert again["meter_stop_wh"] == 5000 and "ended_late_by_station" in again["flags"]
        assert [e.session_id for e in heard] == [session_id]


async def test_16_resumed_transaction_stays_open_and_outliving_is_reported(server):
    session_id, tx = await open_session(server, "REC16B", "1.6")
    reported: list[ev.StationReported] = []
    server.core.events.listen(lambda e: reported.append(e) if isinstance(e, ev.StationReported) else None)
    async with station(server, "REC16B", "1.6") as cp:
        await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
        await cp.call(call16.MeterValues(connector_id=1, transaction_id=tx, meter_value=[
            {"timestamp": now_iso(), "sampled_value": [{"value": "1900",
                                                        "measurand": "Energy.Active.Import.Register"}]}]))
        await settled(server)
        # resumed: a later Available no longer closes it, it is reported as outliving its connector
        await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
        await settled(server)
        assert (await row(session_id))["state"] == "active"
        alerts = [e for e in reported if e.category == "transaction"]
        assert [(e.kind, e.details["session_id"]) for e in alerts] == [("outlived_connector", session_id)]
        logged = await StationEvent.select().where((StationEvent.station_id == "REC16B")
                                                   & (StationEvent.kind == "outlived_connector"))
        assert len(logged) == 1


async def test_16_grace_period_closes_a_transaction_not_resumed(tmp_path):
    async with running_server(tmp_path, unknown_stations="accept", transaction_resume_grace_s=3) as server:
        session_id, _ = await open_session(server, "REC16G", "1.6")
        kept_id, kept_tx = await open_session(server, "REC16H", "1.6")
        heard = stopped_events(server)
        async with station(server, "REC16G", "1.6"), station(server, "REC16H", "1.6") as other:
            await other.call(call16.MeterValues(connector_id=1, transaction_id=kept_tx, meter_value=[
                {"timestamp": now_iso(), "sampled_value": [{"value": "1900",
                                                            "measurand": "Energy.Active.Import.Register"}]}]))
            await settled(server)
            done = await row(session_id)
            assert done["state"] == "completed" and "closed_after_reboot" in done["flags"]
            assert done["meter_stop_wh"] == 1750
            assert (await row(kept_id))["state"] == "active"
            assert [e.session_id for e in heard] == [session_id]


async def test_reconciliation_can_be_turned_off(tmp_path):
    async with running_server(tmp_path, unknown_stations="accept", reconcile_transactions=False) as server:
        session_id, _ = await open_session(server, "RECOFF", "2.0.1")
        async with station(server, "RECOFF", "2.0.1") as cp:
            await settled(server)
            assert cp.received == []
            assert (await row(session_id))["state"] == "active"


async def test_transaction_status_on_demand(server):
    """An operator asks the station about a session's transaction (GetTransactionStatus): the
    station that runs it says so; a 1.6 station has no such call (409); an offline one: 409."""
    session_id, tx = await open_session(server, "ASK201", "2.0.1")
    async with station(server, "ASK201", "2.0.1") as cp:
        await settled(server)  # the check after the boot closes the session this station lost
        cp.received.clear()
        r = await server.api.post(f"/sessions/{session_id}/transaction-status")
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "Accepted" and r.json()["ongoing"] is False
        assert r.json()["transaction_id"] == tx and r.json()["station_id"] == "ASK201"
        assert cp.received == [("GetTransactionStatus", {"transaction_id": tx})]
    offline = await server.api.post(f"/sessions/{session_id}/transaction-status")
    assert offline.status_code == 409 and offline.json()["extra"]["error"] == "StationOffline"
    old_id, _ = await open_session(server, "ASK16", "1.6")
    async with station(server, "ASK16", "1.6"):
        r = await server.api.post(f"/sessions/{old_id}/transaction-status")
        assert r.status_code == 409 and r.json()["extra"]["error"] == "NotSupported", r.text
    assert (await server.api.post("/sessions/999999/transaction-status")).status_code == 404


async def asked(server, cp) -> None:
    """Settled once the station was asked (the connection's event comes after the handshake)."""
    for _ in range(100):
        await settled(server)
        if cp.received:
            return
        await asyncio.sleep(0.05)


async def test_201_reconnect_without_boot_checks_open_transactions(tmp_path):
    """A station back from a lost connection (no boot) is asked about the sessions still open for
    it once the wait is over: one it runs, or has queued messages of, stays open; one it neither
    runs nor has anything queued of (its end was lost) is closed with reason Other. A station
    that boots within the wait is asked once, by the boot's check."""
    async with running_server(tmp_path, unknown_stations="accept", transaction_check_after_reconnect_s=0.5) as server:
        lost_id, lost_tx = await open_session(server, "RCN201", "2.0.1")
        heard = stopped_events(server)
        async with station(server, "RCN201", "2.0.1", boot=False) as cp:
            cp.ongoing.add(lost_tx)
            await asked(server, cp)
            assert cp.received == [("GetTransactionStatus", {"transaction_id": lost_tx})]
            assert (await row(lost_id))["state"] == "active"
        async with station(server, "RCN201", "2.0.1", boot=False) as cp:
            cp.queued.add(lost_tx)
            await asked(server, cp)
            assert cp.received == [("GetTransactionStatus", {"transaction_id": lost_tx})]
            assert (await row(lost_id))["state"] == "active"
        async with station(server, "RCN201", "2.0.1", boot=False) as cp:
            await asked(server, cp)
            assert cp.received == [("GetTransactionStatus", {"transaction_id": lost_tx})]
        done = await row(lost_id)
        assert done["state"] == "completed" and done["stop_reason"] == "Other"
        assert "closed_after_reconnect" in done["flags"] and "closed_after_reboot" not in done["flags"]
        assert done["meter_stop_wh"] == 1750
        assert [e.session_id for e in heard] == [lost_id]
        logged = await StationEvent.select().where((StationEvent.station_id == "RCN201")
                                                   & (StationEvent.kind == "reconciled"))
        assert len(logged) == 1 and "when it reconnected" in logged[0]["summary"]

        booted_id, booted_tx = await open_session(server, "RCN201B", "2.0.1")
        async with station(server, "RCN201B", "2.0.1") as cp:  # boots at once: the boot's check only
            await settled(server)
            assert cp.received == [("GetTransactionStatus", {"transaction_id": booted_tx})]
            assert "closed_after_reboot" in (await row(booted_id))["flags"]


async def test_16_reconnect_without_boot_is_not_asked(tmp_path):
    async with running_server(tmp_path, unknown_stations="accept", transaction_check_after_reconnect_s=0.5) as server:
        session_id, _ = await open_session(server, "RCN16", "1.6")
        async with station(server, "RCN16", "1.6", boot=False) as cp:
            await asyncio.sleep(1.5)  # past the wait
            await settled(server)
            assert cp.received == []
            assert (await row(session_id))["state"] == "active"
