"""Two nodes share PostgreSQL and Redis: a command issued on one reaches a station on the other."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import httpx
import pytest
from ocpp.v201 import call

from csms.testing import free_port, server_on, temporary_database
from tests.stations import connect

REDIS_URL = os.environ.get("CSMS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def wait_http(url: str, seconds: float = 30) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(int(seconds * 10)):
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(url)


@pytest.fixture
async def two_nodes(tmp_path):
    async with temporary_database(tmp_path, "postgres") as db_url:
        common = {"database_url": db_url, "redis_url": REDIS_URL, "unknown_stations": "accept"}
        suffix = uuid.uuid4().hex[:6]
        async with server_on(tmp_path / "a", node_id=f"node-a-{suffix}", **common) as node_a:
            port_b = free_port()
            env = {**os.environ, "CSMS_DATABASE_URL": db_url, "CSMS_REDIS_URL": REDIS_URL,
                   "CSMS_NODE_ID": f"node-b-{suffix}", "CSMS_UNKNOWN_STATIONS": "accept",
                   "CSMS_DATA_DIR": str(tmp_path / "b"), "CSMS_LOG_LEVEL": "warning"}
            proc = subprocess.Popen([sys.executable, "-m", "csms", "serve", "--port", str(port_b)], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                await wait_http(f"http://127.0.0.1:{port_b}/api/v1/health")
                yield node_a, port_b
            finally:
                proc.terminate()
                proc.wait(15)


async def test_command_routed_to_the_node_holding_the_socket(two_nodes):
    node_a, port_b = two_nodes
    station = f"MN-{uuid.uuid4().hex[:6]}"
    async with connect(f"ws://127.0.0.1:{port_b}/ocpp/{station}", station) as cp:
        await cp.call(call.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"))
        for _ in range(50):  # presence travels through Redis
            if node_a.core.commands.version_of(station):
                break
            await asyncio.sleep(0.1)
        assert node_a.core.commands.version_of(station) == "2.0.1"
        r = await node_a.api.post(f"/stations/{station}/reset", json={"kind": "soft"})
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "Accepted"
        r = await node_a.api.post(f"/stations/{station}/ocpp/ClearCache", json={})
        assert r.status_code == 502 and r.json()["extra"]["error"] == "NotImplemented"
        r = await node_a.api.post(f"/stations/{station}/ocpp/Reset", json={"type": "Never"})
        assert r.status_code == 400
        detail = (await node_a.api.get(f"/stations/{station}")).json()
        assert detail["connected"] is True and detail["connected_node"].startswith("node-b-")
    for _ in range(50):
        if node_a.core.commands.version_of(station) is None:
            break
        await asyncio.sleep(0.1)
    r = await node_a.api.post(f"/stations/{station}/reset", json={"kind": "soft"})
    assert r.status_code == 409


async def test_key_revoked_on_one_node_is_refused_by_the_other(two_nodes, monkeypatch):
    """Revoked over REST on node B: node A (whose cache would trust the key for an hour) refuses
    it as soon as the news arrives through Redis, within a second."""
    from csms.api import auth

    node_a, port_b = two_nodes
    monkeypatch.setattr(auth, "CACHE_SECONDS", 3600.0)
    created = (await node_a.api.post("/api-keys", json={"name": "roaming robot", "role": "viewer"})).json()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port_b}/api/v1",
                                 headers={"Authorization": f"Bearer {node_a.api_key}"}) as admin_b, \
            httpx.AsyncClient(base_url=node_a.base_url + "/api/v1",
                              headers={"Authorization": f"Bearer {created['key']}"}) as robot_a:
        assert (await robot_a.get("/stations/")).status_code == 200  # cached on node A
        assert (await admin_b.delete(f"/api-keys/{created['id']}")).status_code == 204
        statuses = []
        for _ in range(10):
            statuses.append((await robot_a.get("/stations/")).status_code)
            if statuses[-1] == 401:
                break
            await asyncio.sleep(0.1)
        assert statuses[-1] == 401, statuses
