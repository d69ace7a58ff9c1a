"""Leases and leader election on the real Redis (csms/core/leases.py)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis

from csms.core.leases import Lease
from csms.core.runtime import run_as_leader
from tests.clusterkit import redis_db


@pytest.fixture
async def client():
    async with redis_db() as url:
        c = redis.from_url(url, decode_responses=True)
        yield c
        await c.aclose()


async def wait_for(predicate, seconds: float = 10.0) -> None:
    for _ in range(int(seconds * 20)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_one_holder_at_a_time_with_growing_fencing_tokens(client):
    a, b = Lease(client, "job", "node-a", 5), Lease(client, "job", "node-b", 5)
    assert await a.acquire() is True
    assert await b.acquire() is False and b.token is None
    assert await a.holder() == (a.token, "node-a")
    assert await a.renew() is True
    assert 4000 < await client.pttl("csms:lease:job") <= 5000
    assert await b.renew() is False  # never held: nothing to renew
    await b.release()  # not the holder: the lease stays
    assert await a.holder() == (a.token, "node-a")
    first = a.token
    await a.release()
    assert await client.exists("csms:lease:job") == 0
    assert await b.acquire() is True
    assert b.token > first  # every later holder's token is larger


async def test_a_holder_that_lost_its_lease_cannot_renew_or_release_it(client):
    a, b = Lease(client, "job", "node-a", 5), Lease(client, "job", "node-b", 5)
    assert await a.acquire()
    await client.delete("csms:lease:job")  # expired (a long pause of node a)
    assert await b.acquire()
    assert await a.renew() is False and a.token is None
    await a.release()
    assert (await b.holder())[1] == "node-b"


async def test_exactly_one_job_runs_and_another_node_takes_over(client):
    running: dict[str, int] = {"node-a": 0, "node-b": 0}

    def job_of(node: str):
        async def job() -> None:
            running[node] += 1
            try:
                await asyncio.Event().wait()
            finally:
                running[node] -= 1
        return job

    a = run_as_leader("runner", job_of("node-a"), lease_seconds=1.0, client=client, owner="node-a")
    await wait_for(lambda: a.is_leader)
    b = run_as_leader("runner", job_of("node-b"), lease_seconds=1.0, client=client, owner="node-b")
    for _ in range(15):  # a few lease periods: a keeps renewing, b never starts
        await asyncio.sleep(0.2)
        assert running == {"node-a": 1, "node-b": 0} and not b.is_leader
    first = a.token
    # the lease is taken from a (as when its node paused past the lease): a stops its job
    await client.set("csms:lease:runner", "0:somebody-else", px=300)
    await wait_for(lambda: running["node-a"] == 0 and not a.is_leader)
    await wait_for(lambda: (a.is_leader or b.is_leader) and sum(running.values()) == 1)
    leader = a if a.is_leader else b
    assert leader.token > first
    # the leader stops (shutdown): it gives the lease up and the other one leads at once
    follower, follower_node = (b, "node-b") if leader is a else (a, "node-a")
    await leader.stop()
    held = await client.get("csms:lease:runner")
    assert held is None or held.endswith(f":{follower_node}")  # given up, not left to expire
    await wait_for(lambda: follower.is_leader)
    assert follower.token > first and sum(running.values()) == 1
    await follower.stop()
    assert running == {"node-a": 0, "node-b": 0}
    assert await client.exists("csms:lease:runner") == 0


async def test_a_failing_job_is_started_again(client):
    runs = []

    async def job() -> None:
        runs.append(1)
        raise RuntimeError("boom")

    handle = run_as_leader("flaky", job, lease_seconds=1.0, client=client, owner="n")
    await wait_for(lambda: len(runs) >= 2, seconds=5)
    assert handle.is_leader
    await handle.stop()


async def test_without_redis_the_job_just_runs(server):
    started = asyncio.Event()

    async def job() -> None:
        started.set()
        await asyncio.Event().wait()

    handle = run_as_leader("single", job)
    await asyncio.wait_for(started.wait(), 5)
    assert handle.is_leader and handle.token == 0
    await handle.stop()
