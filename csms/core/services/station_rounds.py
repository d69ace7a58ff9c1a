"""What services that bring each connected station up to date share: when a station is due after
it connected or booted, a loop that sleeps until the next due time (or a wake-up), and a round
over many stations with a bound on how many are talked to at once.

Used by the local list service (``local_lists``: a station's list after its boot) and the
clearing of erased drivers' data on stations (``station_data_clear``). The delays are
:class:`~csms.settings.LocalListSettings`' ``connect_delay_s`` (after an accepted boot: the
station has just said who it is) and ``boot_grace_s`` (after a connection without a boot: a
station that reconnects without booting again).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Iterable

from csms.core import events as ev
from csms.core.background import wait_event
from csms.settings import LocalListSettings

IDLE_WAKE_S = 3600.0  # nothing due: look again after this long anyway


class StationDueTimes:
    """Per station, when it is next due (monotonic time) and a flag that sticks until then (the
    local lists' "check the station's version first")."""

    def __init__(self, config: LocalListSettings, wake: asyncio.Event) -> None:
        self.config = config
        self.wake = wake
        self.due: dict[str, tuple[float, bool]] = {}

    def schedule(self, station_id: str, delay: float, *, flag: bool = False) -> None:
        """Due in ``delay`` seconds, or earlier if it already was; the flag is kept once set."""
        at = time.monotonic() + delay
        previous = self.due.get(station_id)
        if previous is not None:
            at, flag = min(at, previous[0]), flag or previous[1]
        self.due[station_id] = (at, flag)
        self.wake.set()

    def on_event(self, event: ev.Event, *, flag: bool = False) -> None:
        """An accepted boot makes a station due after ``connect_delay_s`` (instead of earlier
        plans), a connection after ``boot_grace_s``; a station that went away is due no more."""
        if isinstance(event, ev.StationBooted):
            if event.registration_status == "Accepted":
                self.due.pop(event.station_id, None)
                self.schedule(event.station_id, self.config.connect_delay_s, flag=flag)
        elif isinstance(event, ev.StationConnected):
            self.schedule(event.station_id, self.config.boot_grace_s, flag=flag)
        elif isinstance(event, ev.StationDisconnected):
            self.due.pop(event.station_id, None)

    def next_at(self) -> float:
        return min((at for at, _ in self.due.values()), default=float("inf"))

    def take(self, now: float) -> dict[str, bool]:
        """The stations due at ``now`` with their flags, no longer due afterwards."""
        ready = {sid: flag for sid, (at, flag) in self.due.items() if at <= now}
        for sid in ready:
            self.due.pop(sid, None)
        return ready


async def run_rounds(wake: asyncio.Event, next_at: Callable[[], float], one_round: Callable[[], Awaitable[None]],
                     log: logging.Logger, what: str) -> None:
    """Run ``one_round`` whenever ``wake`` is set or the monotonic time ``next_at()`` comes (at
    once when it has come); a failing round is logged and the loop goes on a second later.
    Runs until cancelled."""
    while True:
        try:
            now = time.monotonic()
            at = next_at()
            if at > now:
                await wait_event(wake, min(at - now, IDLE_WAKE_S))
            wake.clear()
            await one_round()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; going on", what)
            await asyncio.sleep(1.0)


async def for_each_station(items: Iterable[tuple[str, bool]], act: Callable[[str, bool], Awaitable[None]],
                           limit: int) -> None:
    """``act(station_id, flag)`` for every item, at most ``limit`` stations at once, in station
    order; each one's failure is its own (``act`` logs or ignores it)."""
    gate = asyncio.Semaphore(limit)

    async def one(station_id: str, flag: bool) -> None:
        async with gate:
            await act(station_id, flag)

    await asyncio.gather(*(one(sid, flag) for sid, flag in sorted(items)))
