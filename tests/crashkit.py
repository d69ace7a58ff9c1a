"""A kit for crash tests: ``csms serve`` as a separate process that can be killed with SIGKILL
and restarted on the same database, stations speaking OCPP-J by hand over raw WebSockets that
record every CALL they send and what came back, and checks of that record against the
database read directly (sqlite3 on ``<data_dir>/csms.sqlite`` or asyncpg).

Used by ``tests/test_crash_recovery.py``; nothing here imports the server's own code.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from csms_tools.server_log import log_tail

ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
CURRENT = "Current.Import"
CALL_TIMEOUT = 30.0


# -- the server under test, in its own process ----------------------------------------------


class ServerProcess:
    """``python -m csms serve`` on a fixed data directory, database and port."""

    def __init__(self, data_dir: Path, port: int, database_url: str = "", *,
                 python: str = sys.executable, cwd: Path | None = None) -> None:
        self.python = python  # another environment's interpreter (tests/test_core_alone.py)
        self.cwd = cwd
        self.data_dir = data_dir
        self.port = port
        self.database_url = database_url
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "server.log"
        self.starts = 0
        data_dir.mkdir(parents=True, exist_ok=True)
        # nothing of the caller's CSMS_* settings leaks into the server
        env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
        env.update({"CSMS_DATA_DIR": str(data_dir), "CSMS_PORT": str(port), "CSMS_HOST": "127.0.0.1",
                    "CSMS_UNKNOWN_STATIONS": "accept", "CSMS_LOG_LEVEL": "warning",
                    "CSMS_DATABASE_URL": database_url})
        self.env = env

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, station_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{station_id}"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "csms.sqlite"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def create_api_key(self) -> str:
        proc = await asyncio.create_subprocess_exec(
            self.python, "-m", "csms", "apikey", "create", "--name", "crash-test", env=self.env, cwd=self.cwd,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"csms apikey create failed: {err.decode(errors='replace')[-2000:]}")
        return out.decode().strip().splitlines()[-1]

    async def start(self, timeout: float = 60.0) -> None:
        assert self.process is None or self.process.poll() is not None
        self.starts += 1
        with open(self.log_path, "ab") as log_file:
            log_file.write(f"\n===== start {self.starts} =====\n".encode())
            log_file.flush()
            self.process = subprocess.Popen(
                [self.python, "-m", "csms", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env, cwd=self.cwd, stdout=log_file, stderr=subprocess.STDOUT)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"csms serve exited with {self.process.returncode}:\n{self.log_tail()}")
                try:
                    if (await client.get(f"{self.http_url}/api/v1/health")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if loop.time() > deadline:
                    raise RuntimeError(f"csms serve did not come up in {timeout}s:\n{self.log_tail()}")
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no flush, no goodbye to the stations."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, size: int = 4000) -> str:
        return log_tail(self.log_path, size)


async def create_tokens(base_url: str, api_key: str, tokens: list[str]) -> None:
    async with httpx.AsyncClient(base_url=f"{base_url}/api/v1", headers={"Authorization": f"Bearer {api_key}"},
                                 timeout=30) as client:
        for token in tokens:
            r = await client.post("/tokens", json={"id_token": token, "type": "ISO14443"})
            if r.status_code not in (200, 201):
                raise RuntimeError(f"creating token {token}: HTTP {r.status_code} {r.text[:300]}")


# -- what the stations send and what came back -------------------------------------------------


def ocpp_time(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_time(value: Any) -> datetime:
    """A timestamp from OCPP or from either database, as an aware UTC datetime."""
    if isinstance(value, datetime):
        t = value
    else:
        text = str(value).strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc)


@dataclass(frozen=True)
class SampleKey:
    timestamp: datetime
    measurand: str
    phase: str
    value: float


def samples_of(action: str, payload: dict[str, Any]) -> list[SampleKey]:
    """The sampled values a transaction message carries (both versions)."""
    if action == "MeterValues":
        groups = payload.get("meterValue") or []
    elif action == "StopTransaction":
        groups = payload.get("transactionData") or []
    elif action == "TransactionEvent":
        groups = payload.get("meterValue") or []
    else:
        return []
    out = []
    for mv in groups:
        ts = parse_time(mv["timestamp"])
        for sv in mv["sampledValue"]:
            out.append(SampleKey(ts, sv.get("measurand", ENERGY), sv.get("phase", ""), float(sv["value"])))
    return out


@dataclass
class Sent:
    """One CALL a station sent, and its outcome: ``result`` (CALLRESULT), ``error`` (CALLERROR)
    or ``lost`` (the connection died or nothing came back)."""

    station_id: str
    version: str
    phase: str  # load | queue (the offline queue after the restart) | replay (the whole log again)
    uid: str
    action: str
    payload: dict[str, Any]
    tx: Tx | None = None
    outcome: str = "pending"
    response: Any = None
    replay_of: Sent | None = None
    expected_transaction_id: str | None = None  # a replayed StartTransaction: the id the station knows

    @property
    def answered(self) -> bool:
        return self.outcome == "result"

    @property
    def label(self) -> str:
        p = self.payload
        if self.action == "TransactionEvent":
            return (f"{self.station_id} TransactionEvent {p['eventType']} tx {p['transactionInfo']['transactionId']} "
                    f"seqNo {p['seqNo']} ({self.phase}, uid {self.uid})")
        if self.action == "StartTransaction":
            return (f"{self.station_id} StartTransaction connector {p['connectorId']} at {p['timestamp']} "
                    f"meterStart {p['meterStart']} ({self.phase}, uid {self.uid})")
        if self.action in ("MeterValues", "StopTransaction"):
            ts = p.get("timestamp") or (p.get("meterValue") or [{}])[0].get("timestamp")
            return f"{self.station_id} {self.action} tx {p.get('transactionId')} at {ts} ({self.phase}, uid {self.uid})"
        return f"{self.station_id} {self.action} ({self.phase}, uid {self.uid})"


@dataclass
class Tx:
    """One transaction as the station knows it."""

    station_id: str
    version: str
    key: str  # 2.0.1: the transaction id; 1.6: a local name
    start_ts: datetime
    meter_start: float
    evse_id: int = 1
    id_tag: str = ""
    transaction_id: str | None = None  # 1.6: from the StartTransaction answer
    stop_ts: datetime | None = None
    meter_stop: float | None = None
    last_energy: float = 0.0
    last_seq_no: int = -1
    messages: list[Sent] = field(default_factory=list)

    def message(self, action: str, *, event_type: str | None = None) -> Sent | None:
        for m in self.messages:
            if m.phase == "load" and m.action == action and (
                    event_type is None or m.payload.get("eventType") == event_type):
                return m
        return None

    @property
    def start_message(self) -> Sent | None:
        return self.message("StartTransaction") if self.version == "1.6" else \
            self.message("TransactionEvent", event_type="Started")

    @property
    def stop_message(self) -> Sent | None:
        return self.message("StopTransaction") if self.version == "1.6" else \
            self.message("TransactionEvent", event_type="Ended")


class Offline(Exception):
    """The connection to the CSMS is gone (or a CALL got no answer in time)."""


class CallErrorReceived(Exception):
    pass


TRANSACTION_ACTIONS = {"StartTransaction", "MeterValues", "StopTransaction", "TransactionEvent"}


class RawStation:
    """A charging station speaking OCPP-J frames by hand: one CALL in flight at a time, every
    CALL recorded with its outcome; CALLs from the CSMS are refused with NotImplemented."""

    def __init__(self, station_id: str, version: str, *, id_tag: str, clock_start: datetime,
                 meters_per_tx: int) -> None:
        self.station_id = station_id
        self.version = version
        self.id_tag = id_tag
        self.clock = clock_start
        self.meters_per_tx = meters_per_tx
        self.energy = 10_000.0  # Wh: the register only grows, across transactions
        self.log: list[Sent] = []
        self.txs: list[Tx] = []
        self.ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[list[Any]]] = {}
        self._counter = 0
        self.phase = "load"
        self.completed_transactions = 0
        self.stopping = False
        self.server_calls: list[list[Any]] = []

    # -- transport ------------------------------------------------------------------------------

    async def connect(self, url: str) -> None:
        sub = "ocpp1.6" if self.version == "1.6" else "ocpp2.0.1"
        self.ws = await connect(url, subprotocols=[sub], open_timeout=20, ping_interval=None, compression=None,
                                max_size=None)
        assert self.ws.subprotocol == sub, self.ws.subprotocol
        self._reader = asyncio.create_task(self._read(self.ws))

    async def close(self) -> None:
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 5)
            except (asyncio.TimeoutError, WebSocketException, OSError):
                pass
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass
        self.ws = None
        self._reader = None

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                msg = json.loads(raw)
                if msg[0] == 2:  # a command from the CSMS: not what this test is about
                    self.server_calls.append(msg)
                    await ws.send(json.dumps([4, msg[1], "NotImplemented", "crash-test station", {}]))
                elif msg[0] in (3, 4):
                    fut = self._pending.pop(msg[1], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
        except (ConnectionClosed, OSError):
            pass
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(Offline("connection closed"))
            self._pending.clear()

    async def call(self, action: str, payload: dict[str, Any], *, tx: Tx | None = None,
                   replay_of: Sent | None = None) -> dict[str, Any]:
        self._counter += 1
        uid = f"{self.station_id}-{self.phase[0]}{self._counter}"
        rec = Sent(self.station_id, self.version, self.phase, uid, action, payload, tx=tx, replay_of=replay_of)
        self.log.append(rec)
        if tx is not None and self.phase == "load":
            tx.messages.append(rec)
        if self.ws is None or self._reader is None or self._reader.done():
            rec.outcome = "lost"
            raise Offline("not connected")
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending[uid] = fut
        try:
            await self.ws.send(json.dumps([2, uid, action, payload]))
            msg = await asyncio.wait_for(fut, CALL_TIMEOUT)
        except (ConnectionClosed, OSError, Offline, asyncio.TimeoutError) as exc:
            self._pending.pop(uid, None)
            rec.outcome = "lost"
            raise Offline(repr(exc)) from exc
        if msg[0] == 3:
            rec.outcome, rec.response = "result", msg[2]
            return msg[2]
        rec.outcome, rec.response = "error", msg[2:]
        raise CallErrorReceived(f"{rec.label}: {msg[2:]}")

    # -- the station's life ---------------------------------------------------------------------

    def tick(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def _meter_energy(self, step: float) -> float:
        self.energy += step
        return self.energy

    async def run_load(self) -> None:
        """Boot, report status, then transactions back to back until the connection dies."""
        try:
            if self.version == "1.6":
                await self._load_16()
            else:
                await self._load_201()
        except (Offline, CallErrorReceived):
            return

    async def _load_16(self) -> None:
        sid = self.station_id
        r = await self.call("BootNotification", {"chargePointVendor": "CrashTest", "chargePointModel": "Raw16"})
        assert r["status"] == "Accepted", r
        await self.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available",
                                               "timestamp": ocpp_time(self.tick())})
        n = 0
        while not self.stopping:
            n += 1
            await self.call("Authorize", {"idTag": self.id_tag})
            start = self.tick()
            tx = Tx(sid, "1.6", f"{sid}#{n}", start, self.energy, id_tag=self.id_tag, last_energy=self.energy)
            self.txs.append(tx)
            r = await self.call("StartTransaction", {"connectorId": 1, "idTag": self.id_tag,
                                                     "meterStart": int(self.energy), "timestamp": ocpp_time(start)},
                                tx=tx)
            tx.transaction_id = str(r["transactionId"])
            await self.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging",
                                                   "timestamp": ocpp_time(self.tick())})
            for i in range(self.meters_per_tx):
                ts = self.tick()
                e = self._meter_energy(150 + 10 * i)
                tx.last_energy = e
                await self.call("MeterValues", {"connectorId": 1, "transactionId": r["transactionId"], "meterValue": [
                    {"timestamp": ocpp_time(ts), "sampledValue": [
                        {"value": f"{e:.0f}", "measurand": ENERGY, "unit": "Wh", "context": "Sample.Periodic"},
                        {"value": f"{7000 + 50 * i:.0f}", "measurand": POWER, "unit": "W",
                         "context": "Sample.Periodic"},
                        {"value": f"{10 + i / 2:.1f}", "measurand": CURRENT, "phase": "L1", "unit": "A",
                         "context": "Sample.Periodic"},
                    ]}]}, tx=tx)
            stop = self.tick()
            e = self._meter_energy(120)
            tx.stop_ts, tx.meter_stop, tx.last_energy = stop, e, e
            await self.call("StopTransaction", {
                "transactionId": r["transactionId"], "idTag": self.id_tag, "meterStop": int(e),
                "timestamp": ocpp_time(stop), "reason": "Local",
                "transactionData": [{"timestamp": ocpp_time(stop), "sampledValue": [
                    {"value": f"{e:.0f}", "measurand": ENERGY, "unit": "Wh", "context": "Transaction.End"}]}],
            }, tx=tx)
            self.completed_transactions += 1
            await self.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available",
                                                   "timestamp": ocpp_time(self.tick())})

    async def _load_201(self) -> None:
        sid = self.station_id
        r = await self.call("BootNotification", {"chargingStation": {"vendorName": "CrashTest", "model": "Raw201"},
                                                 "reason": "PowerUp"})
        assert r["status"] == "Accepted", r
        await self.call("StatusNotification", {"timestamp": ocpp_time(self.tick()), "connectorStatus": "Available",
                                               "evseId": 1, "connectorId": 1})
        n = 0
        while not self.stopping:
            n += 1
            tx_id = f"{sid}-T{n:04d}"
            start = self.tick()
            tx = Tx(sid, "2.0.1", tx_id, start, self.energy, id_tag=self.id_tag, transaction_id=tx_id,
                    last_energy=self.energy)
            self.txs.append(tx)
            seq = 0
            await self.call("TransactionEvent", {
                "eventType": "Started", "timestamp": ocpp_time(start), "triggerReason": "Authorized", "seqNo": seq,
                "transactionInfo": {"transactionId": tx_id, "chargingState": "Charging"},
                "idToken": {"idToken": self.id_tag, "type": "ISO14443"}, "evse": {"id": 1, "connectorId": 1},
                "meterValue": [{"timestamp": ocpp_time(start), "sampledValue": [
                    {"value": self.energy, "measurand": ENERGY, "context": "Transaction.Begin",
                     "unitOfMeasure": {"unit": "Wh"}}]}],
            }, tx=tx)
            tx.last_seq_no = seq
            await self.call("StatusNotification", {"timestamp": ocpp_time(self.tick()), "connectorStatus": "Occupied",
                                                   "evseId": 1, "connectorId": 1})
            for i in range(self.meters_per_tx):
                seq += 1
                ts = self.tick()
                e = self._meter_energy(150 + 10 * i)
                tx.last_energy, tx.last_seq_no = e, seq
                await self.call("TransactionEvent", {
                    "eventType": "Updated", "timestamp": ocpp_time(ts), "triggerReason": "MeterValuePeriodic",
                    "seqNo": seq, "transactionInfo": {"transactionId": tx_id, "chargingState": "Charging"},
                    "meterValue": [{"timestamp": ocpp_time(ts), "sampledValue": [
                        {"value": e, "measurand": ENERGY, "context": "Sample.Periodic", "unitOfMeasure": {"unit": "Wh"}},
                        {"value": 7000 + 50 * i, "measurand": POWER, "context": "Sample.Periodic",
                         "unitOfMeasure": {"unit": "W"}},
                        {"value": 10 + i / 2, "measurand": CURRENT, "phase": "L1", "context": "Sample.Periodic",
                         "unitOfMeasure": {"unit": "A"}},
                    ]}],
                }, tx=tx)
            seq += 1
            stop = self.tick()
            e = self._meter_energy(120)
            tx.stop_ts, tx.meter_stop, tx.last_energy, tx.last_seq_no = stop, e, e, seq
            await self.call("TransactionEvent", {
                "eventType": "Ended", "timestamp": ocpp_time(stop), "triggerReason": "StopAuthorized", "seqNo": seq,
                "transactionInfo": {"transactionId": tx_id, "chargingState": "EVConnected", "stoppedReason": "Local"},
                "meterValue": [{"timestamp": ocpp_time(stop), "sampledValue": [
                    {"value": e, "measurand": ENERGY, "context": "Transaction.End", "unitOfMeasure": {"unit": "Wh"}}]}],
            }, tx=tx)
            self.completed_transactions += 1
            await self.call("StatusNotification", {"timestamp": ocpp_time(self.tick()), "connectorStatus": "Available",
                                                   "evseId": 1, "connectorId": 1})

    def transaction_log(self) -> list[Sent]:
        """Every transaction-related message of the load phase, answered or not, in order."""
        return [s for s in self.log if s.phase == "load" and s.action in TRANSACTION_ACTIONS]

    def offline_queue(self) -> list[Sent]:
        """What a station still has to deliver after it reconnects: the transaction messages
        that got no CALLRESULT, in order."""
        return [s for s in self.transaction_log() if not s.answered]

    async def replay(self, messages: list[Sent], phase: str) -> None:
        """Send ``messages`` again as a station does after it reconnects: 2.0.1 events with
        ``offline: true`` and the same seqNo, 1.6 messages with the same content."""
        self.phase = phase
        for original in messages:
            payload = json.loads(json.dumps(original.payload))
            if self.version == "2.0.1":
                payload["offline"] = True
            tx = original.tx
            expected = tx.transaction_id if tx is not None else None
            try:
                r = await self.call(original.action, payload, tx=tx, replay_of=original)
            except CallErrorReceived:
                continue
            if original.action == "StartTransaction" and tx is not None:
                got = str(r["transactionId"])
                self.log[-1].expected_transaction_id = expected
                if expected is None:
                    # the start was never answered: the station learns its transaction id only now
                    tx.transaction_id = got


# -- the database, read directly ---------------------------------------------------------------


@dataclass
class Snapshot:
    stations: dict[int, str]  # pk -> station_id
    sessions: list[dict[str, Any]]
    meter_values: list[dict[str, Any]]

    def __post_init__(self) -> None:
        for s in self.sessions:
            s["station_id"] = self.stations.get(s["station"], f"pk{s['station']}")
            s["started_at"] = parse_time(s["started_at"]) if s["started_at"] is not None else None
            s["stopped_at"] = parse_time(s["stopped_at"]) if s["stopped_at"] is not None else None
        for m in self.meter_values:
            m["timestamp"] = parse_time(m["timestamp"])
            m["phase"] = m["phase"] or ""
        self.sessions_by_tx: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for s in self.sessions:
            self.sessions_by_tx[(s["station_id"], s["transaction_id"])].append(s)
        self.meter_count: Counter[tuple[Any, ...]] = Counter()
        self.meter_rows: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
        for m in self.meter_values:
            key = (m["station_id"], m["evse_id"], m["timestamp"], m["measurand"], m["phase"], float(m["value"]))
            self.meter_count[key] += 1
            self.meter_rows[key].append(m)

    def sample_count(self, station_id: str, evse_id: int, s: SampleKey) -> int:
        return self.meter_count[(station_id, evse_id, s.timestamp, s.measurand, s.phase, s.value)]

    def sample_rows(self, station_id: str, evse_id: int, s: SampleKey) -> list[dict[str, Any]]:
        return self.meter_rows.get((station_id, evse_id, s.timestamp, s.measurand, s.phase, s.value), [])


_SESSION_COLUMNS = ("id, station, evse_id, connector_id, transaction_id, id_token, state, started_at, stopped_at, "
                    "meter_start_wh, meter_stop_wh, meter_last_wh, energy_wh, stop_reason, last_seq_no, flags")
_METER_COLUMNS = "id, session, station_id, evse_id, transaction_id, timestamp, measurand, phase, value"


async def read_database(database_url: str, sqlite_path: Path) -> Snapshot:
    if database_url:
        import asyncpg

        conn = await asyncpg.connect(database_url)
        try:
            stations = {r["id"]: r["station_id"] for r in await conn.fetch("SELECT id, station_id FROM station")}
            sessions = [dict(r) for r in await conn.fetch(f"SELECT {_SESSION_COLUMNS} FROM charging_session")]
            meters = [dict(r) for r in await conn.fetch(f"SELECT {_METER_COLUMNS} FROM meter_value")]
        finally:
            await conn.close()
        return Snapshot(stations, sessions, meters)

    def read() -> Snapshot:
        conn = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True, timeout=30)
        conn.row_factory = sqlite3.Row
        try:
            stations = {r["id"]: r["station_id"] for r in conn.execute("SELECT id, station_id FROM station")}
            sessions = [dict(r) for r in conn.execute(f"SELECT {_SESSION_COLUMNS} FROM charging_session")]
            meters = [dict(r) for r in conn.execute(f"SELECT {_METER_COLUMNS} FROM meter_value")]
        finally:
            conn.close()
        return Snapshot(stations, sessions, meters)

    return await asyncio.to_thread(read)


# -- the checks --------------------------------------------------------------------------------


class Findings:
    """Failures by category, each with a count and a few examples."""

    def __init__(self) -> None:
        self.items: dict[str, list[str]] = defaultdict(list)

    def add(self, category: str, example: str) -> None:
        self.items[category].append(example)

    def __bool__(self) -> bool:
        return bool(self.items)

    def report(self, examples: int = 3) -> str:
        lines = []
        for category, found in self.items.items():
            lines.append(f"- {category}: {len(found)}")
            lines += [f"    e.g. {e}" for e in found[:examples]]
        return "\n".join(lines)


def _close(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) < 1e-6


def _session_text(s: dict[str, Any]) -> str:
    return (f"charging_session id={s['id']} tx={s['transaction_id']} state={s['state']} "
            f"started_at={s['started_at']} stopped_at={s['stopped_at']} meter_start_wh={s['meter_start_wh']} "
            f"meter_stop_wh={s['meter_stop_wh']} meter_last_wh={s['meter_last_wh']} energy_wh={s['energy_wh']} "
            f"flags={s['flags']}")


def _stop_problems(tx: Tx, s: dict[str, Any]) -> list[str]:
    problems = []
    if s["state"] != "completed":
        problems.append(f"state {s['state']!r}")
    if not _close(s["meter_stop_wh"], tx.meter_stop):
        problems.append(f"meter_stop_wh {s['meter_stop_wh']} != {tx.meter_stop}")
    if tx.meter_stop is not None and not _close(s["energy_wh"], tx.meter_stop - tx.meter_start):
        problems.append(f"energy_wh {s['energy_wh']} != {tx.meter_stop - tx.meter_start}")
    if s["stopped_at"] != tx.stop_ts:
        problems.append(f"stopped_at {s['stopped_at']} != {tx.stop_ts}")
    return problems


def check_answered(stations: list[RawStation], db: Snapshot, findings: Findings) -> dict[str, int]:
    """After the crash and restart: everything a station got a CALLRESULT for is in the database."""
    answered = Counter()
    for st in stations:
        for m in st.log:
            if m.phase != "load":
                continue
            if m.outcome == "error":
                findings.add("CALLERROR during load", f"{m.label}: {m.response}")
            if not m.answered or m.action not in TRANSACTION_ACTIONS:
                continue
            answered[m.action] += 1
            tx = m.tx
            assert tx is not None
            rows = db.sessions_by_tx.get((st.station_id, tx.transaction_id), []) if tx.transaction_id else []
            is_start = m.action == "StartTransaction" or m.payload.get("eventType") == "Started"
            is_stop = m.action == "StopTransaction" or m.payload.get("eventType") == "Ended"
            if not rows:
                findings.add("answered transaction message whose session is missing (charging_session)",
                             f"{m.label}: no charging_session with transaction_id {tx.transaction_id}")
            elif is_start and not any(r["started_at"] == tx.start_ts and _close(r["meter_start_wh"], tx.meter_start)
                                      for r in rows):
                findings.add("answered start stored with another start time or meter (charging_session)",
                             f"{m.label}: {_session_text(rows[0])}")
            if is_stop and rows:
                good = [r for r in rows if not _stop_problems(tx, r)]
                if not good:
                    findings.add("answered StopTransaction/Ended but the session is not completed with its stop "
                                 "(charging_session)", f"{m.label}: {', '.join(_stop_problems(tx, rows[0]))}; "
                                                       f"{_session_text(rows[0])}")
            missing = [s for s in samples_of(m.action, m.payload) if not db.sample_count(st.station_id, tx.evse_id, s)]
            if missing:
                findings.add("answered message with sampled values missing from meter_value",
                             f"{m.label}: {len(missing)} of {len(samples_of(m.action, m.payload))} missing, "
                             f"e.g. {missing[0]}")
            for s in samples_of(m.action, m.payload):
                for row in db.sample_rows(st.station_id, tx.evse_id, s):
                    if row["transaction_id"] != tx.transaction_id:
                        findings.add("answered sampled value stored without its transaction id (meter_value)",
                                     f"{m.label}: meter_value id={row['id']} transaction_id="
                                     f"{row['transaction_id']!r}, expected {tx.transaction_id!r}")
    return dict(answered)


def check_after_replay(stations: list[RawStation], db: Snapshot, findings: Findings) -> None:
    """After the offline queues were replayed: everything stored exactly once, sessions right."""
    for st in stations:
        for m in st.log:
            if m.phase == "load":
                continue
            if not m.answered:
                findings.add("replayed message not answered with a CALLRESULT", f"{m.label}: {m.outcome} {m.response}")
            elif m.action == "StartTransaction" and m.expected_transaction_id is not None and \
                    str(m.response.get("transactionId")) != m.expected_transaction_id:
                findings.add("replayed StartTransaction answered with another transaction id",
                             f"{m.label}: {m.response.get('transactionId')} instead of {m.expected_transaction_id}")

    # meter_value: one row per (station, evse, timestamp, measurand, phase)
    groups: Counter[tuple[Any, ...]] = Counter(
        (m["station_id"], m["evse_id"], m["timestamp"], m["measurand"], m["phase"]) for m in db.meter_values)
    for key, n in groups.items():
        if n > 1:
            findings.add("meter_value rows stored more than once (same station, evse, timestamp, measurand, phase)",
                         f"{key[0]} evse {key[1]} {key[2].isoformat()} {key[3]} phase {key[4]!r}: {n} rows")

    # each message of the load phase (all now answered at least once) stored exactly once
    for st in stations:
        for m in st.transaction_log():
            tx = m.tx
            assert tx is not None
            samples = samples_of(m.action, m.payload)
            counts = [db.sample_count(st.station_id, tx.evse_id, s) for s in samples]
            if any(c > 1 for c in counts):
                what = ("2.0.1 TransactionEvent seqNo stored more than once" if st.version == "2.0.1"
                        else f"1.6 {m.action} stored more than once")
                findings.add(f"{what} (meter_value)", f"{m.label} (originally {m.outcome}): sampled values stored "
                                                      f"{max(counts)}x")
            if any(c == 0 for c in counts):
                findings.add("sampled value missing after the replay (meter_value)",
                             f"{m.label} (originally {m.outcome}): {counts.count(0)} of {len(counts)} missing")

    # charging_session: one row per (station, transaction id) and per 1.6 start
    for (station_id, tx_id), rows in db.sessions_by_tx.items():
        if len(rows) > 1:
            findings.add("charging_session stored more than once (same station and transaction id)",
                         f"{station_id} tx {tx_id}: {len(rows)} rows: " + "; ".join(_session_text(r) for r in rows))
    for s in db.sessions:
        if not s["transaction_id"]:
            findings.add("charging_session without a transaction id", f"{s['station_id']}: {_session_text(s)}")
    starts: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for s in db.sessions:
        if s["meter_start_wh"] is not None:
            starts[(s["station_id"], s["evse_id"], s["id_token"], s["started_at"], float(s["meter_start_wh"]))].append(s)
    for key, rows in starts.items():
        if len(rows) > 1:
            findings.add("charging_session stored more than once (same start: station, evse, id token, start time, "
                         "meter)", f"{key[0]} started {key[3]}: transaction ids {[r['transaction_id'] for r in rows]}")

    for st in stations:
        for tx in st.txs:
            if tx.start_message is None:
                continue
            rows = db.sessions_by_tx.get((st.station_id, tx.transaction_id), []) if tx.transaction_id else []
            label = f"{st.station_id} tx {tx.transaction_id} ({tx.key})"
            if not rows:
                findings.add("transaction without its charging_session after the replay", label)
                continue
            stop = tx.stop_message
            if stop is not None:
                bad = [(r, _stop_problems(tx, r)) for r in rows if _stop_problems(tx, r)]
                if bad:
                    r, problems = bad[0]
                    findings.add("stopped transaction not completed once with the right stop and energy "
                                 "(charging_session)", f"{label} (stop originally {stop.outcome}): "
                                                       f"{', '.join(problems)}; {_session_text(r)}")
            else:
                for r in rows:
                    problems = []
                    if r["state"] != "active":
                        problems.append(f"state {r['state']!r}")
                    if not _close(r["meter_last_wh"], tx.last_energy):
                        problems.append(f"meter_last_wh {r['meter_last_wh']} != last sent {tx.last_energy}")
                    if not _close(r["meter_start_wh"], tx.meter_start):
                        problems.append(f"meter_start_wh {r['meter_start_wh']} != {tx.meter_start}")
                    if problems:
                        findings.add("running transaction with wrong live figures after the replay "
                                     "(charging_session)", f"{label}: {', '.join(problems)}; {_session_text(r)}")


def load_summary(stations: list[RawStation]) -> str:
    by: Counter[tuple[str, str, str]] = Counter()
    for st in stations:
        for m in st.log:
            by[(m.phase, m.action, m.outcome)] += 1
    lines = []
    for phase in ("load", "queue", "replay"):
        actions = sorted({a for p, a, _ in by if p == phase})
        for a in actions:
            outcomes = ", ".join(f"{o} {by[(phase, a, o)]}" for o in ("result", "error", "lost", "pending")
                                 if by[(phase, a, o)])
            lines.append(f"  {phase:6} {a:18} {outcomes}")
    return "\n".join(lines)
