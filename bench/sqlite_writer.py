"""The batch writer's SQL alone on SQLite: CPU per MeterValues of its rows, with variants.

Writes what the server's batch writer writes for a closed loop of 200 stations (per call five
meter_value rows, two message_log rows, the session's progress; 100 calls per transaction) into
tables with the columns and indexes of ``meter_value``, ``message_log`` and ``charging_session``,
and prints the thread CPU time per call. Variants (any combination in the name): ``ckpt``
(``PRAGMA wal_autocheckpoint = 10000``), ``cache`` (``PRAGMA cache_size = -65536``), ``str``
(timestamps passed as text instead of through Piccolo's datetime adapter).

    python bench/sqlite_writer.py base 800; python bench/sqlite_writer.py ckpt 800
"""

from __future__ import annotations

import datetime
import json
import os
import random
import sqlite3
import sys
import tempfile
import time

import piccolo.engine.sqlite  # noqa: F401  registers the datetime adapter, as in the server

METER = ("INSERT INTO meter_value (session, station_id, evse_id, transaction_id, timestamp, measurand, phase, "
         "unit, context, location, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
FRAME = ("INSERT INTO message_log (station_id, direction, message_type, unique_id, action, payload, created_at) "
         "VALUES (?, ?, ?, ?, ?, ?, ?)")
PROGRESS = ("UPDATE charging_session SET meter_start_wh = ?, meter_last_wh = ?, energy_wh = ?, power_w = ?, "
            "last_seq_no = ?, charging_state = ?, updated_at = ? WHERE id = ?")
SCHEMA = """
CREATE TABLE meter_value (id INTEGER PRIMARY KEY, session INTEGER, station_id VARCHAR(64), evse_id INTEGER,
  transaction_id VARCHAR(64), timestamp DATETIME, measurand VARCHAR(64), phase VARCHAR(8), unit VARCHAR(20),
  context VARCHAR(32), location VARCHAR(16), value DOUBLE PRECISION);
CREATE INDEX meter_value_session ON meter_value (session);
CREATE INDEX meter_value_station_id ON meter_value (station_id);
CREATE TABLE message_log (id INTEGER PRIMARY KEY, station_id VARCHAR(64), direction VARCHAR(3),
  message_type INTEGER, unique_id VARCHAR(64), action VARCHAR(64), payload TEXT, created_at DATETIME);
CREATE INDEX message_log_station_id ON message_log (station_id);
CREATE INDEX message_log_action ON message_log (action);
CREATE INDEX message_log_created_at ON message_log (created_at);
CREATE TABLE charging_session (id INTEGER PRIMARY KEY, meter_start_wh REAL, meter_last_wh REAL, energy_wh REAL,
  power_w REAL, last_seq_no INTEGER, charging_state TEXT, updated_at DATETIME);
"""
MEASURANDS = ("Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Current.Import",
              "Current.Import")


def run(variant: str, batches: int, per_batch: int = 100, stations: int = 200) -> float:
    """CPU µs per call of writing ``batches`` transactions of ``per_batch`` calls."""
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(os.path.join(tmp, "bench.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if "ckpt" in variant:
            conn.execute("PRAGMA wal_autocheckpoint=10000")
        if "cache" in variant:
            conn.execute("PRAGMA cache_size=-65536")
        conn.executescript(SCHEMA)
        conn.executemany("INSERT INTO charging_session (id) VALUES (?)", [(i,) for i in range(1, stations + 1)])
        sampled = [{"value": 1234.5, "context": "Sample.Periodic", "measurand": m, "location": "Outlet",
                    "unitOfMeasure": {"unit": "Wh"}} for m in MEASURANDS]
        frame = json.dumps([2, "u" * 36, "MeterValues", {"evseId": 1, "meterValue": [
            {"timestamp": "2026-12-07T11:00:00.000Z", "sampledValue": sampled}]}])
        cpu = 0.0
        for _ in range(batches):
            grouped: dict[str, list[tuple]] = {METER: [], FRAME: [], PROGRESS: []}
            for _ in range(per_batch):
                n = random.randrange(stations)
                station = f"BENCH{n:05d}"
                now = datetime.datetime.now(datetime.timezone.utc)
                at: object = str(now) if "str" in variant else now
                for measurand in MEASURANDS:
                    grouped[METER].append((n + 1, station, 1, str(n), at, measurand, "L1", "A", "Sample.Periodic",
                                           "Outlet", 123.4))
                grouped[FRAME].append((station, "in", 2, "u" * 36, "MeterValues", frame, at))
                grouped[FRAME].append((station, "out", 3, "u" * 36, "MeterValues", '[3,"u",{}]', at))
                grouped[PROGRESS].append((1.0, 2.0, 1.0, 7000.0, 0, "Charging", at, n + 1))
            started = time.thread_time()
            conn.execute("BEGIN IMMEDIATE")
            for sql, rows in grouped.items():
                conn.executemany(sql, rows)
            conn.execute("COMMIT")
            cpu += time.thread_time() - started
        conn.close()
    return 1e6 * cpu / (batches * per_batch)


if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "base"
    print(f"{name}: {run(name, int(sys.argv[2]) if len(sys.argv) > 2 else 300):.1f} µs CPU per MeterValues")
