"""Two and three nodes share PostgreSQL and Redis: commands routed to the node holding the socket,
a dead node's stations marked offline, the newest connection of a station winning cluster-wide,
background jobs led by one node at a time."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid

import httpx
import pytest
import redis.asyncio as redis
from ocpp.v201 import call

from csms.core.tables import Station, StationEvent
from csms.testing import free_port, server_on, temporary_database
from tests.clusterkit import redis_db, spawn_node, stop_node, wait_http
from tests.stations import connect

TTL = 3.0  # node_ttl of the liveness tests (s)


@pytest.fixture
async def cluster(tmp_path):
    """(database URL, Redis URL) of the test's own."""
    async with temporary_database(tmp_path, "postgres") as db_url, redis_db() as redis_url:
        yield db_url, redis_url


@pytest.fixture
async def two_nodes(tmp_path, cluster):
    db_url, redis_url = cluster
    suffix = uuid.uuid4().hex[:6]
    async with server_on(tmp_path / "a", node_id=f"node-a-{suffix}", database_url=db_url, redis_url=redis_url,
                         unknown_stations="accept") as node_a:
        port_b = free_port()
        proc = spawn_node(tmp_path / "b", port_b, database_url=db_url, redis_url=redis_url,
                          node_id=f"node-b-{suffix}", unknown_stations="accept")
        try:
            await wait_http(f"http://127.0.0.1:{port_b}/api/v1/health")
            yield node_a, port_b
        finally:
            stop_node(proc)


async def boot(cp) -> None:
    await cp.call(call.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"))


async def eventually(check, seconds: float = 10.0):
    """Poll the async ``check`` until it returns something true; return that."""
    for _ in range(int(seconds * 10)):
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"not reached within {seconds} s")


async def test_command_routed_to_the_node_holding_the_socket(two_nodes):
    node_a, port_b = two_nodes
    station = f"MN-{uuid.uuid4().hex[:6]}"
    async with connect(f"ws://127.0.0.1:{port_b}/ocpp/{station}", station) as cp:
        await boot(cp)
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


async def answers_until(client: httpx.AsyncClient, path: str, status: int) -> list[int]:
    """The statuses of GET ``path``, asked every 0.1 s for a second or until one is ``status``."""
    statuses: list[int] = []
    for _ in range(10):
        statuses.append((await client.get(path)).status_code)
        if statuses[-1] == status:
            break
        await asyncio.sleep(0.1)
    return statuses


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
        statuses = await answers_until(robot_a, "/stations/", 401)
        assert statuses[-1] == 401, statuses


async def test_a_plan_changed_on_one_node_counts_on_the_other_at_once(two_nodes, monkeypatch):
    """Node A remembers which plan applies to an organization (for an hour, here); the plan is
    changed over REST on node B: node A refuses the organization's API key as soon as the news
    arrives through Redis, within a second."""
    from csms.core.services import plans

    node_a, port_b = two_nodes
    monkeypatch.setattr(plans, "CACHE_SECONDS", 3600.0)
    ids = {p["name"]: p["id"] for p in (await node_a.api.get("/plans")).json()["items"]}
    acme = (await node_a.api.post("/organizations", json={"name": "Acme", "plan": ids["BUSINESS"]})).json()["id"]
    created = (await node_a.api.post("/api-keys", json={"name": "acme robot", "role": "viewer",
                                                         "organization": acme})).json()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port_b}/api/v1",
                                 headers={"Authorization": f"Bearer {node_a.api_key}"}) as admin_b, \
            httpx.AsyncClient(base_url=node_a.base_url + "/api/v1",
                              headers={"Authorization": f"Bearer {created['key']}"}) as robot_a:
        assert (await robot_a.get("/sites")).status_code == 200  # the plan is remembered on node A
        changed = await admin_b.patch(f"/plans/{ids['BUSINESS']}", json={"features": ["driver_portal"]})
        assert changed.status_code == 200, changed.text
        statuses = await answers_until(robot_a, "/sites", 403)
        assert statuses[-1] == 403, statuses


