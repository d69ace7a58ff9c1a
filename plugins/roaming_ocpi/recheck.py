"""A database answer on a station hot path, trusted for a few seconds.

Used where the roaming plugin would otherwise ask the database for every station message or
smart-charging round (is there any partner? which sessions carry a partner's profile?). A
change made on this node calls :meth:`Recheck.forget`, so it shows at once; a change made on
another node shows after at most ``seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Recheck(Generic[T]):
    """``await recheck()`` runs ``ask`` at most once per ``seconds`` and returns its answer."""

    def __init__(self, seconds: float, ask: Callable[[], Awaitable[T]]) -> None:
        self.seconds = seconds
        self._ask = ask
        self._answer: T | None = None
        self._until = -1.0  # monotonic time the answer expires

    async def __call__(self) -> T:
        now = time.monotonic()
        if now >= self._until:
            self._answer = await self._ask()
            self._until = now + self.seconds
        return self._answer  # type: ignore[return-value]

    def forget(self) -> None:
        """The next call asks the database."""
        self._until = -1.0
