"""Issue 12: no station can freeze, poison or lose another station's data.

One regression test per finding of the outside probe (the numbers refer to the issue), over real
WebSockets with raw OCPP-J frames, on SQLite and on the real PostgreSQL where storage differs.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from csms.core.tables import ChargingSession, Connector, MeterValue, Station, TransactionSeqNo
from csms.testing import running_server, server_on, temporary_database
from tests.stations import basic_auth

BOOT16 = {"chargePointVendor": "Acme", "chargePointModel": "M"}
BOOT201 = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "Acme"}}
TS = "2026-03-01T10:00:00.000Z"


async def rpc(ws, frame) -> list:
    """Send ``frame`` and return the answer to it. CALLs the server sends meanwhile (the check of
    open transactions after a boot) are answered as a station with its queue still to send would."""
    await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
    while True:
        answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if not (isinstance(answer, list) and answer and answer[0] == 2):
            return answer
        if answer[2] == "GetTransactionStatus":
            await ws.send(json.dumps([3, answer[1], {"messagesInQueue": True, "ongoingIndicator": True}]))
        else:
            await ws.send(json.dumps([4, answer[1], "NotImplemented", "raw test station", {}]))


async def station(srv, station_id: str, version: str):
    ws = await websockets.connect(srv.ws_url(station_id), subprotocols=[version], max_size=None)
    boot = BOOT201 if version == "ocpp2.0.1" else BOOT16
    assert (await rpc(ws, [2, "boot", "BootNotification", boot]))[2]["status"] == "Accepted"
    return ws


def sampled(value, *, multiplier=0, ts=TS) -> list:
    return [{"timestamp": ts, "sampledValue": [{"value": value, "measurand": "Energy.Active.Import.Register",
                                                "unitOfMeasure": {"unit": "Wh", "multiplier": multiplier}}]}]


def tx_event(seq: int, event_type: str = "Updated", *, wh: float | None = None, offline: bool = False,
             tx: str = "T1", ts: str = TS) -> dict:
    p = {"eventType": event_type, "timestamp": ts, "triggerReason": "MeterValuePeriodic", "seqNo": seq,
         "transactionInfo": {"transactionId": tx}, "offline": offline}
    if event_type == "Started":
        p["evse"] = {"id": 1, "connectorId": 1}
    if wh is not None:
        p["meterValue"] = sampled(wh, ts=ts)
    return p


async def heartbeat_answered(ws) -> float:
    start = time.perf_counter()
    r = await rpc(ws, [2, f"hb{start}", "Heartbeat", {}])
    assert r[0] == 3
    return time.perf_counter() - start


# 1. One frame freezes every station --------------------------------------------------------

async def test_huge_multiplier_is_refused_without_blocking_others(server):
    bad = await station(server, "MULT", "ocpp2.0.1")
    other = await station(server, "CALM", "ocpp1.6")
    try:
        for multiplier in (10_000_000, 10**8, 10, -10):
            r = await rpc(bad, [2, f"m{multiplier}", "MeterValues",
                                {"evseId": 1, "meterValue": sampled(5, multiplier=multiplier)}])
            assert r[:3] == [4, f"m{multiplier}", "PropertyConstraintViolation"], r
            await heartbeat_answered(other)
        r = await rpc(bad, [2, "ok", "MeterValues", {"evseId": 1, "meterValue": sampled(5, multiplier=3)}])
        assert r[0] == 3
        await server.core.writer.flush()
        rows = await MeterValue.select(MeterValue.value).where(MeterValue.station_id == "MULT")
        assert [r["value"] for r in rows] == [5000.0]
    finally:
        await bad.close()
        await other.close()


# 2. One bad row rolls back every station's batch --------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_failing_unit_fails_alone(tmp_path, backend):
    """The batched writer: a unit that cannot be stored fails its own caller; the rest commit."""
    async with running_server(tmp_path, backend=backend, unknown_stations="accept") as srv:
        writer = srv.core.writer
        insert = ("INSERT INTO meter_value (session, station_id, evse_id, transaction_id, timestamp, measurand, "
                  "phase, unit, context, location, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        from csms.core.timeutil import utcnow

        def row(station_id, value):
            return (None, station_id, 1, "", utcnow(), "Energy.Active.Import.Register", "", "Wh", "", "", value)

        good = [writer.submit([(insert, row(f"GOOD{i}", float(i)))]) for i in range(5)]
        bad = writer.submit([(insert, row("BAD", 1.0)), (insert, row("BAD", None))])  # NOT NULL value
        lonely = writer.add(insert, row("LONELY", None))  # nobody waits: logged and dropped
        more = writer.submit([(insert, row("GOOD9", 9.0))])
        await asyncio.gather(*good, more)
        with pytest.raises(Exception):
            await bad
        assert lonely is None
        await writer.flush()
        stored = {r["station_id"] for r in await MeterValue.select(MeterValue.station_id)}
        assert stored == {"GOOD0", "GOOD1", "GOOD2", "GOOD3", "GOOD4", "GOOD9"}  # nothing of BAD, not even row 1
        assert writer.failed_units == 2


async def test_postgres_writer_commits_the_next_batch_while_one_is_in_flight(tmp_path):
    """On PostgreSQL with two batches in flight (``db_write_pipeline`` 2), a batch still
    committing does not hold the next one, flush() waits for both, and the writer keeps its
    connections between batches."""
    async with running_server(tmp_path, backend="postgres", unknown_stations="accept", db_write_pipeline=2) as srv:
        writer = srv.core.writer
        insert = ("INSERT INTO meter_value (session, station_id, evse_id, transaction_id, timestamp, measurand, "
                  "phase, unit, context, location, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        from csms.core.timeutil import utcnow

        def row(station_id, value):
            return (None, station_id, 1, "", utcnow(), "Energy.Active.Import.Register", "", "Wh", "", "", value)

        await writer.flush()
        slow = writer.submit([(insert, row("SLOW", 1.0)), ("SELECT pg_sleep(?)", (3.0,))])
        await asyncio.sleep(0.2)  # the slow batch is taken and running
        started = time.monotonic()
        await writer.submit([(insert, row("FAST", 2.0))])
        assert time.monotonic() - started < 2.5 and not slow.done()
        stored = {r["station_id"] for r in await MeterValue.select(MeterValue.station_id)}
        assert "FAST" in stored and "SLOW" not in stored  # the slow unit commits with its own batch
        await writer.flush()
        assert slow.done() and slow.exception() is None
        kept = {id(conn) for conn in writer._pg_idle}
        assert 1 <= len(kept) <= 2
        for i in range(3):  # one connection after another batch, with one in flight at a time
            await writer.submit([(insert, row(f"AGAIN{i}", 3.0))])
        assert {id(conn) for conn in writer._pg_idle} <= kept  # no connection taken from the pool anew


async def test_seq_no_counts_as_seen_only_after_its_commit(server, monkeypatch):
    """A TransactionEvent whose write fails gets an error; the station's retry is stored, not
    taken for a duplicate."""
    ws = await station(server, "RETRY", "ocpp2.0.1")
    try:
        assert (await rpc(ws, [2, "s", "TransactionEvent", tx_event(0, "Started", wh=100)]))[0] == 3
        writer = server.core.writer
        real_submit = writer.submit
        calls = []

        def failing_submit(statements):
            calls.append(statements)
            fut = asyncio.get_running_loop().create_future()
            fut.set_exception(RuntimeError("disk on fire"))
            return fut

        monkeypatch.setattr(writer, "submit", failing_submit)
        r = await rpc(ws, [2, "u1", "TransactionEvent", tx_event(1, wh=200)])
        assert r[:3] == [4, "u1", "InternalError"]
        monkeypatch.setattr(writer, "submit", real_submit)
        r = await rpc(ws, [2, "u1b", "TransactionEvent", tx_event(1, wh=200)])
        assert r[0] == 3
        session = await ChargingSession.select().where(ChargingSession.transaction_id == "T1").first()
        assert session["energy_wh"] == 100.0 and session["last_seq_no"] == 1
        values = await MeterValue.select(MeterValue.value).where(MeterValue.station_id == "RETRY")
        assert sorted(v["value"] for v in values) == [100.0, 200.0]
        assert calls
    finally:
        await ws.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_bad_frames_of_one_station_lose_nothing_of_another(tmp_path, backend):
    async with running_server(tmp_path, backend=backend, unknown_stations="accept") as srv:
        good = await station(srv, "GOOD", "ocpp2.0.1")
        evil = await station(srv, "EVIL", "ocpp1.6")
        try:
            assert (await rpc(good, [2, "s", "TransactionEvent", tx_event(0, "Started", wh=0)]))[0] == 3
            bad_frames = [
                [2, "nan", "MeterValues", {"connectorId": 1, "meterValue": [
                    {"timestamp": TS, "sampledValue": [{"value": "NaN"}]}]}],
                [2, "inf", "MeterValues", {"connectorId": 1, "meterValue": [
                    {"timestamp": TS, "sampledValue": [{"value": "1e999"}]}]}],
                [2, "big", "StartTransaction", {"connectorId": 1, "idTag": "X", "meterStart": 2**63,
                                                "timestamp": TS}],
                [2, "big32", "StartTransaction", {"connectorId": 1, "idTag": "X", "meterStart": 2**31,
                                                  "timestamp": TS}],
                [2, "nul", "DataTransfer", {"vendorId": "v\u0000x"}],
            ]
            answered = []
            for seq in range(1, 31):
                frame = bad_frames[seq % len(bad_frames)]
                r = await rpc(evil, frame)
                assert r[0] == 4 and r[2] in ("PropertyConstraintViolation", "TypeConstraintViolation"), r
                r = await rpc(good, [2, f"g{seq}", "TransactionEvent", tx_event(seq, wh=seq * 10.0,
                                                                              ts=f"2026-03-01T10:{seq:02d}:00Z")])
                assert r[0] == 3
                answered.append(seq * 10.0)
            assert (await rpc(good, [2, "e", "TransactionEvent", tx_event(31, "Ended", wh=400.0)]))[0] == 3
            stored = await MeterValue.select(MeterValue.value).where(MeterValue.station_id == "GOOD")
            assert sorted(r["value"] for r in stored) == [0.0, *answered, 400.0]
            assert not await MeterValue.exists().where(MeterValue.station_id == "EVIL")
            session = await ChargingSession.select().where(ChargingSession.transaction_id == "T1").first()
            assert session["state"] == "completed" and session["energy_wh"] == 400.0
            seqs = await TransactionSeqNo.count().where(TransactionSeqNo.session == session["id"])
            assert seqs == 32
        finally:
            await good.close()
            await evil.close()


# 3. Wrong passwords slow everyone down -------------------------------------------------------

async def test_failed_logins_are_throttled_and_others_keep_answering(server):
    r = await server.api.post("/stations/", json={"station_id": "LOCKED", "password": "p" * 20})
    assert r.status_code == 201
    other = await station(server, "BYSTANDER", "ocpp1.6")
    statuses = []
    try:
        for _ in range(14):
            try:
                async with websockets.connect(server.ws_url("LOCKED"), subprotocols=["ocpp1.6"],
                                              additional_headers=basic_auth("LOCKED", "wrong-password-xyz")):
                    pass
            except InvalidStatus as exc:
                statuses.append(exc.response.status_code)
            await heartbeat_answered(other)
    finally:
        await other.close()
    limit = server.core.failed_logins.per_address
    assert statuses[:limit] == [401] * limit
    assert set(statuses[limit:]) == {429}
    health = (await server.api.get("/health")).json()
    assert health["station_logins_failed"] == limit and health["station_logins_throttled"] == 14 - limit


async def test_throttled_station_id_still_admits_its_trusted_address(server):
    r = await server.api.post("/stations/", json={"station_id": "REAL", "password": "q" * 20})
    assert r.status_code == 201
    async with websockets.connect(server.ws_url("REAL"), subprotocols=["ocpp1.6"],
                                  additional_headers=basic_auth("REAL", "q" * 20)):
        pass
    limits = server.core.failed_logins
    for i in range(limits.per_station + 1):  # an attacker on many addresses guessing REAL's password
        limits.failed("REAL", f"198.51.100.{i}")
    assert limits.retry_after("REAL", "203.0.113.7") > 0  # a new address is throttled for REAL
    async with websockets.connect(server.ws_url("REAL"), subprotocols=["ocpp1.6"],
                                  additional_headers=basic_auth("REAL", "q" * 20)) as ws:
        assert (await rpc(ws, [2, "b", "BootNotification", BOOT16]))[0] == 3


# 4. Replays after a restart are stored twice ------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_replays_after_restart_are_stored_once(tmp_path, backend):
    async with temporary_database(tmp_path, backend) as url:
        overrides = {"unknown_stations": "accept"}
        if backend != "sqlite":
            overrides["database_url"] = url
        async with server_on(tmp_path, **overrides) as srv:
            ws = await station(srv, "REPLAY", "ocpp2.0.1")
            for seq in range(3):
                kind = "Started" if seq == 0 else "Updated"
                frame = tx_event(seq, kind, wh=100.0 * seq, ts=f"2026-03-01T10:0{seq}:00Z")
                assert (await rpc(ws, [2, f"a{seq}", "TransactionEvent", frame]))[0] == 3
            await ws.close()
        async with server_on(tmp_path, **overrides) as srv:
            ws = await station(srv, "REPLAY", "ocpp2.0.1")
            frame = tx_event(3, wh=300.0, ts="2026-03-01T10:03:00Z")
            assert (await rpc(ws, [2, "a3", "TransactionEvent", frame]))[0] == 3
            for seq in (1, 2):
                frame = tx_event(seq, wh=100.0 * seq, offline=True, ts=f"2026-03-01T10:0{seq}:00Z")
                assert (await rpc(ws, [2, f"r{seq}", "TransactionEvent", frame]))[0] == 3
            await ws.close()
            values = await MeterValue.select(MeterValue.value).where(MeterValue.station_id == "REPLAY")
            assert sorted(v["value"] for v in values) == [0.0, 100.0, 200.0, 300.0]
            session = await ChargingSession.select().where(ChargingSession.transaction_id == "T1").first()
            assert session["last_seq_no"] == 3 and session["energy_wh"] == 300.0


async def test_replayed_16_meter_values_are_stored_once(server):
    ws = await station(server, "MV16", "ocpp1.6")
    try:
        r = await rpc(ws, [2, "st", "StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 10,
                                                        "timestamp": TS}])
        tx = r[2]["transactionId"]
        frame = {"connectorId": 1, "transactionId": tx, "meterValue": [
            {"timestamp": "2026-03-01T10:05:00Z", "sampledValue": [{"value": "50"}]}]}
        for uid in ("m1", "m1-again", "m1-once-more"):
            assert (await rpc(ws, [2, uid, "MeterValues", frame]))[0] == 3
        values = await MeterValue.select(MeterValue.value).where(MeterValue.station_id == "MV16")
        assert [v["value"] for v in values] == [50.0]
    finally:
        await ws.close()


# 6. Deep nesting -----------------------------------------------------------------------------

@pytest.mark.parametrize("version,rpc_error,format_error,nested_error", [
    ("ocpp1.6", "FormationViolation", "FormationViolation", "FormationViolation"),
    ("ocpp2.0.1", "RpcFrameworkError", "FormatViolation", "FormatViolation"),
])
async def test_deep_nesting_gets_a_callerror_and_the_socket_survives(server, version, rpc_error, format_error,
                                                                    nested_error):
    ws = await station(server, f"DEEP{version[-1]}", version)
    try:
        for depth in (1_000, 100_000):
            frame = '[2,"deep","DataTransfer",{"vendorId":"v","data":' + "[" * depth + "]" * depth + "}]"
            r = await rpc(ws, frame)
            assert r[:3] == [4, "deep", format_error]  # too deep to decode, its id still read
            r = await rpc(ws, "[" * depth + "]" * depth)
            assert r[:3] == [4, "-1", rpc_error]  # not even a CALL
        # any id, even one a station should not send, escapes included, is read back (fuzz findings)
        for literal in ('""', '";"', '"a b"', '")"', r'"\""', r'"\u001f"', r'"x\\y"'):
            r = await rpc(ws, f'[2,{literal},"Authorize",' + "[" * 1_000 + "]" * 1_000 + "]")
            assert r[:3] == [4, json.loads(literal), format_error]
        r = await rpc(ws, r'[2,"\ud800","Authorize",' + "[" * 1_000 + "]" * 1_000 + "]")
        assert r[:3] == [4, "-1", rpc_error]  # a lone surrogate is not JSON: as for a shallow frame
        nested = {"vendorId": "v", "data": json.loads("[" * 40 + "]" * 40)}
        r = await rpc(ws, [2, "deep40", "DataTransfer", nested])
        assert r[:3] == [4, "deep40", nested_error]
        await heartbeat_answered(ws)
    finally:
        await ws.close()


# 7. Garbage is accepted and stored ------------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_out_of_domain_values_are_refused_with_the_spec_codes(tmp_path, backend):
    async with running_server(tmp_path, backend=backend, unknown_stations="accept") as srv:
        v16 = await station(srv, "GARBAGE16", "ocpp1.6")
        v201 = await station(srv, "GARBAGE201", "ocpp2.0.1")
        try:
            cases16 = [
                ({"connectorId": -1, "idTag": "X", "meterStart": 0, "timestamp": TS}, "PropertyConstraintViolation"),
                ({"connectorId": -2147483649, "idTag": "X", "meterStart": 0, "timestamp": TS},
                 "TypeConstraintViolation"),
                ({"connectorId": 1, "idTag": "X", "meterStart": 2**64, "timestamp": TS}, "TypeConstraintViolation"),
                ({"connectorId": 5000, "idTag": "X", "meterStart": 0, "timestamp": TS},
                 "PropertyConstraintViolation"),
                ({"connectorId": 1, "idTag": "X", "meterStart": 0, "timestamp": "2026-02-30T10:00:00Z"},
                 "PropertyConstraintViolation"),
            ]
            for i, (payload, code) in enumerate(cases16):
                r = await rpc(v16, [2, f"c{i}", "StartTransaction", payload])
                assert r[:3] == [4, f"c{i}", code], (payload, r)
            # not finite, or not a plain decimal (an underscore, a separator float() refuses, other digits)
            for i, text in enumerate(("NaN", "inf", "1_0", "12\x1f", "\x1c3", "\u00a012\x1f", "١٢", "0x10")):
                r = await rpc(v16, [2, f"nan{i}", "MeterValues", {"connectorId": 1, "meterValue": [
                    {"timestamp": TS, "sampledValue": [{"value": text}]}]}])
                assert r[:3] == [4, f"nan{i}", "PropertyConstraintViolation"], (text, r)
            r = await rpc(v201, [2, "seq", "TransactionEvent", tx_event(2**31, "Started", wh=1)])
            assert r[:3] == [4, "seq", "TypeConstraintViolation"]
            r = await rpc(v201, [2, "seq64", "TransactionEvent", tx_event(2**64, "Started", wh=1)])
            assert r[:3] == [4, "seq64", "TypeConstraintViolation"]
            r = await rpc(v201, [2, "evse", "StatusNotification", {"timestamp": TS, "connectorStatus": "Available",
                                                                    "evseId": -2, "connectorId": 1}])
            assert r[:3] == [4, "evse", "PropertyConstraintViolation"]
            long_id = "x" * 37
            r = await rpc(v201, [2, long_id, "Heartbeat", {}])
            assert r[:3] == [4, long_id, "RpcFrameworkError"]
            r = await rpc(v16, [2, long_id, "Heartbeat", {}])
            assert r[:3] == [4, long_id, "FormationViolation"]
            r = await rpc(v201, [2, "x" * 36, "Heartbeat", {}])
            assert r[0] == 3
            stations = {r["id"] for r in await Station.select(Station.id).where(
                Station.station_id.is_in(["GARBAGE16", "GARBAGE201"]))}
            assert not await Connector.exists().where(Connector.station.is_in(list(stations)))
            assert not await ChargingSession.exists()
            assert not await MeterValue.exists()
        finally:
            await v16.close()
            await v201.close()


@pytest.mark.parametrize("station_id", ["CP%00X", "CP%0D%0AX", "CP%E2%80%AEX", ".", "..", "CP%20X", "x" * 49])
async def test_station_ids_outside_ocpp_identifiers_are_refused_with_400(server, station_id):
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/ocpp/{station_id}", subprotocols=["ocpp1.6"]):
            pass
    assert refused.value.response.status_code == 400
    assert b"station id" in refused.value.response.body
    assert await Station.count() == 0


async def test_handshake_statuses_say_why(tmp_path):
    async with running_server(tmp_path, unknown_stations="reject") as srv:
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(srv.ws_url("NOBODY"), subprotocols=["ocpp1.6"]):
                pass
        assert refused.value.response.status_code == 404
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(srv.ws_url("NOBODY"), subprotocols=["ocpp1.5"]):
                pass
        assert refused.value.response.status_code == 400
        await srv.api.post("/stations/", json={"station_id": "PW", "password": "p" * 20})
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(srv.ws_url("PW"), subprotocols=["ocpp1.6"]):
                pass
        assert refused.value.response.status_code == 401
        assert refused.value.response.headers["WWW-Authenticate"].startswith("Basic")


async def test_numbers_beyond_the_decoder_keep_their_message_id(server):
    """Found by the fuzzer: 1e400 or an integer of 5,000 digits is still JSON; the CALL gets an
    answer with its own id and the code of the value's domain."""
    ws = await station(server, "HUGE", "ocpp2.0.1")
    try:
        r = await rpc(ws, '[2,"f","MeterValues",{"evseId":1,"meterValue":[{"timestamp":"' + TS
                      + '","sampledValue":[{"value":1e400}]}]}]')
        assert r[:3] == [4, "f", "PropertyConstraintViolation"]
        r = await rpc(ws, '[2,"i","Heartbeat",{"x":1' + "0" * 5000 + "}]")
        assert r[:3] == [4, "i", "TypeConstraintViolation"]
        r = await rpc(ws, '[2,"w","LogStatusNotification",{"status":"Idle","requestId":2147483648.0}]')
        assert r[:3] == [4, "w", "TypeConstraintViolation"]
        deep = '[2,"d","DataTransfer",{"vendorId":"v","data":' + "[" * 300 + "]" * 300 + "}]"
        assert (await rpc(ws, deep))[:3] == [4, "d", "FormatViolation"]  # below the decoder's limit
        await heartbeat_answered(ws)
    finally:
        await ws.close()


async def test_notify_event_is_stored_whole_or_not_at_all(server):
    ws = await station(server, "EVENTS", "ocpp2.0.1")
    try:
        item = {"eventId": 1, "timestamp": "2024-01-01T00:00:00Z", "trigger": "Delta", "actualValue": "x",
                "eventNotificationType": "HardWiredNotification", "component": {"name": "C"},
                "variable": {"name": "V"}}
        bad = {**item, "eventId": 2, "timestamp": "0001-01-01T00:00:00+05:00"}
        r = await rpc(ws, [2, "e", "NotifyEvent", {"generatedAt": TS, "seqNo": 0, "eventData": [item, bad]}])
        assert r[:3] == [4, "e", "PropertyConstraintViolation"]
        await server.core.writer.flush()
        events = (await server.api.get("/stations/EVENTS/events", params={"category": "event"})).json()["items"]
        assert events == []
    finally:
        await ws.close()