async def test_a_dead_nodes_stations_go_offline_within_two_ttl(tmp_path, cluster):
    """Node B is killed (SIGKILL) with two stations on it; of the two survivors exactly one cleans
    up: within 2 × TTL its stations are offline in the database (one disconnect event each) and
    gone from the presence hash and from every node's presence map."""
    db_url, redis_url = cluster
    suffix = uuid.uuid4().hex[:6]
    common = {"database_url": db_url, "redis_url": redis_url, "unknown_stations": "accept", "node_ttl": str(TTL)}
    victim = f"node-b-{suffix}"
    async with server_on(tmp_path / "a", node_id=f"node-a-{suffix}", **common) as node_a:
        port_b, port_c = free_port(), free_port()
        proc_b = spawn_node(tmp_path / "b", port_b, node_id=victim, **common)
        proc_c = None
        r = redis.from_url(redis_url, decode_responses=True)
        try:
            # one after the other: two first starts at once race to create the admin user
            await wait_http(f"http://127.0.0.1:{port_b}/api/v1/health")
            proc_c = spawn_node(tmp_path / "c", port_c, node_id=f"node-c-{suffix}", **common)
            await wait_http(f"http://127.0.0.1:{port_c}/api/v1/health")
            stations = [f"DN-{suffix}-1", f"DN-{suffix}-2"]
            async with connect(f"ws://127.0.0.1:{port_b}/ocpp/{stations[0]}", stations[0]) as cp1, \
                    connect(f"ws://127.0.0.1:{port_b}/ocpp/{stations[1]}", stations[1], "1.6") as cp2:
                await boot(cp1)
                await eventually(lambda: asyncio.sleep(0, all(node_a.core.commands.version_of(s) for s in stations)))
                rows = await Station.select(Station.station_id, Station.connected, Station.connected_node).where(
                    Station.station_id.is_in(stations))
                assert all(row["connected"] and row["connected_node"] == victim for row in rows) and len(rows) == 2
                presence = await r.hgetall("csms:presence")
                assert {s: presence[s].split("|")[0] for s in stations} == {s: victim for s in stations}
                assert victim in await r.smembers("csms:nodes")

                os.kill(proc_b.pid, signal.SIGKILL)
                killed_at = time.monotonic()

                async def cleaned_up() -> bool:
                    online = await Station.count().where(Station.station_id.is_in(stations)
                                                         & (Station.connected == True))  # noqa: E712
                    left = [s for s in await r.hkeys("csms:presence") if s in stations]
                    return online == 0 and not left

                await eventually(cleaned_up, seconds=4 * TTL)
                elapsed = time.monotonic() - killed_at
                assert elapsed <= 2 * TTL, f"cleaned up after {elapsed:.1f} s (TTL {TTL} s)"
                del cp2
            await eventually(lambda: asyncio.sleep(0, not any(node_a.core.commands.version_of(s) for s in stations)))
            assert victim not in await r.smembers("csms:nodes")
            await node_a.core.writer.flush()
            await asyncio.sleep(1.0)  # node C's batched writes, had it cleaned up too
            for s in stations:
                kinds = await StationEvent.select(StationEvent.summary).where(
                    (StationEvent.station_id == s) & (StationEvent.kind == "disconnected"))
                assert [k["summary"] for k in kinds] == [f"node {victim} stopped answering"]
            detail = (await node_a.api.get(f"/stations/{stations[0]}")).json()
            assert detail["connected"] is False
        finally:
            await r.aclose()
            stop_node(proc_b)
            if proc_c is not None:
                stop_node(proc_c)


async def test_the_newest_connection_wins_across_nodes(two_nodes):
    """A station connected to node A connects again to node B while its old socket is open:
    node A closes the old socket, and a command issued on A reaches the new socket on B."""
    node_a, port_b = two_nodes
    station = f"NW-{uuid.uuid4().hex[:6]}"
    async with connect(node_a.ws_url(station), station) as old:
        await boot(old)
        assert station in node_a.core.connections
        async with connect(f"ws://127.0.0.1:{port_b}/ocpp/{station}", station) as new:
            await boot(new)
            await asyncio.wait_for(old._connection.wait_closed(), 10)
            assert old._connection.close_code == 4000
            await eventually(lambda: asyncio.sleep(0, station not in node_a.core.connections))
            r = await node_a.api.post(f"/stations/{station}/reset", json={"kind": "soft"})
            assert r.status_code == 201 and r.json()["status"] == "Accepted", r.text
            detail = (await node_a.api.get(f"/stations/{station}")).json()
            assert detail["connected"] is True and detail["connected_node"].startswith("node-b-")
            assert node_a.core.commands.version_of(station) == "2.0.1"
            # the epoch counter is forgotten a while after the station's last connection
            assert 0 < await node_a.core.commands.bus.redis.ttl(f"csms:epoch:{station}") <= 30 * 24 * 3600


