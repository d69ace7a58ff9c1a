"""Throttling of failed station logins (HTTP Basic handshakes with a wrong password).

Each failure is counted per client address and per station id in a sliding window. Past the
limit, further handshakes from that address, or for that station id, are refused with 429
before any password is checked, so guessing costs the server nothing and other stations keep
their answers fast. The real station is not locked out for long: a block ends one window after
the failures stop, and the address a station last logged in from successfully is exempt from
the per-station limit (an attacker elsewhere cannot lock it out at all).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque


class FailedLogins:
    def __init__(self, *, per_address: int = 10, per_station: int = 20, window_s: float = 60.0,
                 max_keys: int = 10_000) -> None:
        self.per_address = per_address
        self.per_station = per_station
        self.window_s = window_s
        self.max_keys = max_keys
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._trusted: OrderedDict[str, str] = OrderedDict()  # station id -> last good address
        self.failed_total = 0
        self.throttled_total = 0

    def _recent(self, key: tuple[str, str], now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, station_id: str, address: str) -> float:
        """Seconds until a handshake from ``address`` for ``station_id`` is checked again (0: now)."""
        now = time.monotonic()
        waits = []
        by_address = self._recent(("address", address), now)
        if by_address is not None and len(by_address) >= self.per_address:
            waits.append(by_address[0] + self.window_s - now)
        if self._trusted.get(station_id) != address:
            by_station = self._recent(("station", station_id), now)
            if by_station is not None and len(by_station) >= self.per_station:
                waits.append(by_station[0] + self.window_s - now)
        if waits:
            self.throttled_total += 1
            return max(0.001, max(waits))
        return 0.0

    def failed(self, station_id: str, address: str) -> None:
        now = time.monotonic()
        self.failed_total += 1
        for key in (("address", address), ("station", station_id)):
            times = self._failures.get(key)
            if times is None:
                times = self._failures[key] = deque(maxlen=max(self.per_address, self.per_station))
            else:
                self._failures.move_to_end(key)
            times.append(now)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, station_id: str, address: str) -> None:
        self._trusted[station_id] = address
        self._trusted.move_to_end(station_id)
        while len(self._trusted) > self.max_keys:
            self._trusted.popitem(last=False)
