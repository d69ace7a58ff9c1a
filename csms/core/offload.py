"""CPU-heavy work off the event loop: a small, bounded thread pool.

Anything that can take more than about a millisecond of CPU (password hashing and checking,
PDF rendering, encoding a large export) runs here, so one client's expensive request never
delays another station's answer. The pool is bounded: a flood of such work queues up here
instead of taking the process's cores from the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

T = TypeVar("T")

_WORKERS = max(1, min(4, (os.cpu_count() or 2)))
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(_WORKERS, thread_name_prefix="csms-cpu")
    return _pool


async def run_cpu(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in the CPU pool and return its result."""
    call = functools.partial(fn, *args, **kwargs) if kwargs else (lambda: fn(*args))
    return await asyncio.get_running_loop().run_in_executor(_executor(), call)