async def test_a_command_never_goes_to_a_stale_socket(two_nodes, monkeypatch):
    """Node A misses the news that the station connected to B (its presence events are lost): a
    command issued on A finds its socket's epoch outdated, closes that stale socket and is
    forwarded to B, where the station's newest connection answers it."""
    node_a, port_b = two_nodes
    bus = node_a.core.commands.bus
    monkeypatch.setattr(bus, "_presence_event", lambda *args: None)
    station = f"ST-{uuid.uuid4().hex[:6]}"
    async with connect(node_a.ws_url(station), station) as old:
        await boot(old)
        resets: dict[str, list] = {"old": [], "new": []}
        spy(old, resets["old"])
        async with connect(f"ws://127.0.0.1:{port_b}/ocpp/{station}", station) as new:
            spy(new, resets["new"])
            await boot(new)
            await asyncio.sleep(0.5)
            assert station in node_a.core.connections  # nobody told A: its old socket is still open
            r = await node_a.api.post(f"/stations/{station}/reset", json={"kind": "soft"})
            assert r.status_code == 201 and r.json()["status"] == "Accepted", r.text
            assert resets == {"old": [], "new": [{"type": "OnIdle"}]}
            await asyncio.wait_for(old._connection.wait_closed(), 10)
            assert old._connection.close_code == 4000


def spy(cp, calls: list) -> None:
    """Record the Reset commands the station ``cp`` receives."""
    handler = cp.route_map["Reset"]["_on_action"]

    async def recorded(**kwargs):
        calls.append(kwargs)
        return await handler(**kwargs)

    cp.route_map["Reset"]["_on_action"] = recorded


LEASE = 3.0  # leader_lease of the failover test (s)


async def test_background_jobs_fail_over_when_the_leader_is_killed(tmp_path, cluster):
    """The station-operations runner is led by one of two nodes (its lease in Redis, the
    ``csms_leader`` gauge of each node's /metrics); after kill -9 of the leader the other node
    takes the job over with a larger fencing token, within a lease period and a poll."""
    db_url, redis_url = cluster
    suffix = uuid.uuid4().hex[:6]
    common = {"database_url": db_url, "redis_url": redis_url, "leader_lease": str(LEASE),
              "metrics_token": "scrape-me"}
    ports = {f"node-b-{suffix}": free_port(), f"node-c-{suffix}": free_port()}
    procs = {}
    r = redis.from_url(redis_url, decode_responses=True)

    async def leader_gauge(node: str) -> float:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{ports[node]}/metrics",
                                     headers={"Authorization": "Bearer scrape-me"})).text
        return float(text.split('csms_leader{job="stationops"} ', 1)[1].split()[0])

    async def holder():
        value = await r.get("csms:lease:stationops")
        if not value:
            return None
        token, _, node = value.partition(":")
        return int(token), node

    try:
        for node, port in ports.items():  # one after the other: first starts race for the admin user
            procs[node] = spawn_node(tmp_path / node, port, node_id=node, **common)
            await wait_http(f"http://127.0.0.1:{port}/api/v1/health")
        token, leader = await eventually(holder)
        follower = next(n for n in ports if n != leader)
        await eventually(lambda: leader_gauge(leader))
        assert await leader_gauge(follower) == 0.0
        await asyncio.sleep(LEASE)  # renewed, never handed over while the leader lives
        assert await holder() == (token, leader)

        os.kill(procs[leader].pid, signal.SIGKILL)
        killed_at = time.monotonic()
        new_token, new_leader = await eventually(lambda: _taken_over(holder, token), seconds=4 * LEASE)
        elapsed = time.monotonic() - killed_at
        assert new_leader == follower and new_token > token
        assert elapsed <= LEASE * 1.5, f"taken over after {elapsed:.1f} s (lease {LEASE} s)"
        await eventually(lambda: leader_gauge(follower))
    finally:
        await r.aclose()
        for proc in procs.values():
            stop_node(proc)


async def _taken_over(holder, token: int):
    now = await holder()
    return now if now and now[0] != token else None


