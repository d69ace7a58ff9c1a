#!/usr/bin/env python3
"""Three ``csms serve`` nodes behind HAProxy, stations of both versions, one node killed under load.

What it does (see bench/README.md, "Three nodes behind a load balancer"):

1. a fresh PostgreSQL database and a Redis database index of its own (claimed as the tests claim
   theirs, so a test run at the same time never shares it); ``csms migrate``; an API key;
2. three ``csms serve`` nodes on loopback (distinct ``CSMS_NODE_ID``, short ``CSMS_NODE_TTL`` and
   ``CSMS_LEADER_LEASE``), started one after the other;
3. HAProxy (Debian's, run in the foreground from a temporary directory with its own config): HTTP
   mode (the WebSocket upgrade is passed through, then ``timeout tunnel`` applies), ``leastconn``,
   health checks on ``/api/v1/health``, ``on-marked-down shutdown-sessions``, ``redispatch``;
4. simulated stations (``csms_tools.simulator.SimStation``, half 1.6 half 2.0.1) through HAProxy,
   each sending the ``csms bench`` message mix at a steady pace and recording every CALL it sent
   and what came back; a station whose socket is lost reconnects through HAProxy as a real one
   does (``SimStation.reconnect``: the OCPP 2.0.1 back-off, a minimum wait plus a random range),
   boots and reports its connectors again, and its sessions go on;
5. at ``--kill-at`` s one node (the leader of the smart-charging job by default) gets SIGKILL;
6. checks, printed at the end (exit status 1 when one fails): every CALL answered with a
   CALLRESULT is in the database (meter values by station, timestamp, measurand and phase;
   sessions started and stopped; status notifications as station events); no station reported
   connected on the dead node (REST ``connected_node``, Redis presence hash) after 2 x TTL; every
   station of the dead node back within its own reconnect delay plus ``--margin``; the stations
   on the surviving nodes never lost their socket; at the end the stations connected, the
   database and the presence hash agree. Figures: calls/s and p50/p99 before and after the kill,
   reconnect times, which node led each background job before and after.

Usage (PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379, ``apt-get install haproxy``)::

    .venv/bin/python bench/cluster_lb.py                      # 300 stations, 40 s, kill at 15 s
    .venv/bin/python bench/cluster_lb.py --stations 100 --duration 30 --kill-at 10 --kill node2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from websockets.exceptions import ConnectionClosed, WebSocketException  # noqa: E402

from csms_tools.bench import _mix_step, create_tokens, percentile  # noqa: E402
from csms_tools.simulator import (  # noqa: E402
    Backoff,
    CallError,
    SessionRejected,
    SimStation,
    install_uvloop,
    raise_fd_limit,
    station_versions,
)

METRICS_TOKEN = "cluster-lb-bench"
PRESENCE = "csms:presence"
TRANSACTION_ACTIONS = {"StartTransaction", "StopTransaction", "MeterValues", "TransactionEvent"}


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        t = value
    else:
        text = str(value)
        t = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc)


# -- the cluster ---------------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Cluster:
    def __init__(self, args: argparse.Namespace, workdir: Path, database_url: str, redis_url: str) -> None:
        self.args = args
        self.workdir = workdir
        self.database_url = database_url
        self.redis_url = redis_url
        suffix = uuid.uuid4().hex[:4]
        self.nodes = [Node(f"lb{suffix}-node{i}", free_port(), workdir / f"node{i}") for i in range(1, 4)]
        self.lb_port = free_port()
        self.stats_port = free_port()
        self.haproxy: subprocess.Popen[bytes] | None = None
        self.api_key = ""

    def env(self, node: Node | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
        env.update({"CSMS_DATABASE_URL": self.database_url, "CSMS_REDIS_URL": self.redis_url,
                    "CSMS_UNKNOWN_STATIONS": "accept", "CSMS_LOG_LEVEL": "warning",
                    "CSMS_NODE_TTL": str(self.args.ttl), "CSMS_LEADER_LEASE": str(self.args.lease),
                    "CSMS_METRICS_TOKEN": METRICS_TOKEN, "CSMS_HOST": "127.0.0.1",
                    "CSMS_DATA_DIR": str((node.data_dir if node else self.workdir / "cli"))})
        if node is not None:
            env.update({"CSMS_NODE_ID": node.name, "CSMS_PORT": str(node.port)})
        return env

    def cli(self, *argv: str) -> str:
        (self.workdir / "cli").mkdir(exist_ok=True)
        done = subprocess.run([sys.executable, "-m", "csms", *argv], env=self.env(), capture_output=True, text=True,
                              cwd=ROOT)
        if done.returncode != 0:
            raise RuntimeError(f"csms {' '.join(argv)} failed: {done.stderr[-2000:]}")
        return done.stdout

    async def start_node(self, node: Node) -> None:
        node.data_dir.mkdir(parents=True, exist_ok=True)
        with open(node.data_dir / "server.log", "ab") as out:
            node.process = subprocess.Popen(
                [sys.executable, "-m", "csms", "serve", "--host", "127.0.0.1", "--port", str(node.port)],
                env=self.env(node), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        await wait_http(f"{node.url}/api/v1/health", node.process)

    def write_haproxy_config(self) -> Path:
        servers = "\n".join(f"    server {n.name} 127.0.0.1:{n.port} check" for n in self.nodes)
        config = f"""# written by bench/cluster_lb.py
