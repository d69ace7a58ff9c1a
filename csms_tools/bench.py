"""``csms bench``: load-test the OCPP endpoint with simulated stations.

The server runs in its own process (``csms serve`` on a temporary data directory, or any server
given with ``--url``) so that the load generator (one asyncio process on uvloop, driving
:class:`csms_tools.simulator.SimStation`) and the server do not share an interpreter.

Scenarios:

- ``closed-loop``: N stations each boot, start a session, then send MeterValues back to back
  (send, await the answer, send the next) for the duration: calls/s and latency percentiles.
- ``mix``: the same closed loop with a realistic mix of messages over both versions (mostly
  meter values -- 2.0.1 as TransactionEvent Updated -- plus Heartbeat, StatusNotification and
  session stop/start).
- ``idle``: M stations connect, boot, report status and stay idle: server memory per connection.

``--against-node`` runs the same scenario, with the same stations and load, against the Node
comparison server ``bench/ocpp_rpc_server.mjs`` (npm ``ocpp-rpc`` in strict mode, nothing
stored) right after each run against ours, ``--rounds`` times, and prints the ratio of each round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed, WebSocketException

from csms_tools.server_log import log_tail
from csms_tools.simulator import (
    CallError,
    SessionRejected,
    SimStation,
    install_uvloop,
    raise_fd_limit,
    station_versions,
)

DEFAULT_STATIONS = {"closed-loop": 200, "mix": 200, "idle": 10000}

# The mix scenario: (operation, weight).
MIX = (("meter", 80), ("heartbeat", 8), ("status", 7), ("session", 5))


# -- the server under test ---------------------------------------------------------------------


@dataclass
class BenchServer:
    """A CSMS to load: its OCPP base URL, its pid (for memory figures) and an API key."""

    ocpp_url: str
    pid: int | None = None
    api_url: str | None = None
    api_key: str | None = None
    process: subprocess.Popen[bytes] | None = None
    data_dir: Path | None = None
    log_path: Path | None = None

    def stop(self, *, keep_log: bool = False) -> Path | None:
        """Stop a server we started and remove its data; returns where its log was kept."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        kept = None
        if keep_log and self.log_path is not None and self.log_path.exists():
            kept = Path(tempfile.gettempdir()) / f"csms-bench-server-{self.pid}.log"
            shutil.copyfile(self.log_path, kept)
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        return kept


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _raise_child_fd_limit() -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start_server(*, database_url: str = "", env: dict[str, str] | None = None, timeout: float = 180.0) -> BenchServer:
    """``csms serve`` in a separate process on a fresh data directory, unknown stations accepted."""
    data_dir = Path(tempfile.mkdtemp(prefix="csms-bench-"))
    port = _free_port()
    child_env = {**os.environ, "CSMS_DATA_DIR": str(data_dir), "CSMS_UNKNOWN_STATIONS": "accept",
                 "CSMS_HOST": "127.0.0.1", "CSMS_PORT": str(port), "CSMS_LOG_LEVEL": "warning"}
    if database_url:
        child_env["CSMS_DATABASE_URL"] = database_url
    child_env.update(env or {})
    created = subprocess.run([sys.executable, "-m", "csms", "apikey", "create", "--name", "bench"], env=child_env,
                             capture_output=True, text=True)
    if created.returncode != 0:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise RuntimeError(f"could not create an API key: {created.stderr.strip()[-2000:]}")
    api_key = created.stdout.strip().splitlines()[-1]
    log_path = data_dir / "server.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "csms", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=child_env, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=_raise_child_fd_limit,
        )
    server = BenchServer(f"ws://127.0.0.1:{port}/ocpp", process.pid, f"http://127.0.0.1:{port}/api/v1", api_key,
                         process, data_dir, log_path)
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            text = log_tail(log_path, 3000)
            server.stop()
            raise RuntimeError(f"csms serve exited with {process.returncode}:\n{text}")
        try:
            r = httpx.get(f"{server.api_url}/tokens?limit=1", headers={"Authorization": f"Bearer {api_key}"},
                          timeout=2)
            if r.status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError("csms serve did not come up in time")
        time.sleep(0.2)


NODE_SERVER_SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "ocpp_rpc_server.mjs"


