"""``csms serve --workers N``: N processes on one port, each a node of the cluster through Redis, so
a command reaches a station whichever worker took the station's socket and whichever took the
REST request."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import httpx
import psutil
import redis.asyncio as redis
from ocpp.v201 import call

from csms.testing import free_port, temporary_database
from tests.clusterkit import redis_db, stop_node, wait_http
from tests.stations import connect

WORKERS = 2
STATIONS = 6


async def boot(cp) -> None:
    await cp.call(call.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"))


def csms_env(tmp_path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    env.update(CSMS_DATA_DIR=str(tmp_path / "data"), CSMS_LOG_LEVEL="warning",
               **{f"CSMS_{k.upper()}": v for k, v in settings.items()})
    return env


def test_workers_without_redis_are_refused_in_words(tmp_path):
    done = subprocess.run([sys.executable, "-m", "csms", "serve", "--workers", "2"], env=csms_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "--workers above 1 needs redis_url" in done.stderr


async def test_a_command_reaches_the_station_from_every_worker(tmp_path):
    async with temporary_database(tmp_path, "postgres") as db_url, redis_db() as redis_url:
        env = csms_env(tmp_path, database_url=db_url, redis_url=redis_url, unknown_stations="accept",
                       node_id=f"w-{uuid.uuid4().hex[:6]}")
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "csms", "serve", "--port", str(port),
                                 "--workers", str(WORKERS)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            await wait_http(f"http://127.0.0.1:{port}/api/v1/health")
            client = redis.from_url(redis_url, decode_responses=True)
            try:
                for _ in range(100):  # every worker announces itself as a node
                    nodes = await client.smembers("csms:nodes")
                    if len(nodes) == WORKERS:
                        break
                    await asyncio.sleep(0.1)
            finally:
                await client.aclose()
            assert len(nodes) == WORKERS and all(n.startswith(env["CSMS_NODE_ID"] + ":") for n in nodes)
            workers = [c for c in psutil.Process(proc.pid).children(recursive=True)
                       if "spawn_main" in " ".join(c.cmdline())]
            assert len(workers) == WORKERS
            key = subprocess.run([sys.executable, "-m", "csms", "apikey", "create", "--name", "w"], env=env,
                                 capture_output=True, text=True, timeout=60).stdout.strip().splitlines()[-1]

            ids = [f"WK-{i}-{uuid.uuid4().hex[:4]}" for i in range(STATIONS)]
            async with _stations(port, ids):
                answered = 0
                for round_ in range(3):
                    for sid in ids:
                        # a new connection per request: the kernel hands it to either worker
                        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/v1",
                                                     headers={"Authorization": f"Bearer {key}"}) as api:
                            r = await api.post(f"/stations/{sid}/reset", json={"kind": "soft"})
                        assert r.status_code == 201, (round_, sid, r.text)
                        assert r.json()["status"] == "Accepted"
                        answered += 1
                assert answered == 3 * STATIONS
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/v1",
                                             headers={"Authorization": f"Bearer {key}"}) as api:
                    held = {(await api.get(f"/stations/{sid}")).json()["connected_node"] for sid in ids}
                print("stations held by", sorted(held))
                assert held <= nodes  # each station is held by one of the workers
        finally:
            stop_node(proc)
            _, err = proc.communicate(timeout=15)
        assert b"Traceback" not in err, err.decode(errors="replace")[-3000:]


class _stations:
    """The stations connected (and booted) for the block, each with its receive loop running."""

    def __init__(self, port: int, ids: list[str]) -> None:
        self.port, self.ids = port, ids
        self._contexts: list = []

    async def __aenter__(self) -> None:
        for sid in self.ids:
            ctx = connect(f"ws://127.0.0.1:{self.port}/ocpp/{sid}", sid)
            cp = await ctx.__aenter__()
            self._contexts.append(ctx)
            await boot(cp)

    async def __aexit__(self, *exc) -> None:
        for ctx in reversed(self._contexts):
            await ctx.__aexit__(None, None, None)