global
    maxconn 4000

defaults
    mode http
    option redispatch          # a connection refused by a dead node is retried on another
    retries 2
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    # After the WebSocket upgrade only this applies: a socket silent this long is closed. The
    # CSMS pings every 30 s (CSMS_PING_INTERVAL), so live stations stay; half-open ones go.
    timeout tunnel 90s
    timeout client-fin 5s
    timeout server-fin 5s

frontend ocpp
    bind 127.0.0.1:{self.lb_port}
    default_backend csms

backend csms
    balance {self.args.balance}
    option httpchk GET /api/v1/health
    http-check expect status 200
    # a node is out after 2 failed checks 0.5 s apart; its sessions are cut at once
    default-server inter 500ms fastinter 250ms downinter 1s fall 2 rise 2 on-marked-down shutdown-sessions
{servers}

listen stats
    bind 127.0.0.1:{self.stats_port}
    stats enable
    stats uri /stats
"""
        path = self.workdir / "haproxy.cfg"
        path.write_text(config)
        return path

    async def start_haproxy(self) -> None:
        path = self.write_haproxy_config()
        check = subprocess.run([self.args.haproxy, "-c", "-q", "-f", str(path)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy config refused: {check.stderr}")
        with open(self.workdir / "haproxy.log", "ab") as out:
            self.haproxy = subprocess.Popen([self.args.haproxy, "-db", "-f", str(path)], stdout=out,
                                            stderr=subprocess.STDOUT)
        await wait_http(f"http://127.0.0.1:{self.lb_port}/api/v1/health", self.haproxy)
        for _ in range(100):  # every server UP (rise 2 x 0.5 s)
            if all(state == "UP" for state in (await self.backend_states()).values()):
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"haproxy servers not all up: {await self.backend_states()}")

    async def backend_states(self) -> dict[str, str]:
        async with httpx.AsyncClient(timeout=2) as client:
            text = (await client.get(f"http://127.0.0.1:{self.stats_port}/stats;csv")).text
        lines = text.lstrip("# ").splitlines()
        head = lines[0].split(",")
        out = {}
        for line in lines[1:]:
            row = dict(zip(head, line.split(",")))
            if row.get("pxname") == "csms" and row.get("svname") not in ("FRONTEND", "BACKEND"):
                out[row["svname"]] = row.get("status", "")
        return out

    async def metrics(self, node: Node) -> dict[str, Any]:
        """This node's leader gauges and connected stations, from its /metrics."""
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(f"{node.url}/metrics",
                                     headers={"Authorization": f"Bearer {METRICS_TOKEN}"})).text
        leads = sorted(m.group(1) for m in re.finditer(r'^csms_leader\{job="([^"]+)"\} 1(?:\.0)?$', text, re.M))
        connected = sum(float(m.group(1)) for m in
                        re.finditer(r'^csms_connected_stations\{[^}]*\} ([0-9.e+]+)$', text, re.M))
        return {"leads": leads, "connected": int(connected)}

    def stop(self) -> None:
        for proc in [n.process for n in self.nodes] + [self.haproxy]:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in [n.process for n in self.nodes] + [self.haproxy]:
            if proc is not None:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