async def test_a_node_taken_for_dead_registers_its_stations_again(tmp_path, cluster, monkeypatch):
    """Node A's keepalive does not reach Redis for longer than the TTL (a partition): node B takes
    it for dead and marks its station offline. When A's keepalive gets through again A finds it
    is no longer a member and registers its station again: online in the database and the
    presence hash, and a command issued on B reaches it."""
    db_url, redis_url = cluster
    suffix = uuid.uuid4().hex[:6]
    common = {"database_url": db_url, "redis_url": redis_url, "unknown_stations": "accept", "node_ttl": str(TTL)}
    node_a_id = f"node-a-{suffix}"
    async with server_on(tmp_path / "a", node_id=node_a_id, **common) as node_a:
        port_b = free_port()
        proc_b = spawn_node(tmp_path / "b", port_b, node_id=f"node-b-{suffix}", **common)
        r = redis.from_url(redis_url, decode_responses=True)
        bus = node_a.core.commands.bus
        announce = bus._announce
        try:
            await wait_http(f"http://127.0.0.1:{port_b}/api/v1/health")
            station = f"PT-{suffix}"
            async with connect(node_a.ws_url(station), station) as cp:
                await boot(cp)

                async def silent() -> bool:
                    return False

                monkeypatch.setattr(bus, "_announce", silent)  # nothing reaches Redis from A's keepalive

                async def connected() -> bool:
                    return bool(await Station.exists().where((Station.station_id == station)
                                                             & (Station.connected == True)))  # noqa: E712

                await eventually(lambda: _negated(connected), seconds=4 * TTL)
                assert await r.hget("csms:presence", station) is None
                assert station in node_a.core.connections  # the socket itself never noticed

                monkeypatch.setattr(bus, "_announce", announce)
                await eventually(connected, seconds=2 * TTL)

                async def present() -> str | None:  # written right after the database row
                    return await r.hget("csms:presence", station)

                assert (await eventually(present, seconds=2 * TTL)).startswith(f"{node_a_id}|2.0.1|")
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port_b}/api/v1",
                                             headers={"Authorization": f"Bearer {node_a.api_key}"}) as api_b:
                    reset = await eventually(lambda: _accepted(api_b.post(f"/stations/{station}/reset",
                                                                          json={"kind": "soft"})))
                assert reset["status"] == "Accepted"
        finally:
            await r.aclose()
            stop_node(proc_b)


async def _negated(check) -> bool:
    return not await check()


async def _accepted(request):
    response = await request
    return response.json() if response.status_code == 201 else None


