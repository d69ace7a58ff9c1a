"""Multi-node test kit: a Redis database index of the test's own, and `csms serve` processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import httpx
import redis.asyncio as redis

REDIS_BASE = os.environ.get("CSMS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]


@asynccontextmanager
async def redis_db() -> AsyncIterator[str]:
    """The URL of a Redis database index (1-15) claimed for this test (a claim key in db 0, so
    tests running at the same time never share one), emptied before and after."""
    claim = uuid.uuid4().hex
    registry = redis.from_url(f"{REDIS_BASE}/0")
    try:
        for _ in range(600):
            for index in range(1, 16):
                if await registry.set(f"csms-test:redis-db:{index}", claim, nx=True, ex=900):
                    url = f"{REDIS_BASE}/{index}"
                    client = redis.from_url(url)
                    await client.flushdb()
                    try:
                        yield url
                    finally:
                        await client.flushdb()
                        await client.aclose()
                        if (await registry.get(f"csms-test:redis-db:{index}")) == claim.encode():
                            await registry.delete(f"csms-test:redis-db:{index}")
                    return
            await asyncio.sleep(0.5)
        raise TimeoutError("no free Redis database index")
    finally:
        await registry.aclose()


async def wait_http(url: str, seconds: float = 60) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(int(seconds * 10)):
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(url)


def spawn_node(data_dir: Path, port: int, **settings: str) -> subprocess.Popen[bytes]:
    """`csms serve` on ``port`` in a process of its own, with ``CSMS_<NAME>`` settings."""
    env = {**os.environ, "CSMS_DATA_DIR": str(data_dir), "CSMS_LOG_LEVEL": "warning",
           **{f"CSMS_{k.upper()}": v for k, v in settings.items()}}
    return subprocess.Popen([sys.executable, "-m", "csms", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_node(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
