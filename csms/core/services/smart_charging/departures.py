"""Departures learned from the CSMS's own history: when a car that just plugged in will leave.

The core is pure (no database; :func:`learn` and :func:`predict`, also used by
``bench/acn_departures.py`` on ACN-Data). From the completed sessions of one site in a bounded
lookback it keeps, per *key* (``card:<id token>``, ``driver:<id>``) and for the whole site, the
stays (departure − arrival) by day type (weekday/weekend) and local arrival hour. A session's
departure is its arrival plus a robust statistic (the median by default) of the stays that are
alike, first of its card, then of its driver, then of everyone at the site:

* **card / driver**: the stays of that key on the same day type arriving within ±2 h, if there
  are at least ``min_key_stays`` (3) of them;
* **site**: the site's stays on the same day type arriving within ±1 h, widened to ±3 h, if
  there are at least ``min_site_stays`` (10);
* otherwise nothing is learned.

A car still plugged in after its predicted departure gets the statistic of the alike stays that
lasted longer than it has so far (so a prediction is never in the past while such stays exist).

:class:`DepartureLearner` is the CSMS side: one bounded read per site (the last
``LOOKBACK_DAYS`` days, at most ``MAX_ROWS`` sessions) fitted in a worker thread, kept for
``REFRESH_S`` and refreshed in the background; a session's prediction is made once and kept
while it is ahead. How a learned departure is combined with the driver's or the EV's own
estimate is :func:`combine` (the rule, measured on ACN-Data, is in ``bench/README.md``).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

log = logging.getLogger("csms.smart_charging")

LOOKBACK_DAYS = 90
MAX_ROWS = 20_000
REFRESH_S = 3600.0
KEY_WINDOW_H = 2
SITE_WINDOWS_H = (1, 3)
MIN_KEY_STAYS = 3
MIN_SITE_STAYS = 10
MAX_STAY_S = 3 * 86_400.0  # longer stays (forgotten cars, missing stops) are not learned from


@dataclass(frozen=True)
class Stay:
    """One completed session: when it arrived and left, and the keys it is known by."""

    arrival: datetime
    departure: datetime
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prediction:
    """A learned departure and what it was learned from (``card``, ``driver`` or ``site``)."""

    departure_at: datetime
    basis: str
    stays: int  # how many past stays the statistic was taken over


Buckets = dict[tuple[bool, int], list[float]]  # (weekend, local arrival hour) → sorted stays (s)


@dataclass
class DepartureHistory:
    """The stays of one site, bucketed for :func:`predict` (made by :func:`learn`)."""

    tz: tzinfo
    site: Buckets = field(default_factory=dict)
    keys: dict[str, Buckets] = field(default_factory=dict)
    stays: int = 0


def slot(arrival: datetime, tz: tzinfo) -> tuple[bool, int]:
    """Day type (weekend?) and hour of an arrival in the site's time."""
    local = arrival.astimezone(tz)
    return local.weekday() >= 5, local.hour


def learn(stays: Iterable[Stay], *, now: datetime, tz: tzinfo, lookback_days: float = LOOKBACK_DAYS,
          max_stays: int = MAX_ROWS) -> DepartureHistory:
    """Bucket the stays that arrived in the ``lookback_days`` before ``now`` (at most the
    ``max_stays`` latest); stays that are not positive or longer than three days are left out."""
    since = now - timedelta(days=lookback_days)
    kept = sorted((s for s in stays if since <= s.arrival < now), key=lambda s: s.arrival, reverse=True)
    history = DepartureHistory(tz=tz)
    for s in kept[:max_stays]:
        length = (s.departure - s.arrival).total_seconds()
        if not 0 < length <= MAX_STAY_S:
            continue
        key = slot(s.arrival, tz)
        history.site.setdefault(key, []).append(length)
        for k in s.keys:
            history.keys.setdefault(k, {}).setdefault(key, []).append(length)
        history.stays += 1
    for buckets in (history.site, *history.keys.values()):
        for values in buckets.values():
            values.sort()
    return history


def _alike(buckets: Buckets, weekend: bool, hour: int, window: int, longer_than: float) -> list[float]:
    """The stays of the same day type arriving within ``window`` hours, longer than ``longer_than`` s."""
    out: list[float] = []
    for h in range(hour - window, hour + window + 1):
        values = buckets.get((weekend, h % 24))
        if values:
            out.extend(values[bisect.bisect_right(values, longer_than):])
    return out


def _quantile(values: list[float], q: float) -> float:
    if q == 0.5:
        return float(statistics.median(values))
    values = sorted(values)
    pos = q * (len(values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def predict(history: DepartureHistory, keys: Sequence[str], arrival: datetime, *, now: datetime | None = None,
            quantile: float = 0.5, min_key_stays: int = MIN_KEY_STAYS,
            min_site_stays: int = MIN_SITE_STAYS) -> Prediction | None:
    """When a car that arrived at ``arrival`` leaves: from the alike stays of its first key that
    has enough of them (``card:…`` before ``driver:…``), else of the site, else None. With
    ``now`` after the arrival, only stays longer than the time plugged in so far count."""
    weekend, hour = slot(arrival, history.tz)
    elapsed = max(0.0, (now - arrival).total_seconds()) if now is not None else 0.0
    candidates: list[tuple[str, Buckets, int, int]] = []
    for k in keys:
        if k in history.keys:
            candidates.append((k.split(":", 1)[0], history.keys[k], KEY_WINDOW_H, min_key_stays))
    for w in SITE_WINDOWS_H:
        candidates.append(("site", history.site, w, min_site_stays))
    for basis, buckets, window, needed in candidates:
        values = _alike(buckets, weekend, hour, window, elapsed)
        if len(values) >= max(1, needed):
            stay = _quantile(values, quantile)
            return Prediction(arrival + timedelta(seconds=stay), basis, len(values))
    return None


COMBINE_RULES = ("stated", "learned", "earlier", "later", "mean")
# How the CSMS combines them (bench/README.md, "Learned departures": the smallest error on
# ACN-Data's claimed sessions; drivers tend to say they leave earlier than they do).
DEPARTURE_RULE = "later"


def combine(stated: datetime | None, learned: datetime | None, rule: str = "stated") -> tuple[datetime | None, bool]:
    """The departure the allocator gets from the driver's/EV's own estimate and the learned one,
    and whether it is the learned one. ``stated``: the stated one when there is one, else the
    learned one; ``learned``: the other way round; ``earlier``/``later``: the earlier/later of both;
    ``mean``: halfway between them (counted as learned)."""
    if stated is None or learned is None:
        return (stated, False) if learned is None else (learned, True)
    if rule == "mean":
        return stated + (learned - stated) / 2, True
    if rule == "learned" or (rule == "earlier" and learned < stated) or (rule == "later" and learned > stated):
        return learned, True
    return stated, False


def site_tz(name: str | None) -> tzinfo:
    """The site's time zone (UTC when unknown)."""
    try:
        return ZoneInfo(name or "UTC")
    except (ValueError, KeyError):
        return ZoneInfo("UTC")


class DepartureLearner:
    """Per site, the history fitted off the event loop; per session, its prediction."""

    def __init__(self, *, refresh_s: float = REFRESH_S, lookback_days: float = LOOKBACK_DAYS,
                 max_rows: int = MAX_ROWS) -> None:
        self.refresh_s = refresh_s
        self.lookback_days = lookback_days
        self.max_rows = max_rows
        self._history: dict[int, tuple[float, DepartureHistory]] = {}  # site → (monotonic fit time, history)
        self._refreshing: dict[int, asyncio.Task[None]] = {}
        self._predicted: dict[int, Prediction | None] = {}  # session id → its prediction

    def forget(self, site_id: int | None = None) -> None:
        """Drop what was learned (of one site, or all): the next use reads the history again."""
        if site_id is None:
            self._history.clear()
        else:
            self._history.pop(site_id, None)
        self._predicted.clear()

    async def _fit(self, site_id: int, tz: tzinfo) -> None:
        from csms.core.tables import ChargingSession

        now = datetime.now(tz)
        rows = await ChargingSession.select(
            ChargingSession.started_at, ChargingSession.stopped_at, ChargingSession.id_token,
            ChargingSession.driver,
        ).where(
            (ChargingSession.station.site == site_id) & (ChargingSession.state == "completed")
            & (ChargingSession.started_at >= now - timedelta(days=self.lookback_days))
            & ChargingSession.stopped_at.is_not_null()
        ).order_by(ChargingSession.started_at, ascending=False).limit(self.max_rows)
        stays = [Stay(r["started_at"], r["stopped_at"], keys_of(r["id_token"], r["driver"])) for r in rows]
        history = await asyncio.to_thread(learn, stays, now=now, tz=tz, lookback_days=self.lookback_days,
                                          max_stays=self.max_rows)
        self._history[site_id] = (time.monotonic(), history)

    async def history(self, site_id: int, tz: tzinfo) -> DepartureHistory:
        """The site's history: read at first use, then refreshed in the background when old."""
        known = self._history.get(site_id)
        if known is None or known[1].tz != tz:
            await self._fit(site_id, tz)
            return self._history[site_id][1]
        if time.monotonic() - known[0] > self.refresh_s and site_id not in self._refreshing:
            task = asyncio.ensure_future(self._fit(site_id, tz))
            self._refreshing[site_id] = task
            task.add_done_callback(lambda t: self._refreshed(site_id, t))
        return known[1]

    def _refreshed(self, site_id: int, task: asyncio.Task[None]) -> None:
        self._refreshing.pop(site_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.warning("learning departures of site %s failed: %s", site_id, task.exception())

    async def predict(self, site_id: int, tz: tzinfo, sessions: Sequence[tuple[int, Sequence[str], datetime]],
                      now: datetime) -> dict[int, Prediction]:
        """Learned departures of ``sessions`` (id, keys, start) at a site; sessions without one are left out."""
        if not sessions:
            return {}
        history = await self.history(site_id, tz)
        if len(self._predicted) > 100_000:  # sessions whose stop this node never saw
            self._predicted.clear()
        out: dict[int, Prediction] = {}
        for session_id, keys, started_at in sessions:
            known = self._predicted.get(session_id)
            if session_id not in self._predicted or (known is not None and known.departure_at <= now):
                known = self._predicted[session_id] = predict(history, keys, started_at, now=now)
            if known is not None:
                out[session_id] = known
        return out

    def done(self, session_id: int) -> None:
        """A session ended: its prediction is no longer needed."""
        self._predicted.pop(session_id, None)

    async def close(self) -> None:
        tasks = list(self._refreshing.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def keys_of(id_token: str | None, driver: Any) -> tuple[str, ...]:
    """The keys a session is known by: its card, then its driver."""
    keys = []
    if id_token:
        keys.append(f"card:{id_token}")
    if driver is not None:
        keys.append(f"driver:{driver}")
    return tuple(keys)
