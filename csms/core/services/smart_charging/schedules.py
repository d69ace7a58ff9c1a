"""Limits over time: a schedule's limit at a moment, and a limit scaled down where the site's capacity falls."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from csms.core.domain import CapacitySchedule
from csms.core.services.smart_charging.phases import Triple, floor_tenth

Periods = tuple[tuple[datetime, float], ...]  # (start, amps per phase), sorted


def periods_at(periods: Periods, when: datetime) -> float:
    """The limit a schedule gives at ``when`` (its first period before it starts)."""
    value = periods[0][1]
    for start, amps in periods:
        if start <= when:
            value = amps
    return value


def capacity_factors(capacity: CapacitySchedule, now: datetime, horizon_s: int,
                     reserved: Triple) -> list[tuple[datetime, float]]:
    """Where the capacity falls within the horizon: (when, factor ≤ 1 relative to now)."""
    base = [c - r for c, r in zip(capacity.at(now), reserved)]
    end = now + timedelta(seconds=horizon_s)
    out: list[tuple[datetime, float]] = []
    for period in capacity.periods:
        if not now < period.start <= end:
            continue
        later = capacity.at(period.start)
        factor = 1.0
        for p in range(3):
            if math.isinf(base[p]) or base[p] <= 0:
                continue
            factor = min(factor, max(0.0, later[p] - reserved[p]) / base[p])
        out.append((period.start, factor))
    return out


def scaled_periods(start: datetime, amps: float, factors: list[tuple[datetime, float]], min_a: float,
                   max_periods: int) -> Periods:
    """A limit over time: ``amps`` now, scaled down where the capacity falls; merged and cut to
    ``max_periods`` (the last period then takes the lowest of the periods it replaces).

    A discharge (``amps`` below 0, V2X) stays as it is: the capacity bounds what the site
    draws, not what it feeds back, and the charging it frees is scaled down where the capacity
    falls, so the site stays within it at every moment."""
    periods: list[tuple[datetime, float]] = [(start, amps)]
    if amps < 0:
        return tuple(periods)
    for when, factor in factors:
        value = floor_tenth(amps * factor)
        if value < min_a:
            value = 0.0
        if value != periods[-1][1]:
            periods.append((when, value))
    max_periods = max(1, max_periods)
    if len(periods) > max_periods:
        tail = periods[max_periods - 1:]
        periods = periods[:max_periods - 1] + [(tail[0][0], min(v for _, v in tail))]
    return tuple(periods)