def start_node_server(script: Path = NODE_SERVER_SCRIPT, timeout: float = 30.0) -> BenchServer:
    """The ``ocpp-rpc`` strict comparison server in a separate ``node`` process."""
    node = shutil.which("node")
    if node is None or not script.exists():
        raise RuntimeError(f"--against-node needs node and {script} (with tests/node/node_modules: "
                           "npm ci --prefix tests/node)")
    port = _free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="csms-bench-node-"))
    log_path = data_dir / "node.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen([node, str(script), "--host", "127.0.0.1", "--port", str(port)],
                                   stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=_raise_child_fd_limit)
    server = BenchServer(f"ws://127.0.0.1:{port}/ocpp", process.pid, None, None, process, data_dir, log_path)
    deadline = time.monotonic() + timeout
    while b"listening" not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            text = log_tail(log_path, 3000)
            server.stop()
            raise RuntimeError(f"the ocpp-rpc server did not come up:\n{text}")
        time.sleep(0.1)
    return server


async def create_tokens(api_url: str, api_key: str, tokens: list[str]) -> None:
    """Register the stations' id tokens so that their sessions are authorized."""
    import httpx

    async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {api_key}"},
                                 timeout=30) as client:
        gate = asyncio.Semaphore(8)

        async def one(token: str) -> None:
            async with gate:
                r = await client.post("/tokens", json={"id_token": token})
                if r.status_code not in (200, 201, 409):
                    raise RuntimeError(f"creating token {token}: HTTP {r.status_code} {r.text[:200]}")

        await asyncio.gather(*(one(t) for t in tokens))


# -- measurement helpers -----------------------------------------------------------------------