async def wait_http(url: str, proc: subprocess.Popen[bytes] | None, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(url)


async def claim_redis_db(base: str, wanted: int | None) -> tuple[str, int, str]:
    """A Redis database index of our own, claimed in db 0 as tests/clusterkit.py claims its own."""
    claim = f"bench-cluster-lb-{uuid.uuid4().hex[:8]}"
    registry = aioredis.from_url(f"{base}/0")
    try:
        for index in ([wanted] if wanted is not None else range(15, 0, -1)):
            if await registry.set(f"csms-test:redis-db:{index}", claim, nx=True, ex=900):
                return f"{base}/{index}", index, claim
    finally:
        await registry.aclose()
    raise RuntimeError("no free Redis database index (every one claimed)")


async def release_redis_db(base: str, index: int, claim: str, url: str) -> None:
    client = aioredis.from_url(url)
    registry = aioredis.from_url(f"{base}/0")
    try:
        await client.flushdb()
        if (await registry.get(f"csms-test:redis-db:{index}")) == claim.encode():
            await registry.delete(f"csms-test:redis-db:{index}")
    finally:
        await client.aclose()
        await registry.aclose()


async def fresh_database(server_url: str, name: str) -> str:
    conn = await asyncpg.connect(f"{server_url}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{server_url}/{name}"


# -- the stations --------------------------------------------------------------------------------


@dataclass
class Sent:
    action: str
    payload: dict[str, Any]
    outcome: str = "pending"  # result | error | lost
    response: Any = None


class RecordingStation(SimStation):
    """A SimStation that keeps every CALL it sent and its outcome."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[Sent] = []

    async def call(self, action: str, payload: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        rec = Sent(action, payload)
        self.sent.append(rec)
        try:
            result = await super().call(action, payload, timeout=timeout)
        except CallError as exc:
            rec.outcome, rec.response = "error", exc.code
            raise
        except BaseException:
            rec.outcome = "lost"
            raise
        rec.outcome, rec.response = "result", result
        return result


@dataclass
class Outage:
    """One lost connection of one station and its way back."""

    station_id: str
    lost_at: float
    delay: float | None = None  # the first reconnect delay it drew
    attempts: int = 0
    connected_at: float | None = None  # WebSocket open again (through HAProxy, on another node)
    booted_at: float | None = None  # BootNotification accepted: online again
    back_at: float | None = None  # ... and every connector's status reported again


@dataclass
class Run:
    t0: float = 0.0
    calls: list[tuple[float, float, str, bool]] = field(default_factory=list)  # done at, seconds, action, error
    outages: list[Outage] = field(default_factory=list)
    open_outage: dict[str, Outage] = field(default_factory=dict)
    failures: Counter[str] = field(default_factory=Counter)

    def on_event(self, st: SimStation, text: str) -> None:
        now = time.monotonic()
        if text.startswith("disconnected"):
            lost = Outage(st.station_id, now)
            self.outages.append(lost)
            self.open_outage[st.station_id] = lost
        elif text == "connected" or text.startswith("boot Accepted"):
            out = self.open_outage.get(st.station_id)
            if out is not None:
                if text == "connected":
                    out.connected_at = now
                else:
                    out.booted_at = now
        elif text.startswith("reconnecting in "):
            out = self.open_outage.get(st.station_id)
            if out is not None:
                out.attempts += 1
                if out.delay is None:
                    out.delay = float(text.split()[2].rstrip("s"))

    def observe(self, action: str, seconds: float, error: str | None) -> None:
        self.calls.append((time.monotonic(), seconds, action, error is not None))


async def station_life(st: RecordingStation, run: Run, backoff: Backoff, rate: float, gate: asyncio.Semaphore,
                       up: asyncio.Event, stop: asyncio.Event, ready: list[int]) -> None:
    rnd = random.Random(st.station_id)
    try:
        async with gate:
            await st.connect(open_timeout=60)
            await st.boot(timeout=60)
            await st.announce()
    except (OSError, ConnectionError, WebSocketException, asyncio.TimeoutError, CallError) as exc:
        run.failures[f"bring-up {type(exc).__name__}"] += 1
        await st.close()
        return
    st.call_observer = run.observe
    ready[0] += 1
    await up.wait()
    while not stop.is_set():
        if not st.connected:
            if not await st.reconnect(backoff, stop=stop, open_timeout=30, boot_timeout=60):
                break
            out = run.open_outage.pop(st.station_id, None)
            if out is not None:
                out.back_at = time.monotonic()
            continue
        try:
            await _mix_step(st, rnd)
        except CallError:
            run.failures["CALLERROR"] += 1
        except (ConnectionError, ConnectionClosed, OSError):
            continue  # the socket is gone: reconnect at the top
        except (asyncio.TimeoutError, SessionRejected, RuntimeError) as exc:
            run.failures[type(exc).__name__] += 1
        if rate > 0:
            try:
                await asyncio.wait_for(stop.wait(), rnd.uniform(0.5, 1.5) / rate)
            except asyncio.TimeoutError:
                pass


# -- the database, read directly, and the checks ---------------------------------------------------


async def read_database(database_url: str, prefix: str) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        like = prefix + "%"
        stations = [dict(r) for r in await conn.fetch(
            "SELECT id, station_id, connected, connected_node, registration_status FROM station "
            "WHERE station_id LIKE $1", like)]
        pk = {r["id"]: r["station_id"] for r in stations}
        sessions = [dict(r) for r in await conn.fetch(
            "SELECT station, transaction_id, state, started_at, stopped_at FROM charging_session")]
        meters = await conn.fetch("SELECT station_id, timestamp, measurand, phase FROM meter_value "
                                  "WHERE station_id LIKE $1", like)
        events = await conn.fetch("SELECT station_id, kind, timestamp FROM station_event "
                                  "WHERE station_id LIKE $1 AND category IN ('status', 'fault')", like)
    finally:
        await conn.close()
    by_tx = {}
    for s in sessions:
        if s["station"] in pk:
            by_tx[(pk[s["station"]], s["transaction_id"])] = s
    return {
        "stations": {r["station_id"]: r for r in stations},
        "sessions": by_tx,
        "meters": Counter((r["station_id"], r["timestamp"], r["measurand"], r["phase"] or "") for r in meters),
        "statuses": Counter((r["station_id"], r["kind"], r["timestamp"]) for r in events),
    }


def samples(action: str, payload: dict[str, Any]) -> list[tuple[datetime, str, str]]:
    groups = payload.get("transactionData" if action == "StopTransaction" else "meterValue") or []
    return [(parse_time(g["timestamp"]), sv.get("measurand", "Energy.Active.Import.Register"), sv.get("phase", ""))
            for g in groups for sv in g["sampledValue"]]


def check_answered(stations: list[RecordingStation], db: dict[str, Any]) -> tuple[list[list[Any]], dict[str, list[str]]]:
    """Per action: CALLs sent, answered with a CALLRESULT, and answered but not in the database."""
    sent: Counter[str] = Counter()
    answered: Counter[str] = Counter()
    lost: Counter[str] = Counter()
    examples: dict[str, list[str]] = defaultdict(list)
    want_meters: Counter[tuple[str, datetime, str, str]] = Counter()
    meter_owner: dict[tuple[str, datetime, str, str], str] = {}
    want_status: Counter[tuple[str, str, datetime]] = Counter()

    def missing(label: str, text: str) -> None:
        lost[label] += 1
        if len(examples[label]) < 3:
            examples[label].append(text)

    for st in stations:
        sid = st.station_id
        for m in st.sent:
            label = m.action
            if m.action == "TransactionEvent":
                label = f"TransactionEvent {m.payload['eventType']}"
            sent[label] += 1
            if m.outcome != "result":
                continue
            answered[label] += 1
            p = m.payload
            if m.action == "BootNotification":
                row = db["stations"].get(sid)
                if row is None or row["registration_status"] != "Accepted":
                    missing(label, f"{sid}: station row {row}")
            elif m.action == "StatusNotification":
                status = str(p.get("status") or p.get("connectorStatus"))
                want_status[(sid, status, parse_time(p["timestamp"]))] += 1
            elif m.action in TRANSACTION_ACTIONS:
                if m.action == "StartTransaction":
                    tx_id: str | None = str(m.response["transactionId"])
                elif m.action == "TransactionEvent":
                    tx_id = p["transactionInfo"]["transactionId"]
                else:
                    tx_id = str(p["transactionId"]) if p.get("transactionId") is not None else None
                session = db["sessions"].get((sid, tx_id)) if tx_id is not None else None
                if tx_id is not None and session is None:
                    missing(label, f"{sid}: no charging_session for transaction {tx_id}")
                elif session is not None and (m.action == "StopTransaction" or p.get("eventType") == "Ended") \
                        and (session["state"] != "completed" or session["stopped_at"] != parse_time(p["timestamp"])):
                    missing(label, f"{sid}: transaction {tx_id} state {session['state']} stopped_at "
                                   f"{session['stopped_at']} (sent {p['timestamp']})")
                for ts, measurand, phase in samples(m.action, p):
                    want_meters[(sid, ts, measurand, phase)] += 1
                    meter_owner[(sid, ts, measurand, phase)] = label
    for mkey, n in want_meters.items():
        have = db["meters"].get(mkey, 0)
        if have < n:
            missing(f"{meter_owner[mkey]} (sampled values)", f"{mkey[0]} {mkey[1].isoformat()} {mkey[2]} "
                                                             f"{mkey[3]!r}: {n} answered, {have} stored")
    for skey, n in want_status.items():
        have = db["statuses"].get(skey, 0)
        if have < n:
            missing("StatusNotification", f"{skey[0]} {skey[1]} at {skey[2].isoformat()}: {n} answered, {have} stored")
    labels = sorted(set(sent) | set(lost), key=lambda a: -sent.get(a, 0))
    table = [[a, sent.get(a, 0), answered.get(a, 0), lost.get(a, 0)] for a in labels]
    return table, examples


def window(run: Run, start: float, end: float) -> dict[str, Any]:
    got = [c for c in run.calls if start <= c[0] < end]
    lat = sorted(c[1] for c in got)
    span = max(1e-9, end - start)
    return {"from_s": round(start - run.t0, 1), "to_s": round(end - run.t0, 1), "calls": len(got),
            "calls_per_s": round(len(got) / span, 1), "p50_ms": round(percentile(lat, 50) * 1000, 1),
            "p99_ms": round(percentile(lat, 99) * 1000, 1), "errors": sum(1 for c in got if c[3])}


def dist(values: list[float]) -> str:
    if not values:
        return "none"
    v = sorted(values)
    return (f"n={len(v)} min {v[0]:.2f} p50 {percentile(v, 50):.2f} p90 {percentile(v, 90):.2f} "
            f"p99 {percentile(v, 99):.2f} max {v[-1]:.2f} s")


# -- the run ---------------------------------------------------------------------------------------


async def presence_by_node(r: aioredis.Redis, prefix: str) -> dict[str, str]:
    entries: dict[str, str] = await r.hgetall(PRESENCE)  # type: ignore[assignment]  # decode_responses=True
    return {k: v.split("|", 1)[0] for k, v in entries.items() if k.startswith(prefix)}


async def connected_in_db(api: httpx.AsyncClient, prefix: str) -> dict[str, str]:
    out: dict[str, str] = {}
    offset = 0
    while True:
        body = (await api.get("/stations", params={"connected": "true", "q": prefix, "limit": 1000,
                                                   "offset": offset})).json()
        out.update({s["station_id"]: s["connected_node"] for s in body["items"] if s["station_id"].startswith(prefix)})
        offset += len(body["items"])
        if not body["items"] or offset >= body["total"]:
            return out


async def main(args: argparse.Namespace) -> int:
    raise_fd_limit()
    workdir = Path(tempfile.mkdtemp(prefix="csms-cluster-lb-"))
    redis_base = args.redis_url.rstrip("/")
    redis_url, redis_index, claim = await claim_redis_db(redis_base, args.redis_db)
    await aioredis.from_url(redis_url).flushdb()
    database_url = await fresh_database(args.postgres_url.rstrip("/"), args.database)
    log(f"database {database_url}, redis {redis_url}, work dir {workdir}")
    cluster = Cluster(args, workdir, database_url, redis_url)
    prefix = args.prefix
    checks: list[tuple[str, bool, str]] = []
    r = aioredis.from_url(redis_url, decode_responses=True)
    stations: list[RecordingStation] = []
    try:
        cluster.cli("migrate")
        cluster.api_key = cluster.cli("apikey", "create", "--name", "cluster-lb").strip().splitlines()[-1]
        for node in cluster.nodes:  # one after the other: first starts race for the admin user
            await cluster.start_node(node)
        log("nodes up: " + ", ".join(f"{n.name} :{n.port}" for n in cluster.nodes))
        await cluster.start_haproxy()
        log(f"haproxy :{cluster.lb_port} ({args.balance}), stats :{cluster.stats_port}/stats")
        lb_http = f"http://127.0.0.1:{cluster.lb_port}"
        ids = [f"{prefix}{i:05d}" for i in range(1, args.stations + 1)]
        await create_tokens(f"{lb_http}/api/v1", cluster.api_key, ids)

        run = Run()
        versions = station_versions("mixed", args.stations)
        stations = [RecordingStation(sid, f"ws://127.0.0.1:{cluster.lb_port}/ocpp", versions[i], evses=2,
                                     measurands="compact", heartbeat=False, step_delay=0.0, call_timeout=30.0,
                                     on_event=run.on_event)
                    for i, sid in enumerate(ids)]
        backoffs = [Backoff(args.reconnect_min, args.reconnect_random, maximum=args.reconnect_max,
                            rnd=random.Random(f"{sid}-backoff")) for sid in ids]
        up, stop = asyncio.Event(), asyncio.Event()
        ready = [0]
        gate = asyncio.Semaphore(args.connect_concurrency)
        t_bring = time.monotonic()
        tasks = [asyncio.ensure_future(station_life(st, run, b, args.rate, gate, up, stop, ready))
                 for st, b in zip(stations, backoffs)]
        while ready[0] + sum(run.failures.values()) < args.stations and not all(t.done() for t in tasks):
            await asyncio.sleep(0.1)
        log(f"{ready[0]} of {args.stations} stations up in {time.monotonic() - t_bring:.1f} s")
        run.outages.clear()
        run.open_outage.clear()

        api = {n.name: httpx.AsyncClient(base_url=f"{n.url}/api/v1", timeout=10,
                                         headers={"Authorization": f"Bearer {cluster.api_key}"})
               for n in cluster.nodes}
        run.t0 = time.monotonic()
        up.set()
        await asyncio.sleep(max(0.0, args.kill_at - 1.0))

        # -- before the kill
        placement = await presence_by_node(r, prefix)
        spread = Counter(placement.values())
        before_metrics = {n.name: await cluster.metrics(n) for n in cluster.nodes}
        if args.kill == "leader":
            victim = next((n for n in cluster.nodes if "smart-charging" in before_metrics[n.name]["leads"]),
                          max(cluster.nodes, key=lambda n: len(before_metrics[n.name]["leads"])))
        else:
            victim = cluster.nodes[int(args.kill.removeprefix("node")) - 1]
        survivors = [n for n in cluster.nodes if n is not victim]
        on_victim = {s for s, node in placement.items() if node == victim.name}
        await asyncio.sleep(max(0.0, run.t0 + args.kill_at - time.monotonic()))

        # -- the kill
        assert victim.process is not None
        os.kill(victim.process.pid, signal.SIGKILL)
        t_kill = time.monotonic()
        victim.process.wait()
        log(f"SIGKILL {victim.name} (pid {victim.process.pid}) at {t_kill - run.t0:.1f} s, "
            f"holding {len(on_victim)} stations")

        # -- watch the dead node's traces go, and keep watching
        survivor_api = api[survivors[0].name]
        cleaned_at: float | None = None
        stale_after_2ttl: list[tuple[float, int, int]] = []
        lb_down_at: float | None = None
        t_end = run.t0 + args.duration
        while time.monotonic() < t_end:
            now = time.monotonic()
            try:
                in_db = await connected_in_db(survivor_api, prefix)
                in_redis = await presence_by_node(r, prefix)
            except (httpx.HTTPError, ValueError) as exc:
                log(f"poll failed: {exc!r}")
                await asyncio.sleep(0.5)
                continue
            db_dead = sum(1 for node in in_db.values() if node == victim.name)
            redis_dead = sum(1 for node in in_redis.values() if node == victim.name)
            if cleaned_at is None and db_dead == 0 and redis_dead == 0:
                cleaned_at = now
                log(f"dead node's stations gone from the database and the presence hash after "
                    f"{cleaned_at - t_kill:.2f} s")
            if now - t_kill > 2 * args.ttl and (db_dead or redis_dead):
                stale_after_2ttl.append((now - t_kill, db_dead, redis_dead))
            if lb_down_at is None:
                try:
                    if (await cluster.backend_states()).get(victim.name, "").startswith("DOWN"):
                        lb_down_at = now
                except httpx.HTTPError:
                    pass
            await asyncio.sleep(0.5 if cleaned_at is None else 2.0)
        after_metrics = {n.name: await cluster.metrics(n) for n in survivors}

        # -- the end: stop the load, compare who is connected where
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        t_stop = time.monotonic()
        await asyncio.sleep(1.0)  # let the nodes finish what the last answers started
        client_side = {st.station_id for st in stations if st.connected}
        in_db = await connected_in_db(survivor_api, prefix)
        in_redis = await presence_by_node(r, prefix)
        for client in api.values():
            await client.aclose()

        db = await read_database(database_url, prefix)
        table, examples = check_answered(stations, db)

        # -- figures
        victim_outages = [o for o in run.outages if o.station_id in on_victim and o.lost_at >= t_kill - 0.5]
        other_outages = [o for o in run.outages if o not in victim_outages]
        back = [o for o in victim_outages if o.back_at is not None]
        all_back_at = max((o.back_at for o in back if o.back_at is not None), default=t_kill)
        recovered_at = max(all_back_at, t_kill + 1.0)
        before = window(run, run.t0 + 2.0, t_kill)
        during = window(run, t_kill, recovered_at)
        after = window(run, recovered_at, t_stop)
        late = [o for o in back if o.delay is None or o.booted_at is None
                or o.booted_at - o.lost_at > o.delay + args.margin]
        interval = Backoff(args.reconnect_min, args.reconnect_random, maximum=args.reconnect_max).interval

        print()
        print(f"## 3 nodes behind HAProxy ({args.balance}), {args.stations} stations (half 1.6, half 2.0.1), "
              f"{args.duration:g} s, SIGKILL at {args.kill_at:g} s; TTL {args.ttl:g} s, lease {args.lease:g} s, "
              f"reconnect {args.reconnect_min:g} s + 0..{args.reconnect_random:g} s, {args.rate:g} calls/s per station")
        print()
        print("stations per node before the kill (presence hash): "
              + ", ".join(f"{n.name} {spread.get(n.name, 0)}" for n in cluster.nodes))
        print(f"killed: {victim.name} ({len(on_victim)} stations); HAProxy marked it DOWN after "
              + (f"{lb_down_at - t_kill:.2f} s" if lb_down_at else "(not seen)"))
        print()
        print("| window | from-to s | calls | calls/s | p50 ms | p99 ms | errors |")
        print("|---|---|---|---|---|---|---|")
        for name, w in (("before the kill", before), ("kill → all back", during), ("after", after)):
            print(f"| {name} | {w['from_s']}-{w['to_s']} | {w['calls']} | {w['calls_per_s']} | {w['p50_ms']} | "
                  f"{w['p99_ms']} | {w['errors']} |")
        print()
        print("reconnection of the dead node's stations:")
        print(f"  socket lost after the kill:          {dist([o.lost_at - t_kill for o in victim_outages])}")
        print(f"  first reconnect delay drawn:         {dist([o.delay for o in victim_outages if o.delay is not None])}")
        delayed = [o for o in back if o.delay is not None and o.connected_at and o.booted_at and o.back_at]
        opened = [(o.connected_at or 0.0) - o.lost_at for o in delayed]
        booted = [(o.booted_at or 0.0) - o.lost_at for o in delayed]
        reported = [(o.back_at or 0.0) - o.lost_at for o in delayed]
        drawn = [o.delay or 0.0 for o in delayed]
        print(f"  lost → WebSocket open again:         {dist(opened)}")
        print(f"  lost → boot accepted again:          {dist(booted)}")
        print(f"  lost → connectors reported again:    {dist(reported)}")
        print(f"  beyond the delay drawn: open         {dist([a - d for a, d in zip(opened, drawn)])}")
        print(f"                          booted       {dist([a - d for a, d in zip(booted, drawn)])}")
        print(f"                          reported     {dist([a - d for a, d in zip(reported, drawn)])}")
        print(f"  kill → boot accepted again:          {dist([(o.booted_at or 0.0) - t_kill for o in delayed])}")
        print(f"  booted again within the configured interval ({interval:g} s) + {args.margin:g} s: "
              f"{sum(1 for b in booted if b <= interval + args.margin)} of {len(victim_outages)}")
        attempts = Counter(o.attempts for o in victim_outages)
        print(f"  attempts needed:                     {dict(sorted(attempts.items()))}")
        print()
        print("background jobs led (csms_leader = 1), before → after:")
        for n in cluster.nodes:
            after_leads = after_metrics.get(n.name, {}).get("leads") if n is not victim else "(killed)"
            print(f"  {n.name}: {', '.join(before_metrics[n.name]['leads']) or '-'} → "
                  f"{', '.join(after_leads) if isinstance(after_leads, list) else after_leads}")
        print("connected stations per node at the end (csms_connected_stations): "
              + ", ".join(f"{name} {m['connected']}" for name, m in after_metrics.items()))
        print()
        print("| CALL | sent | answered (CALLRESULT) | answered but not in the database |")
        print("|---|---|---|---|")
        for action, n_sent, n_answered, n_lost in table:
            print(f"| {action} | {n_sent} | {n_answered} | {n_lost} |")
        for label, found in examples.items():
            for e in found:
                print(f"    {label}: e.g. {e}")
        if run.failures:
            print(f"station-side failures (not counted as answered): {dict(run.failures)}")
        print()

        lost_total = sum(row[3] for row in table)
        checks.append(("every CALL answered with a CALLRESULT is in the database", lost_total == 0,
                       f"{sum(row[2] for row in table)} answered, {lost_total} missing"))
        checks.append((f"no station connected on the dead node after 2 x TTL ({2 * args.ttl:g} s)",
                       cleaned_at is not None and cleaned_at - t_kill <= 2 * args.ttl and not stale_after_2ttl,
                       (f"gone after {cleaned_at - t_kill:.2f} s" if cleaned_at else "never gone")
                       + (f"; still there at {stale_after_2ttl[:3]} (s, in db, in redis)" if stale_after_2ttl else "")))
        checks.append((f"every station of the dead node booted again within the reconnect delay it drew + "
                       f"{args.margin:g} s",
                       len(back) == len(victim_outages) and not late and len(victim_outages) >= len(on_victim),
                       f"{len(back)} of {len(victim_outages)} outages ended ({len(on_victim)} stations on the node); "
                       f"{len(late)} late" + (f", e.g. {[(o.station_id, round((o.booted_at or 0) - o.lost_at, 2), o.delay) for o in late[:3]]} (station, s, delay)"
                                               if late else "")))
        checks.append(("no station of a surviving node lost its socket", not other_outages,
                       f"{len(other_outages)} outages" + (f", e.g. {[o.station_id for o in other_outages[:5]]}"
                                                          if other_outages else "")))
        live_names = {n.name for n in survivors}
        consistent = (client_side == set(in_db) == set(in_redis) and len(client_side) == args.stations
                      and set(in_db.values()) <= live_names and set(in_redis.values()) <= live_names)
        checks.append(("at the end: stations connected = database connected = presence hash, on live nodes",
                       consistent, f"{len(client_side)} connected, {len(in_db)} in the database "
                                   f"({dict(Counter(in_db.values()))}), {len(in_redis)} in the presence hash "
                                   f"({dict(Counter(in_redis.values()))})"))
        led_after = Counter(j for m in after_metrics.values() for j in m["leads"])
        jobs = {j for m in before_metrics.values() for j in m["leads"]}
        checks.append(("every background job led by exactly one surviving node after the kill",
                       all(led_after.get(j) == 1 for j in jobs), f"{dict(led_after)}"))
        for name, ok, detail in checks:
            print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
        if args.json:
            Path(args.json).write_text(json.dumps({
                "before": before, "during": during, "after": after, "checks": checks, "table": table,
                "spread": dict(spread), "victim": victim.name,
                "reconnect_s": sorted(o.back_at - o.lost_at for o in back if o.back_at)}, indent=2, default=str))
        return 0 if all(ok for _, ok, _ in checks) else 1
    finally:
        for st in stations:
            st.on_event = None
        await asyncio.gather(*(st.close() for st in stations), return_exceptions=True)
        cluster.stop()
        await r.aclose()
        await release_redis_db(redis_base, redis_index, claim, redis_url)
        if args.keep:
            log(f"logs kept in {workdir}; database {database_url} kept")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stations", type=int, default=300, help="stations, half 1.6 half 2.0.1")
    p.add_argument("--duration", type=float, default=40.0, help="seconds of load after the bring-up")
    p.add_argument("--kill-at", type=float, default=15.0, help="SIGKILL one node this many seconds into the load")
    p.add_argument("--kill", default="leader", help="which node: leader (of smart-charging) or node1/node2/node3")
    p.add_argument("--rate", type=float, default=2.0, help="mix steps per second per station (0: closed loop)")
    p.add_argument("--ttl", type=float, default=3.0, help="CSMS_NODE_TTL of the nodes")
    p.add_argument("--lease", type=float, default=3.0, help="CSMS_LEADER_LEASE of the nodes")
    p.add_argument("--reconnect-min", type=float, default=1.0, help="reconnect: shortest wait (s)")
    p.add_argument("--reconnect-random", type=float, default=4.0, help="reconnect: plus a random 0..this (s)")
    p.add_argument("--reconnect-max", type=float, default=30.0, help="reconnect: longest wait (s)")
    p.add_argument("--margin", type=float, default=3.0,
                   help="a station is back in time within its drawn delay plus this (s; handshake and boot)")
    p.add_argument("--balance", default="leastconn", choices=["leastconn", "roundrobin"])
    p.add_argument("--connect-concurrency", type=int, default=50)
    p.add_argument("--prefix", default="LB")
    p.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432"),
                   help="PostgreSQL server (without a database name)")
    p.add_argument("--database", default="bench_cluster_lb", help="database created afresh")
    p.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379"),
                   help="Redis server (without a db index)")
    p.add_argument("--redis-db", type=int, help="this index (default: the highest one no test has claimed)")
    p.add_argument("--haproxy", default=shutil.which("haproxy") or "/usr/sbin/haproxy")
    p.add_argument("--keep", action="store_true", help="keep the work directory (node and HAProxy logs)")
    p.add_argument("--json", help="also write the figures to this file")
    return p.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    install_uvloop()
    sys.exit(asyncio.run(main(arguments)))
