"""Crash recovery (issue 12): the server is killed with SIGKILL under load and restarted on the
same database, on SQLite and on PostgreSQL.

Twelve stations (6 × OCPP 1.6, 6 × OCPP 2.0.1) speak OCPP-J by hand over raw WebSockets, so
every CALL and whether a CALLRESULT came back is recorded exactly. They run transactions back to
back (1.6: Authorize, StartTransaction, MeterValues, StopTransaction; 2.0.1: TransactionEvent
Started, Updated with meter values, Ended) against ``python -m csms serve`` in its own process,
which is killed after a couple of seconds and started again (three times, with new stations
each time). After each restart:

1. every answered message is in the database, read directly (no answered message is lost);
2. each station reconnects and delivers its offline queue, as a station does: the transaction
   messages that got no answer (2.0.1 with ``offline: true`` and the same seqNo, 1.6 with the
   same content); then, to test idempotency, it replays its whole transaction log once more,
   answered messages included. In the end nothing may be stored twice (meter values, sessions,
   2.0.1 seqNos), everything sent is stored, and every stopped session is completed once with
   the right stop and energy.

The stations' timestamps are their own clock (one second per message, a day in the past), so
every sampled value has a distinct (station, EVSE, timestamp, measurand, phase).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import pytest

from csms.testing import free_port, temporary_database
from tests.crashkit import (
    Findings,
    RawStation,
    ServerProcess,
    check_after_replay,
    check_answered,
    create_tokens,
    load_summary,
    read_database,
)

STATIONS_PER_VERSION = 6
CYCLES = 3  # crashes per backend: each one is a new chance to hit a half-done write
MIN_LOAD_SECONDS = 2.5
MAX_LOAD_SECONDS = 30.0


def make_stations(cycle: int) -> list[RawStation]:
    clock = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=1)
    stations = []
    for version, prefix in (("1.6", "CRASH16"), ("2.0.1", "CRASH201")):
        for i in range(1, STATIONS_PER_VERSION + 1):
            sid = f"{prefix}-{cycle}-{i:02d}"
            stations.append(RawStation(sid, version, id_tag=f"TAG-{sid}"[:20], clock_start=clock,
                                       meters_per_tx=3 + i % 3))
    return stations


async def load_until_killed(server: ServerProcess, stations: list[RawStation]) -> float:
    """Stations run transactions back to back; after a couple of seconds (and at least one
    finished transaction each) the server gets SIGKILL while they are mid-flight."""
    for st in stations:
        await st.connect(server.ws_url(st.station_id))
    load = [asyncio.create_task(st.run_load()) for st in stations]
    started = time.monotonic()
    while True:
        await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        if all(t.done() for t in load):
            break  # every station lost its connection (or was refused): nothing more to wait for
        if elapsed >= MIN_LOAD_SECONDS and all(st.completed_transactions >= 1 or t.done()
                                               for st, t in zip(stations, load)):
            break
        if elapsed >= MAX_LOAD_SECONDS:
            break
    server.kill()
    await asyncio.wait_for(asyncio.gather(*load), 60)
    for t in load:
        t.result()  # a station's own bug (not the server's answer) fails here
    for st in stations:
        await st.close()
    # the scenario itself: every station got through a transaction (or was refused, which the
    # checks report)
    assert all(st.completed_transactions >= 1 or any(m.outcome == "error" for m in st.log) for st in stations), (
        "every station should finish a transaction before the kill:\n" + load_summary(stations)
        + "\n" + server.log_tail())
    return elapsed


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_sigkill_under_load_loses_nothing_answered_and_replays_store_once(backend, tmp_path):
    t0 = time.monotonic()
    lost, twice = Findings(), Findings()
    everyone: list[RawStation] = []
    loads = []
    async with temporary_database(tmp_path, backend) as url:
        db_url = url if backend == "postgres" else ""
        server = ServerProcess(tmp_path / "data", free_port(), db_url)
        try:
            api_key = await server.create_api_key()
            await server.start()
            for cycle in range(1, CYCLES + 1):
                stations = make_stations(cycle)
                everyone += stations
                await create_tokens(server.http_url, api_key, [st.id_tag for st in stations])
                loads.append(await load_until_killed(server, stations))

                # restart on the same database: what was answered must be there
                await server.start()
                check_answered(stations, await read_database(db_url, server.sqlite_path), lost)

                # every station reconnects and delivers its offline queue (what got no answer),
                # then, to test idempotency, replays its whole transaction log (answered or not)
                for st in stations:
                    await st.connect(server.ws_url(st.station_id))
                await asyncio.wait_for(asyncio.gather(*(st.replay(st.offline_queue(), "queue")
                                                        for st in stations)), 120)
                await asyncio.wait_for(asyncio.gather(*(st.replay(st.transaction_log(), "replay")
                                                        for st in stations)), 120)
                for st in stations:
                    await st.close()
            db = await read_database(db_url, server.sqlite_path)
            check_after_replay(everyone, db, twice)
        finally:
            server.stop()

    sent_load = sum(1 for st in everyone for m in st.log if m.phase == "load")
    unanswered = sum(1 for st in everyone for m in st.log if m.phase == "load" and not m.answered)
    report = (f"{backend}: {CYCLES} kills, each after {'/'.join(f'{x:.1f}' for x in loads)}s of load; "
              f"{sent_load} CALLs sent under load, {unanswered} unanswered at the kills; in the end "
              f"{len(db.sessions)} charging_session rows, {len(db.meter_values)} meter_value rows; "
              f"test took {time.monotonic() - t0:.1f}s\n{load_summary(everyone)}")
    failures = ""
    if lost:
        failures += f"after the crash and restart (answered = stored):\n{lost.report()}\n"
    if twice:
        failures += f"after the replay of the offline queues (stored exactly once):\n{twice.report()}\n"
    print(report + ("\n" + failures if failures else ""))
    assert not failures, f"crash recovery on {backend}:\n{failures}\n{report}"