def rss_bytes(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        import psutil
    except ImportError:
        return None
    try:
        return sum(proc.memory_info().rss for proc in _tree(psutil.Process(pid)))
    except psutil.Error:
        return None


def _tree(proc: Any) -> list[Any]:
    """The process and its children (the worker processes of ``csms serve --workers N``)."""
    return [proc, *proc.children(recursive=True)]


def thread_count(pid: int | None) -> int | None:
    """Threads of the process and its children (summed over the workers, as the memory is)."""
    if pid is None:
        return None
    try:
        import psutil

        return sum(proc.num_threads() for proc in _tree(psutil.Process(pid)))
    except Exception:  # psutil missing or the process is gone
        return None


class ProcessWatch:
    """Samples a process's RSS and thread count (with its children's) in the background and keeps
    the peaks."""

    def __init__(self, pid: int | None, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_rss: int | None = None
        self.peak_threads: int | None = None
        self.threads: int | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.pid is not None:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            rss, threads = rss_bytes(self.pid), thread_count(self.pid)
            if rss is not None:
                self.peak_rss = max(self.peak_rss or 0, rss)
            if threads is not None:
                self.threads = threads
                self.peak_threads = max(self.peak_threads or 0, threads)
            await asyncio.sleep(self.interval)

    async def wait_settled(self, threads: int | None, timeout: float) -> bool:
        """Wait until the thread count is back near ``threads`` (the server's work is done)."""
        if self.pid is None or threads is None:
            return False
        deadline = time.monotonic() + timeout
        await asyncio.sleep(2 * self.interval)
        while time.monotonic() < deadline:
            if self.threads is not None and self.threads <= threads + 2:
                return True
            await asyncio.sleep(self.interval)
        return False

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class CpuMeter:
    """CPU use of a process and its children (``--workers``) between ``start()`` and ``stop()``,
    in percent of one core: all threads, and the main threads alone (the event loops, one per
    worker; the rest is database worker threads and, with workers, the supervising process)."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.percent: float | None = None
        self.main_thread_percent: float | None = None
        self.main_thread_runqueue_percent: float | None = None  # runnable but waiting for a CPU
        self._t0 = 0.0
        self._cpu0: tuple[float, float] | None = None
        self._wait0: float | None = None

    def _runqueue_wait(self) -> float | None:
        """Seconds the main thread spent runnable but not running (Linux schedstat)."""
        if self.pid is None:
            return None
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/schedstat") as fh:
                return int(fh.read().split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            return None

    def _cpu(self) -> tuple[float, float] | None:
        if self.pid is None:
            return None
        try:
            import psutil

            total = main = 0.0
            tree = _tree(psutil.Process(self.pid))
            for proc in tree:
                t = proc.cpu_times()
                total += t.user + t.system
                if proc.pid != self.pid or len(tree) == 1:  # with workers: each worker's event loop
                    main += next((th.user_time + th.system_time for th in proc.threads() if th.id == proc.pid), 0.0)
            return total, main
        except Exception:  # psutil missing or the process is gone
            return None

    def start(self) -> None:
        self._t0, self._cpu0, self._wait0 = time.monotonic(), self._cpu(), self._runqueue_wait()

    def stop(self) -> None:
        cpu = self._cpu()
        if cpu is not None and self._cpu0 is not None:
            elapsed = max(1e-9, time.monotonic() - self._t0)
            self.percent = round(100 * (cpu[0] - self._cpu0[0]) / elapsed, 1)
            self.main_thread_percent = round(100 * (cpu[1] - self._cpu0[1]) / elapsed, 1)
            wait = self._runqueue_wait()
            if wait is not None and self._wait0 is not None:
                self.main_thread_runqueue_percent = round(100 * (wait - self._wait0) / elapsed, 1)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(q / 100 * (len(sorted_values) - 1)))))
    return sorted_values[k]


@dataclass
class Recorder:
    """Latencies of answered calls inside the measurement window, per action."""

    measuring: bool = False
    latencies: dict[str, list[float]] = field(default_factory=dict)
    call_errors: dict[str, int] = field(default_factory=dict)
    failures: int = 0  # timeouts, lost connections, rejected sessions

    def observe(self, action: str, seconds: float, error: str | None) -> None:
        if not self.measuring:
            return
        if error is not None:
            self.call_errors[action] = self.call_errors.get(action, 0) + 1
        self.latencies.setdefault(action, []).append(seconds)

    def summary(self, elapsed: float) -> dict[str, Any]:
        every = sorted(x for v in self.latencies.values() for x in v)
        out: dict[str, Any] = {
            "calls": len(every), "calls_per_s": round(len(every) / elapsed, 1) if elapsed else 0.0,
            "p50_ms": round(percentile(every, 50) * 1000, 2), "p90_ms": round(percentile(every, 90) * 1000, 2),
            "p99_ms": round(percentile(every, 99) * 1000, 2),
            "max_ms": round(every[-1] * 1000, 2) if every else None,
            "errors": sum(self.call_errors.values()) + self.failures,
        }
        per_action = {}
        for action, values in sorted(self.latencies.items(), key=lambda kv: -len(kv[1])):
            values.sort()
            per_action[action] = {"calls": len(values), "calls_per_s": round(len(values) / elapsed, 1),
                                  "p50_ms": round(percentile(values, 50) * 1000, 2),
                                  "p99_ms": round(percentile(values, 99) * 1000, 2),
                                  "errors": self.call_errors.get(action, 0)}
        out["per_action"] = per_action
        return out


def _station_id(prefix: str, i: int) -> str:
    return f"{prefix}{i:05d}"


# Connections per loopback source address: below the default ephemeral port range (32768-60999).
PER_SOURCE_ADDRESS = 20000


def _make_stations(url: str, count: int, version: str, *, prefix: str, password: str | None, evses: int,
                   measurands: str = "compact") -> list[SimStation]:
    versions = station_versions(version, count)
    # Over loopback, more stations than one source address has ephemeral ports connect from
    # 127.0.0.2, 127.0.0.3, ... (all of 127/8 is the loopback interface).
    spread = count > PER_SOURCE_ADDRESS and urlsplit(url).hostname in ("127.0.0.1", "localhost")
    return [SimStation(_station_id(prefix, i), url, versions[i - 1], password=password, evses=evses,
                       measurands=measurands, heartbeat=False, step_delay=0.0, call_timeout=60.0,
                       local_host=f"127.0.0.{2 + (i - 1) // PER_SOURCE_ADDRESS}" if spread else None)
            for i in range(1, count + 1)]


def ensure_fd_limit(needed: int) -> int:
    """Raise this process's open-file limit to ``needed`` (soft and, where allowed, hard; the
    server started here inherits it) or stop: a run that would hit the limit halfway measures
    nothing. Returns the soft limit reached."""
    import resource

    raise_fd_limit()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, max(needed, hard)))  # root (CAP_SYS_RESOURCE)
        return needed
    except (ValueError, OSError):
        raise SystemExit(f"csms bench: the open-file limit is {soft} (hard {hard}) and this run needs {needed}; "
                         f"raise it (as root: ulimit -Hn {needed}; needs CAP_SYS_RESOURCE) or run fewer stations")


@dataclass
class BringUp:
    """How bringing the stations up went: count, time, and latency per step."""

    up: int
    seconds: float
    steps: dict[str, Any]
    failures: dict[str, int]


async def _bring_up(stations: list[SimStation], concurrency: int, *, progress: Callable[[str], None] | None = None,
                    with_status: bool = True) -> BringUp:
    """Connect, boot and announce every station, ``concurrency`` stations at a time.

    Stations that fail are closed and left out."""
    gate = asyncio.Semaphore(concurrency)
    up = 0
    started = time.monotonic()
    step = max(1, len(stations) // 10)
    recorder = Recorder(measuring=True)
    failures: dict[str, int] = {}

    async def one(st: SimStation) -> bool:
        nonlocal up
        async with gate:
            st.call_observer = recorder.observe
            try:
                t0 = time.perf_counter()
                await st.connect(open_timeout=120)
                recorder.observe("WebSocket handshake", time.perf_counter() - t0, None)
                await st.boot(timeout=120)
                if with_status:
                    await st.announce()
            except (OSError, ConnectionError, WebSocketException, asyncio.TimeoutError, CallError) as exc:
                reason = type(exc).__name__
                failures[reason] = failures.get(reason, 0) + 1
                if progress and failures[reason] <= 3:
                    progress(f"{st.station_id} failed to come up: {exc!r}")
                await st.close()
                return False
            finally:
                st.call_observer = None
        up += 1
        if progress and up % step == 0:
            progress(f"{up}/{len(stations)} stations up after {time.monotonic() - started:.1f}s")
        return True

    results = await asyncio.gather(*(one(st) for st in stations))
    elapsed = time.monotonic() - started
    steps = recorder.summary(elapsed)["per_action"]
    return BringUp(sum(results), elapsed, steps, failures)


async def _close_all(stations: list[SimStation]) -> None:
    gate = asyncio.Semaphore(500)

    async def one(st: SimStation) -> None:
        async with gate:
            await st.close()

    await asyncio.gather(*(one(st) for st in stations), return_exceptions=True)


# -- scenarios ---------------------------------------------------------------------------------


async def closed_loop(url: str, *, stations: int = 200, duration: float = 20.0, version: str = "mixed",
                      password: str | None = None, prefix: str = "BENCH", server_pid: int | None = None,
                      warmup: float = 2.0, connect_concurrency: int = 100, mix: bool = False,
                      progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Closed-loop load: every station keeps exactly one call in flight for ``duration`` seconds.

    Each station boots, starts a session with its own token (``{prefix}{i:05d}``, as its id),
    then sends MeterValues with five sampled values (energy register, power, current L1-L3)
    back to back; with ``mix`` it sends the realistic mix instead. Returns the figures.
    """
    rss_base = rss_bytes(server_pid)
    sims = _make_stations(url, stations, version, prefix=prefix, password=password, evses=2 if mix else 1)
    try:
        bring = await _bring_up(sims, connect_concurrency, progress=progress)
        up, bring_up_s = bring.up, bring.seconds
        live = [st for st in sims if st.connected]
        recorder = Recorder()
        for st in live:
            st.call_observer = recorder.observe

        async def start(st: SimStation) -> None:
            try:
                await st.start_session(1, st.station_id)
            except (SessionRejected, CallError, ConnectionError, asyncio.TimeoutError):
                recorder.failures += 1

        gate = asyncio.Semaphore(connect_concurrency)

        async def gated_start(st: SimStation) -> None:
            async with gate:
                await start(st)

        await asyncio.gather(*(gated_start(st) for st in live))
        rss_loaded = rss_bytes(server_pid)
        stop_at = time.monotonic() + warmup + duration
        cpu_server, cpu_gen = CpuMeter(server_pid), CpuMeter(os.getpid())

        async def worker(st: SimStation) -> None:
            rnd = random.Random(st.station_id)
            while time.monotonic() < stop_at:
                try:
                    if mix:
                        await _mix_step(st, rnd)
                    else:
                        await st.meter_values(1, message="MeterValues")
                except CallError:
                    continue  # counted by the observer
                except (ConnectionError, ConnectionClosed):
                    if recorder.measuring:
                        recorder.failures += 1
                    return
                except (asyncio.TimeoutError, SessionRejected, RuntimeError):
                    if recorder.measuring:
                        recorder.failures += 1

        if progress:
            progress(f"{len(live)} sessions started; warming up for {warmup}s")
        workers = [asyncio.ensure_future(worker(st)) for st in live]
        await asyncio.sleep(warmup)
        if progress:
            progress(f"measuring for {duration}s")
        recorder.measuring = True
        cpu_server.start()
        cpu_gen.start()
        t0 = time.monotonic()
        await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
        recorder.measuring = False
        elapsed = time.monotonic() - t0
        cpu_server.stop()
        cpu_gen.stop()
        rss_end = rss_bytes(server_pid)
        await asyncio.gather(*workers)
        for st in live:
            st.call_observer = None
            for ev in st.evses.values():
                if ev.tx is not None:
                    try:
                        await st.stop_session(ev.id)
                    except (CallError, ConnectionError, ConnectionClosed, asyncio.TimeoutError):
                        pass
    finally:
        await _close_all(sims)
    summary = recorder.summary(elapsed)
    calls = summary["calls"]
    result: dict[str, Any] = {
        "scenario": "mix" if mix else "closed-loop", "stations": stations, "stations_up": up, "version": version,
        "duration_s": round(elapsed, 2), "warmup_s": warmup, "bring_up_s": round(bring_up_s, 2),
        "bring_up_steps": bring.steps, "bring_up_failures": bring.failures,
        **summary,
        "server_cpu_pct": cpu_server.percent, "server_main_thread_cpu_pct": cpu_server.main_thread_percent,
        "server_main_thread_cpu_wait_pct": cpu_server.main_thread_runqueue_percent,
        # CPU time the server spends per answered call: hardly affected by other load on the machine.
        "server_cpu_us_per_call": _per_call_us(cpu_server.percent, elapsed, calls),
        "server_loop_cpu_us_per_call": _per_call_us(cpu_server.main_thread_percent, elapsed, calls),
        "generator_cpu_pct": cpu_gen.percent, "machine_load_avg": round(os.getloadavg()[0], 2),
        "server_rss_mb": _mb(rss_end), "server_rss_before_mb": _mb(rss_base),
        "rss_per_connection_kb": _per_conn_kb(rss_loaded, rss_base, up),
    }
    return result


async def _mix_step(st: SimStation, rnd: random.Random) -> None:
    op = rnd.choices([m[0] for m in MIX], weights=[m[1] for m in MIX])[0]
    if op == "meter":
        busy = [e.id for e in st.evses.values() if e.tx is not None] or [1]
        await st.meter_values(rnd.choice(busy))  # 2.0.1 in a session: TransactionEvent Updated
    elif op == "heartbeat":
        await st.heartbeat()
    elif op == "status":
        ev = st.evses[len(st.evses)]
        await st.status(ev.id, st.current_status(ev))
    else:
        ev = st.evses[1]
        if ev.tx is not None:
            await st.stop_session(1, reason=rnd.choice(["Local", "EVDisconnected", "Local"]))
        await st.start_session(1, st.station_id)


async def idle(url: str, *, stations: int = 10000, version: str = "mixed", password: str | None = None,
               prefix: str = "IDLE", server_pid: int | None = None, settle: float = 5.0,
               connect_concurrency: int = 200, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Connect ``stations`` stations that boot, report status and stay idle; server memory after."""
    rss_base = rss_bytes(server_pid)
    threads_base = thread_count(server_pid)
    sims = _make_stations(url, stations, version, prefix=prefix, password=password, evses=2)
    try:
        bring = await _bring_up(sims, connect_concurrency, progress=progress)
        up, bring_up_s = bring.up, bring.seconds
        if progress:
            progress(f"{up} stations up; idle for {settle}s")
        await asyncio.sleep(settle)
        still = sum(1 for st in sims if st.connected)
        rss_idle = rss_bytes(server_pid)
        threads_idle = thread_count(server_pid)
        gen_rss = rss_bytes(os.getpid())
        load_idle = os.getloadavg()[0]
    finally:
        # All stations leave at once (a network outage seen from the server): peak memory and
        # threads while the server records the disconnections, and how long that takes.
        watch = ProcessWatch(server_pid)
        watch.start()
        closing = time.monotonic()
        await _close_all(sims)
        settled = await watch.wait_settled(threads_base, timeout=300)
        disconnect_s = time.monotonic() - closing
        await watch.stop()
    return {
        "scenario": "idle", "stations": stations, "stations_up": up, "still_connected": still, "version": version,
        "bring_up_s": round(bring_up_s, 1), "connects_per_s": round(up / bring_up_s, 1) if bring_up_s else None,
        "server_rss_before_mb": _mb(rss_base), "server_rss_mb": _mb(rss_idle),
        "rss_per_connection_kb": _per_conn_kb(rss_idle, rss_base, still),
        "generator_rss_mb": _mb(gen_rss), "errors": stations - up + (up - still),
        "bring_up_steps": bring.steps, "bring_up_failures": bring.failures,
        "machine_load_avg": round(load_idle, 2), "machine_load_after_disconnect": round(os.getloadavg()[0], 2),
        "server_threads_before": threads_base, "server_threads_idle": threads_idle,
        "disconnect_all_s": round(disconnect_s, 1) if settled else None,
        "disconnect_peak_rss_mb": _mb(watch.peak_rss), "disconnect_peak_threads": watch.peak_threads,
    }


def _per_call_us(percent: float | None, elapsed: float, calls: int) -> float | None:
    if percent is None or not calls:
        return None
    return round(percent / 100 * elapsed / calls * 1e6, 1)


def _mb(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)


def _per_conn_kb(after: int | None, before: int | None, n: int) -> float | None:
    if after is None or before is None or not n:
        return None
    return round((after - before) / n / 1024, 1)


# -- output ------------------------------------------------------------------------------------


def markdown_table(result: dict[str, Any]) -> str:
    if result["scenario"] == "idle":
        rows = [
            ("stations connected and idle", f"{result['still_connected']} / {result['stations']}"),
            ("versions", result["version"]),
            ("bring-up (connect, boot, status)", f"{result['bring_up_s']} s ({result['connects_per_s']} stations/s)"),
            ("server RSS before", f"{result['server_rss_before_mb']} MB"),
            ("server RSS with all stations idle", f"{result['server_rss_mb']} MB"),
            ("server RSS per connection", f"{result['rss_per_connection_kb']} KB"),
            ("load generator RSS", f"{result['generator_rss_mb']} MB"),
            ("errors", result["errors"]),
            ("server threads before / idle", f"{result['server_threads_before']} / {result['server_threads_idle']}"),
            ("all stations disconnect at once: time until the server is done",
             f"{result['disconnect_all_s']} s" if result["disconnect_all_s"] is not None else "not done in 300 s"),
            ("... peak server RSS / threads meanwhile",
             f"{result['disconnect_peak_rss_mb']} MB / {result['disconnect_peak_threads']}"),
            ("machine load average (1 min, 2 cores) idle / after the disconnections",
             f"{result['machine_load_avg']} / {result.get('machine_load_after_disconnect')}"),
        ]
    else:
        rows = [
            ("stations (closed loop, 1 call in flight each)", f"{result['stations_up']} / {result['stations']}"),
            ("versions", result["version"]),
            ("measured for", f"{result['duration_s']} s after {result['warmup_s']} s warm-up"),
            ("calls answered", result["calls"]),
            ("calls/s", result["calls_per_s"]),
            ("latency p50 / p90 / p99 / max", f"{result['p50_ms']} / {result['p90_ms']} / {result['p99_ms']} / "
                                              f"{result['max_ms']} ms"),
            ("errors", result["errors"]),
            ("server CPU (100% = one core): all threads / event loop thread",
             f"{result['server_cpu_pct']} % / {result['server_main_thread_cpu_pct']} %"),
            ("server event loop thread runnable but waiting for a CPU (other load)",
             f"{result['server_main_thread_cpu_wait_pct']} %"),
            ("server CPU time per call: all threads / event loop thread",
             f"{result['server_cpu_us_per_call']} / {result['server_loop_cpu_us_per_call']} µs"),
            ("load generator CPU", f"{result['generator_cpu_pct']} %"),
            ("server RSS at end", f"{result['server_rss_mb']} MB"),
            ("server RSS per connection (with session)", f"{result['rss_per_connection_kb']} KB"),
            ("machine load average (1 min, 2 cores)", result["machine_load_avg"]),
        ]
    lines = [f"### {result['scenario']}", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    per_action = result.get("per_action") or {}
    if result["scenario"] == "mix" and per_action:
        lines += ["", "| action | calls | calls/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|"]
        lines += [f"| {a} | {v['calls']} | {v['calls_per_s']} | {v['p50_ms']} | {v['p99_ms']} | {v['errors']} |"
                  for a, v in per_action.items()]
    steps = result.get("bring_up_steps") or {}
    if steps:
        lines += ["", "| bring-up step | count | p50 ms | p99 ms |", "|---|---|---|---|"]
        lines += [f"| {a} | {v['calls']} | {v['p50_ms']} | {v['p99_ms']} |" for a, v in steps.items()]
    if result.get("bring_up_failures"):
        lines += ["", f"bring-up failures: {result['bring_up_failures']}"]
    return "\n".join(lines)


# -- command -----------------------------------------------------------------------------------


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    # each station takes a socket here and one in the server (a child of this process)
    ensure_fd_limit((args.stations or DEFAULT_STATIONS[args.scenario]) + 1024)
    if not getattr(args, "against_node", False):
        return await _run_once(args)
    rounds = []
    for i in range(1, args.rounds + 1):
        ours = await _run_once(args)
        _progress(f"round {i}: ours {ours.get('calls_per_s', ours.get('rss_per_connection_kb'))}; "
                  "now the ocpp-rpc strict server")
        node = await _run_once(args, node=True)
        rounds.append({"ours": ours, "node": node, "ratio": _ratio(ours, node)})
    return {"scenario": args.scenario, "against_node": True, "rounds": rounds}


def _ratio(ours: dict[str, Any], node: dict[str, Any]) -> float | None:
    key = "rss_per_connection_kb" if ours["scenario"] == "idle" else "calls_per_s"
    if not ours.get(key) or not node.get(key):
        return None
    return round(ours[key] / node[key], 3)


def _progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


async def _run_once(args: argparse.Namespace, *, node: bool = False) -> dict[str, Any]:
    scenario = args.scenario
    stations = args.stations or DEFAULT_STATIONS[scenario]
    progress = _progress
    server: BenchServer
    failed = True
    if node:
        progress("starting the ocpp-rpc strict server (bench/ocpp_rpc_server.mjs) ...")
        server = await asyncio.to_thread(start_node_server)
    elif args.url:
        server = BenchServer(args.url.rstrip("/"), args.server_pid, api_key=args.api_key,
                             api_url=args.url.replace("ws", "http", 1).rstrip("/").rsplit("/ocpp", 1)[0] + "/api/v1")
    else:
        extra = dict(kv.split("=", 1) for kv in args.server_env)
        if args.workers and args.workers > 1:
            if not args.database_url:
                raise SystemExit("csms bench: --workers above 1 needs --database-url (PostgreSQL) and Redis")
            extra.setdefault("CSMS_REDIS_URL", "redis://127.0.0.1:6379/9")
            extra["CSMS_WORKERS"] = str(args.workers)
        progress("starting csms serve in a separate process ...")
        server = await asyncio.to_thread(start_server, database_url=args.database_url or "", env=extra)
        progress(f"server pid {server.pid} on {server.ocpp_url} (log {server.log_path})")
    try:
        prefix = args.prefix or ("IDLE" if scenario == "idle" else "BENCH")
        if scenario != "idle" and server.api_key and server.api_url:
            tokens = [_station_id(prefix, i) for i in range(1, stations + 1)]
            await create_tokens(server.api_url, server.api_key, tokens)
        if scenario == "idle":
            result = await idle(server.ocpp_url, stations=stations, version=args.version, password=args.password,
                                prefix=prefix, server_pid=server.pid, settle=args.settle,
                                connect_concurrency=args.connect_concurrency, progress=progress)
        else:
            result = await closed_loop(server.ocpp_url, stations=stations, duration=args.duration,
                                       version=args.version, password=args.password, prefix=prefix,
                                       server_pid=server.pid, warmup=args.warmup,
                                       connect_concurrency=args.connect_concurrency, mix=scenario == "mix",
                                       progress=progress)
        result["database"] = ("none (ocpp-rpc)" if node else "postgresql" if args.database_url
                              else ("external" if args.url else "sqlite"))
        result["workers"] = 1 if node or args.url else (args.workers or 1)
        failed = bool(result.get("errors")) or result.get("stations_up") != result.get("stations")
        return result
    finally:
        if server.process is not None:
            kept = server.stop(keep_log=failed)
            if kept is not None:
                print(f"server log kept in {kept}", file=sys.stderr)


def comparison_table(result: dict[str, Any]) -> str:
    """One line per server and round, and the ratio ours / ocpp-rpc."""
    idle_run = result["scenario"] == "idle"
    if idle_run:
        head = "| round | server | database | stations | RSS per connection KB | server RSS MB | load avg |"
        lines = [head, "|---|---|---|---|---|---|---|"]
    else:
        head = ("| round | server | database | calls/s | p50 ms | p99 ms | errors | server CPU % | "
                "CPU µs/call | load avg |")
        lines = [head, "|---|---|---|---|---|---|---|---|---|---|"]
    for i, rnd in enumerate(result["rounds"], 1):
        for name in ("ours", "node"):
            r = rnd[name]
            label = "ocpp-rpc strict" if name == "node" else (
                f"csms ({r['workers']} workers)" if r.get("workers", 1) > 1 else "csms")
            if idle_run:
                lines.append(f"| {i} | {label} | {r['database']} | {r['still_connected']} | "
                             f"{r['rss_per_connection_kb']} | {r['server_rss_mb']} | {r['machine_load_avg']} |")
            else:
                lines.append(f"| {i} | {label} | {r['database']} | {r['calls_per_s']} | {r['p50_ms']} | "
                             f"{r['p99_ms']} | {r['errors']} | {r['server_cpu_pct']} | "
                             f"{r['server_cpu_us_per_call']} | {r['machine_load_avg']} |")
    what = "RSS per connection" if idle_run else "calls/s"
    lines += ["", f"ratio csms / ocpp-rpc ({what}) per round: "
              + ", ".join(str(rnd["ratio"]) for rnd in result["rounds"])]
    return "\n".join(lines)


def cmd_bench(args: argparse.Namespace) -> None:
    uvloop = install_uvloop()
    result = asyncio.run(_run(args))
    result["generator_loop"] = "uvloop" if uvloop else "asyncio"
    if args.json:
        print(json.dumps(result, indent=2))
    elif result.get("against_node"):
        print()
        print(comparison_table(result))
    else:
        print()
        print(markdown_table(result))


def add_bench_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "bench", help="benchmark the OCPP endpoint with simulated stations",
        description="Start csms serve in a separate process (or target --url) and load it with simulated "
                    "stations. Scenarios: closed-loop (MeterValues back to back), mix (realistic message mix, "
                    "both versions), idle (memory per idle connection).")
    p.add_argument("--scenario", choices=["closed-loop", "mix", "idle"], default="closed-loop")
    p.add_argument("--stations", type=int, help="stations (default 200; 10000 for idle)")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds (closed-loop, mix)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    p.add_argument("--settle", type=float, default=5.0, help="idle: seconds to wait before reading memory")
    p.add_argument("--version", choices=["1.6", "2.0.1", "2.1", "mixed"], default="mixed")
    p.add_argument("--url", help="OCPP base URL of a running server (default: start one)")
    p.add_argument("--server-pid", type=int, help="with --url: the server's pid, for memory and CPU figures")
    p.add_argument("--api-key", help="with --url: an API key, to register the stations' id tokens")
    p.add_argument("--password", help="HTTP Basic password of the stations")
    p.add_argument("--database-url", help="PostgreSQL URL for the started server (default: SQLite)")
    p.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment (a CSMS_* setting) for the started server (repeatable)")
    p.add_argument("--workers", type=int, default=1,
                   help="start the server as `csms serve --workers N` (a cluster of N processes on one port; "
                        "needs --database-url and Redis: CSMS_REDIS_URL, default db 9); CPU and memory are "
                        "the sum over its processes")
    p.add_argument("--prefix", help="station id prefix (default BENCH, IDLE for idle)")
    p.add_argument("--connect-concurrency", type=int, default=100, help="handshakes in flight at once")
    p.add_argument("--against-node", action="store_true",
                   help="after each run, the same run against bench/ocpp_rpc_server.mjs (ocpp-rpc strict, no storage)")
    p.add_argument("--rounds", type=int, default=1, help="with --against-node: rounds of (ours, ocpp-rpc)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=cmd_bench)