async def test_a_site_split_over_two_nodes_stays_within_its_fuse(tmp_path, cluster):
    """Stations of one site held by different nodes: one node (the leader) shares the site's
    capacity over the sessions of both, so the limits the stations hold never add up to more
    than the fuse (each node on its own would hand its station everything)."""
    from csms.settings import SmartChargingSettings
    from csms_tools.simulator import SimStation

    db_url, redis_url = cluster
    suffix = uuid.uuid4().hex[:6]
    fast = {"measure_settle_s": "0", "verify": "false", "boot_grace_s": "0.5", "meter_interval_s": "0.2",
            "retry_s": "1", "interval_s": "2"}
    async with server_on(tmp_path / "a", node_id=f"sc-a-{suffix}", database_url=db_url, redis_url=redis_url,
                         unknown_stations="accept", leader_lease=3.0) as node_a:
        node_a.core.smart_charging.config = SmartChargingSettings(**{k: v for k, v in fast.items()})
        port_b = free_port()
        proc = spawn_node(tmp_path / "b", port_b, database_url=db_url, redis_url=redis_url, node_id=f"sc-b-{suffix}",
                          unknown_stations="accept", leader_lease="3",
                          **{f"smart_charging_{k}": v for k, v in fast.items()})
        stations: list[SimStation] = []
        try:
            await wait_http(f"http://127.0.0.1:{port_b}/api/v1/health")
            api = node_a.api
            site = (await api.post("/sites", json={"name": "Split", "grid_limit_l1_a": 32, "grid_limit_l2_a": 32,
                                                   "grid_limit_l3_a": 32})).json()
            for sid in ("SPLIT-A", "SPLIT-B"):
                assert (await api.post("/stations", json={"station_id": sid, "site": site["id"]})).status_code == 201
            for token in ("SPLIT-CAR-1", "SPLIT-CAR-2"):
                assert (await api.post("/tokens", json={"id_token": token})).status_code == 201
            a = SimStation("SPLIT-A", node_a.ws_url("SPLIT-A"), "2.0.1", evses=1)
            b = SimStation("SPLIT-B", f"ws://127.0.0.1:{port_b}/ocpp/SPLIT-B", "2.0.1", evses=1)
            stations = [a, b]
            for st in stations:
                await st.connect()
                assert await st.boot() == "Accepted"
                await st.announce()
            await a.start_session(1, "SPLIT-CAR-1")
            await b.start_session(1, "SPLIT-CAR-2")

            async def shared() -> bool:
                for st in stations:
                    await st.meter_values(1, advance_s=30)
                return (a.limit_a(1), b.limit_a(1)) == (16.0, 16.0)

            await eventually(shared, seconds=30)
            # the limits held never exceed the fuse while they settle, and stay so
            for _ in range(10):
                assert (a.limit_a(1) or 0) + (b.limit_a(1) or 0) <= 32.0 + 1e-6, (a.profiles, b.profiles)
                await asyncio.sleep(0.2)
            # one car leaves: the other gets the whole site, whichever node holds it
            await a.stop_session(1)

            async def all_to_b() -> bool:
                await b.meter_values(1, advance_s=30)
                return b.limit_a(1) == 32.0

            await eventually(all_to_b, seconds=30)
        finally:
            for st in stations:
                await st.close()
            stop_node(proc)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_transaction_goes_on_after_its_station_moves_to_another_node(two_nodes, version):
    """Started on node A, the station reconnects to node B and goes on: B stores its meter values
    and its end (it reads the running session from the database when the station connects), and
    A, which the station left, no longer counts it as running there."""
    from ocpp.v16 import call as call16

    node_a, port_b = two_nodes
    station = f"MOVE-{uuid.uuid4().hex[:6]}"
    assert (await node_a.api.post("/tokens", json={"id_token": "MOVER"})).status_code == 201
    url_b = f"ws://127.0.0.1:{port_b}/ocpp/{station}"
    ts = "2026-12-06T08:00:00Z"
    if version == "1.6":
        async with connect(node_a.ws_url(station), station, version="1.6") as cp:
            await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
            started = await cp.call(call16.StartTransaction(connector_id=1, id_tag="MOVER", meter_start=1000,
                                                            timestamp=ts))
        tx = str(started.transaction_id)
        async with connect(url_b, station, version="1.6") as cp:
            await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
            await cp.call(call16.MeterValues(connector_id=1, transaction_id=int(tx), meter_value=[{
                "timestamp": "2026-12-06T08:30:00Z", "sampledValue": [{"value": "4000"}]}]))
            await cp.call(call16.StopTransaction(meter_stop=7000, timestamp="2026-12-06T09:00:00Z",
                                                 transaction_id=int(tx)))
    else:
        tx = f"T-{uuid.uuid4().hex[:8]}"

        def event(kind: str, seq: int, wh: float, when: str, **extra):
            return call.TransactionEvent(
                event_type=kind, timestamp=when, trigger_reason="MeterValuePeriodic" if kind == "Updated" else
                ("Authorized" if kind == "Started" else "StopAuthorized"), seq_no=seq,
                transaction_info={"transaction_id": tx, **extra}, evse={"id": 1, "connector_id": 1},
                meter_value=[{"timestamp": when, "sampled_value": [{"value": wh}]}],
                **({"id_token": {"id_token": "MOVER", "type": "ISO14443"}} if kind == "Started" else {}))

        async with connect(node_a.ws_url(station), station) as cp:
            await boot(cp)
            await cp.call(event("Started", 0, 1000.0, ts))
        async with connect(url_b, station) as cp:
            await boot(cp)
            await cp.call(event("Updated", 1, 4000.0, "2026-12-06T08:30:00Z"))
            await cp.call(event("Ended", 2, 7000.0, "2026-12-06T09:00:00Z", stopped_reason="Local"))

    async def ended():
        rows = (await node_a.api.get("/sessions", params={"station_id": station})).json()
        rows = rows["items"] if isinstance(rows, dict) else rows
        return rows if rows and rows[0]["state"] == "completed" else None

    rows = await eventually(ended)
    assert len(rows) == 1 and rows[0]["transaction_id"] == tx and round(float(rows[0]["energy_wh"])) == 6000, rows
    readings = (await node_a.api.get(f"/sessions/{rows[0]['id']}/meter-values")).json()
    readings = readings["items"] if isinstance(readings, dict) else readings
    assert 4000.0 in {float(r["value"]) for r in readings}, readings
    assert node_a.core.sessions.for_station(station) == []
