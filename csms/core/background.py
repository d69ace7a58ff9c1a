"""Work a service starts off the request path: after an event, or after answering a request.

A service that reacts to events (a boot, a stopped session) with calls or queries of its own
must not hold up the dispatcher or the request, so it starts a task; :class:`BackgroundTasks`
keeps those tasks (the loop holds only weak references), logs a failure once with the service's
logger, cancels them when the service stops and lets tests wait for them.

A loop that sleeps until it is woken or a period is over waits with :func:`wait_event`, and
anything else bounded in time goes through ``asyncio.timeout``, never ``asyncio.wait_for``:
on Python 3.11 ``wait_for`` returns the result when a cancellation arrives just as its
awaitable finishes, so a cancelled loop would run on and whoever awaits it would wait for ever.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Coroutine


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds have passed; True if it was set.
    A cancellation always ends the wait (see the module's note on ``asyncio.wait_for``)."""
    try:
        async with asyncio.timeout(max(timeout, 0.0)):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True


class BackgroundTasks:
    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what  # named in the log line of a failure
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, work: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("%s failed", self.what, exc_info=task.exception())

    async def drain(self) -> None:
        """Wait until every task is done, those they start included (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def cancel(self) -> None:
        """Cancel every task and wait until they are gone (the service stops)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
