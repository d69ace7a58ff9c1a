"""Waiting in a background loop: a cancellation always ends the loop.

On Python 3.11 ``asyncio.wait_for`` returns normally when a cancellation arrives just as the
awaited event is set: a loop sleeping that way runs on after ``cancel()``, and whoever awaits it
at shutdown waits for ever (seen once as a 300 s hang of a leader job's ``stop()``). Loops sleep
with :func:`wait_event`, and no shipped module calls ``asyncio.wait_for``."""

from __future__ import annotations

import ast
import asyncio
import sys
from pathlib import Path

import pytest

from csms.core.background import wait_event
from csms.plugin_api import wait_event as public_wait_event

ROOT = Path(__file__).resolve().parent.parent


async def loop_ends_on_cancel(sleep, yields: int) -> bool:
    """Set the loop's event, let the loop run ``yields`` steps, cancel it: did it end?"""
    wake = asyncio.Event()

    async def loop() -> None:
        while True:
            await sleep(wake)
            wake.clear()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    wake.set()
    for _ in range(yields):
        await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=0.5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return task in done


async def with_wait_for(wake: asyncio.Event) -> None:
    try:
        await asyncio.wait_for(wake.wait(), 10)
    except asyncio.TimeoutError:
        pass


async def with_wait_event(wake: asyncio.Event) -> None:
    await wait_event(wake, 10)


async def test_a_cancelled_loop_ends_whenever_the_cancellation_arrives() -> None:
    ended = [await loop_ends_on_cancel(with_wait_event, k) for k in range(8)]
    assert ended == [True] * 8


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="wait_for is built on asyncio.timeout since 3.12")
async def test_the_race_is_real_with_wait_for_on_python_3_11() -> None:
    """The same loop with ``wait_for`` runs on for some arrival times: the test above can fail."""
    ended = [await loop_ends_on_cancel(with_wait_for, k) for k in range(8)]
    assert not all(ended), ended


async def test_wait_event_says_whether_the_event_was_set() -> None:
    wake = asyncio.Event()
    assert await public_wait_event(wake, 0.01) is False
    assert await wait_event(wake, -1) is False  # a deadline already past: no wait
    asyncio.get_running_loop().call_later(0.01, wake.set)
    assert await wait_event(wake, 5) is True
    assert await wait_event(wake, 0) is True  # already set


def test_no_shipped_module_calls_asyncio_wait_for() -> None:
    found = []
    for base in ("csms", "plugins"):
        for path in sorted((ROOT / base).rglob("*.py")):
            if "tests" in path.relative_to(ROOT).parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (isinstance(node, ast.Attribute) and node.attr == "wait_for"
                        and isinstance(node.value, ast.Name) and node.value.id == "asyncio"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []
