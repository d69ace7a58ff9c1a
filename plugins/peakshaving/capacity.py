"""A site's capacity over time from recurring windows and an external signal (pure, no I/O).

Windows are written in the site's local time: on some days of the week, from ``start`` to
``end`` (end exclusive). An end at or before the start runs into the next day, so a window
``22:00-06:00`` on ``Fri`` covers Friday 22:00 to Saturday 06:00; ``00:00-00:00`` is the whole
day. Where windows overlap, and with the signal and the grid limit, the lowest limit counts,
phase by phase; a phase without a limit (``inf``) is not restricted by that window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from csms.plugin_api import CapacityPeriod, CapacitySchedule

INF = math.inf
Triple = tuple[float, float, float]
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def parse_days(value: str | list[str | int]) -> frozenset[int]:
    """Days of the week (0 = Monday) from ``"Mon,Tue"``, ``"Mon-Fri"``, ``["Sat", "Sun"]`` or ``[1, 7]``
    (ISO numbers); raises ValueError on anything else."""
    items = value.split(",") if isinstance(value, str) else list(value)
    days: set[int] = set()
    for item in items:
        if isinstance(item, int):
            if not 1 <= item <= 7:
                raise ValueError(f"day {item} is not an ISO weekday (1 = Monday ... 7 = Sunday)")
            days.add(item - 1)
            continue
        text = item.strip()
        if not text:
            continue
        first, _, last = text.partition("-")
        a, b = _day(first), _day(last) if last else _day(first)
        span = range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)]
        days.update(span)
    if not days:
        raise ValueError("no days given")
    return frozenset(days)


def _day(text: str) -> int:
    key = text.strip()[:3].title()
    if key not in DAY_NAMES:
        raise ValueError(f"{text!r} is not a day of the week (Mon ... Sun)")
    return DAY_NAMES.index(key)


def format_days(days: frozenset[int]) -> str:
    return ",".join(DAY_NAMES[d] for d in sorted(days))


def parse_hhmm(text: str) -> time:
    try:
        hours, minutes = text.split(":")
        if len(hours) != 2 or len(minutes) != 2:
            raise ValueError
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"{text!r} is not a time of day HH:MM") from None


@dataclass(frozen=True)
class Window:
    """A recurring cap: on ``days`` (0 = Monday), from ``start`` to ``end`` local time."""

    days: frozenset[int]
    start: time
    end: time
    limit_a: Triple

    def intervals(self, tz: tzinfo, since: datetime, until: datetime) -> list[tuple[datetime, datetime]]:
        """The UTC intervals of this window overlapping ``[since, until)``."""
        out = []
        first = since.astimezone(tz).date() - timedelta(days=1)
        last = until.astimezone(tz).date()
        day = first
        while day <= last:
            if day.weekday() in self.days:
                begin = _local(day, self.start, tz)
                end_day = day + timedelta(days=1) if self.end <= self.start else day
                finish = _local(end_day, self.end, tz)
                if begin < until and finish > since:
                    out.append((begin, finish))
            day += timedelta(days=1)
        return out


def _local(day: date, at: time, tz: tzinfo) -> datetime:
    return datetime.combine(day, at, tzinfo=tz).astimezone(timezone.utc)


@dataclass(frozen=True)
class Signal:
    """An external limit (grid operator, building meter) valid until ``until``."""

    limit_a: Triple
    until: datetime


def _min3(a: Triple, b: Triple) -> Triple:
    return (min(a[0], b[0]), min(a[1], b[1]), min(a[2], b[2]))


def capacity_schedule(windows: list[Window], signal: Signal | None, grid: Triple, tz: tzinfo, now: datetime,
                      horizon: timedelta) -> CapacitySchedule | None:
    """The site's capacity from ``now`` to ``now + horizon``: the minimum of the windows in force,
    the signal while it lasts and the grid limit. None when neither a window nor a signal applies
    within the horizon (the grid limit alone is the core's business)."""
    end = now + horizon
    spans = [(w, s, e) for w in windows for s, e in w.intervals(tz, now, end)]
    live_signal = signal if signal is not None and signal.until > now else None
    if not spans and live_signal is None:
        return None
    marks = {now}
    for _, s, e in spans:
        marks.update(t for t in (s, e) if now < t < end)
    if live_signal is not None and live_signal.until < end:
        marks.add(live_signal.until)
    periods: list[CapacityPeriod] = []
    for t in sorted(marks):
        limit = grid
        for w, s, e in spans:
            if s <= t < e:
                limit = _min3(limit, w.limit_a)
        if live_signal is not None and t < live_signal.until:
            limit = _min3(limit, live_signal.limit_a)
        if not periods or periods[-1].limit_a != limit:
            periods.append(CapacityPeriod(t, limit))
    return CapacitySchedule(tuple(periods))
