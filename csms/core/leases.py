"""Leases and leader election on Redis: one node at a time runs a background job.

A :class:`Lease` is a Redis key held for ``ttl`` seconds: taken with ``SET key token NX PX``,
renewed and released by Lua compare-and-set scripts (only the holder's token renews or deletes
it), where the token is a fencing token drawn with ``INCR``: every new holder's is larger than
every earlier holder's, so a store that remembers the largest token it saw can refuse a late
write from a holder that lost its lease without knowing it (a long pause, a partition).

:func:`lead` (:func:`csms.core.runtime.run_as_leader`: with the running core's Redis connection)
runs a job on the node holding the job's lease: the job starts when the lease is won, is
cancelled as soon as a renewal fails, and another node wins the lease within one lease period
(plus a tenth of it, the followers' polling interval) after its holder died.
Without Redis (one node) the job simply runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable

if TYPE_CHECKING:
    import redis.asyncio as redis

log = logging.getLogger("csms.leases")

LEASE_PREFIX = "csms:lease:"
FENCE_PREFIX = "csms:fence:"

# KEYS[1] the lease; ARGV[1] the holder's value, ARGV[2] the period (ms)
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class Lease:
    """One named lease held (or not) by ``owner`` (a node id) on Redis."""

    def __init__(self, client: redis.Redis, name: str, owner: str, ttl: float) -> None:
        self.client = client
        self.name = name
        self.owner = owner
        self.ttl_ms = max(1, int(ttl * 1000))
        self.key = LEASE_PREFIX + name
        self.token: int | None = None  # the fencing token while held
        self._value = ""

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it; on success :attr:`token` is the new fencing token."""
        token = int(await self.client.incr(FENCE_PREFIX + self.name))
        value = f"{token}:{self.owner}"
        if await self.client.set(self.key, value, nx=True, px=self.ttl_ms):
            self.token, self._value = token, value
            return True
        return False

    async def renew(self) -> bool:
        """Extend the lease by its period; False (and no longer held) when another holds it."""
        if self.token is None:
            return False
        if await self.client.eval(_RENEW, 1, self.key, self._value, str(self.ttl_ms)):
            return True
        self.token = None
        return False

    async def release(self) -> None:
        """Give the lease up (only if still ours) so that another node need not wait for it to expire."""
        if self.token is None:
            return
        self.token = None
        await self.client.eval(_RELEASE, 1, self.key, self._value)

    async def holder(self) -> tuple[int, str] | None:
        """(fencing token, owner) of whoever holds the lease now, or None."""
        value = await self.client.get(self.key)
        if not value:
            return None
        token, _, owner = str(value).partition(":")
        return int(token), owner


@dataclass
class LeaderJob:
    """A job run by :func:`run_as_leader`: :attr:`token` is the fencing token of this node's
    current term (None while another node leads); :meth:`stop` ends it and gives the lease up."""

    name: str
    token: int | None = None
    terms: int = 0  # how many times this node has won the lease
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def is_leader(self) -> bool:
        return self.token is not None

    async def stop(self) -> None:
        from csms.core import metrics

        if self._task is not None:
            # again until it ends: Python 3.11's wait_for can swallow a cancellation that comes as
            # its awaitable finishes, and the task would run on (and this wait never end)
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=1.0)
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.token = None
        metrics.LEADER.labels(self.name).set(0)


def lead(name: str, job: Callable[[], Awaitable[Any]], *, client: redis.Redis | None, owner: str,
         lease_seconds: float) -> LeaderJob:
    """:func:`csms.core.runtime.run_as_leader` with everything given: ``client`` None means one
    node (no Redis)."""
    from csms.core import metrics

    handle = LeaderJob(name)
    if client is None:
        handle.token, handle.terms = 0, 1
        metrics.LEADER.labels(name).set(1)
        handle._task = asyncio.create_task(_keep_running(name, job), name=f"csms-job-{name}")
        return handle
    lease = Lease(client, name, owner, lease_seconds)
    handle._task = asyncio.create_task(_lead(handle, lease, job), name=f"csms-leader-{name}")
    return handle


async def _keep_running(name: str, job: Callable[[], Awaitable[Any]], pause: float = 1.0) -> None:
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s failed; starting it again", name)
        await asyncio.sleep(pause)


async def _lead(handle: LeaderJob, lease: Lease, job: Callable[[], Awaitable[Any]]) -> None:
    from csms.core import metrics

    ttl = lease.ttl_ms / 1000
    poll, renew_every = ttl / 10, ttl / 3
    gauge = metrics.LEADER.labels(handle.name)
    gauge.set(0)
    try:
        while True:
            try:  # a Redis that does not answer counts as unreachable (never waited for without end)
                async with asyncio.timeout(ttl):
                    won = await lease.acquire()
            except Exception:
                log.warning("leader election for %s: Redis unreachable", handle.name, exc_info=True)
                won = False
            if not won:
                await asyncio.sleep(poll)
                continue
            handle.token, handle.terms = lease.token, handle.terms + 1
            gauge.set(1)
            log.info("%s: this node leads (fencing token %s)", handle.name, lease.token)
            running = asyncio.create_task(_keep_running(handle.name, job), name=f"csms-job-{handle.name}")
            try:
                await _hold(lease, running, ttl, renew_every)
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
                handle.token = None
                gauge.set(0)
            log.warning("%s: this node lost the lease; the job stopped", handle.name)
    finally:
        try:  # bounded: a lease not released in time expires by itself
            async with asyncio.timeout(ttl):
                await asyncio.shield(lease.release())
        except Exception:
            pass


async def _hold(lease: Lease, running: asyncio.Task[None], ttl: float, renew_every: float) -> None:
    """Renew until a renewal is refused, or Redis stays unreachable until the lease may have
    expired (the job must stop before another node may start it)."""
    renewed_at = time.monotonic()
    while not running.done():
        await asyncio.sleep(renew_every)
        try:  # a renewal Redis does not answer in time is a failed one: the job stops before the lease may expire
            async with asyncio.timeout(renew_every):
                renewed = await lease.renew()
            if not renewed:
                return
            renewed_at = time.monotonic()
        except Exception:
            log.warning("lease %s: renewal failed", lease.name, exc_info=True)
            if time.monotonic() - renewed_at > ttl * 2 / 3:
                return
