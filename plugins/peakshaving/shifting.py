"""Price-aware shifting: a site cap over time that moves energy toward cheaper periods while
every car still gets what it needs before it leaves (pure, no I/O).

The algorithm (the README has the long form):

1. Time from now to the last departure is cut into slots (15 minutes by default, plus every
   departure); each slot has the site's cap per phase and, per car, its energy price.
2. Cars are planned one after the other, earliest departure first. A car's remaining energy,
   in amp-hours per phase (``Wh / (V × phases)``), is put into the cheapest slots before its
   departure (earlier first among equal prices), each slot taking at most the car's maximum
   current and what the cars planned before it left of the cap on its phases.
3. A car may then draw up to its maximum in every slot that is the cheapest of its stay (more
   energy at the lowest price costs nothing extra), only its planned current in the others, and
   nothing after its departure. Cars with flat prices, an unknown price or an unknown demand are
   not restricted.
4. The site cap of a slot is, phase by phase, the sum of what the cars on that phase may draw,
   never above the cap the slot had. A phase without a shifting car keeps its cap.

It plans again at every round with the energy still missing, so a car that got less than
planned (the allocator shares the cap fairly, not by plan) gets more in later slots, and a
car whose departure comes close is charged whatever the price. If the cap is too small for all
demands, earlier departures are served first and the rest is best effort.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from csms.plugin_api import CapacityPeriod, CapacitySchedule

Triple = tuple[float, float, float]


@dataclass(frozen=True)
class Demand:
    """One car: its grid phases, maximum current, energy still wanted and departure."""

    id: str
    phases: tuple[int, ...]
    max_a: float
    energy_wh: float | None  # None: unknown, the car is not shifted
    departure: datetime
    prices: tuple[float | None, ...]  # per slot; None where unknown


def slot_starts(now: datetime, until: datetime, slot: timedelta, extra: list[datetime]) -> list[datetime]:
    """Slot boundaries from ``now`` to ``until`` (both included): every ``slot`` on the clock plus ``extra``."""
    step = slot.total_seconds()
    first = datetime.fromtimestamp(math.floor(now.timestamp() / step) * step + step, tz=now.tzinfo)
    marks = {now, until}
    t = first
    while t < until:
        marks.add(t)
        t += slot
    marks.update(x for x in extra if now < x < until)
    return sorted(marks)


def plan(bounds: list[datetime], caps: list[Triple], demands: list[Demand], voltage_v: float) -> list[Triple]:
    """The site cap for each slot ``[bounds[j], bounds[j + 1])`` (see the module docstring)."""
    slots = len(bounds) - 1
    hours = [(bounds[j + 1] - bounds[j]).total_seconds() / 3600 for j in range(slots)]
    left = [list(c) for c in caps]
    allowance: dict[str, list[float]] = {}
    shifting: dict[str, bool] = {}
    for d in sorted(demands, key=lambda d: (d.departure, d.id)):
        window = [j for j in range(slots) if bounds[j] < d.departure]
        known = [d.prices[j] for j in window if d.prices[j] is not None]
        varies = bool(known) and min(known) != max(known)
        if d.energy_wh is None or not varies or d.max_a <= 0:
            allowance[d.id] = [d.max_a] * slots
            shifting[d.id] = False
            continue
        shifting[d.id] = True
        cheapest = min(known)
        need_ah = max(0.0, d.energy_wh) / (voltage_v * len(d.phases))
        planned = [0.0] * slots
        order = sorted(window, key=lambda j: (math.inf if d.prices[j] is None else d.prices[j], j))
        for j in order:
            if need_ah <= 1e-9:
                break
            span = min(hours[j], (d.departure - bounds[j]).total_seconds() / 3600)
            if span <= 0:
                continue
            rate = min(d.max_a, *(max(0.0, left[j][p - 1]) for p in d.phases))
            take = min(rate * span, need_ah)
            if take <= 0:
                continue
            current = take / span
            planned[j] = current
            need_ah -= take
            for p in d.phases:
                left[j][p - 1] -= current
        # After its departure the car is expected gone (if it stays, the next round sees that).
        allowance[d.id] = [
            0.0 if j not in window else d.max_a if d.prices[j] is None or d.prices[j] == cheapest else planned[j]
            for j in range(slots)
        ]
    out: list[Triple] = []
    for j in range(slots):
        cap = list(caps[j])
        for p in (1, 2, 3):
            on_phase = [d for d in demands if p in d.phases]
            if not any(shifting[d.id] for d in on_phase):
                continue
            cap[p - 1] = min(cap[p - 1], sum(allowance[d.id][j] for d in on_phase))
        out.append((cap[0], cap[1], cap[2]))
    return out


def shifted_schedule(bounds: list[datetime], caps: list[Triple], demands: list[Demand],
                     voltage_v: float) -> CapacitySchedule | None:
    """:func:`plan` as a CapacitySchedule (None when nothing is shifted)."""
    planned = plan(bounds, caps, demands, voltage_v)
    if planned == caps:
        return None
    periods: list[CapacityPeriod] = []
    for start, limit in zip(bounds, planned):
        if not periods or periods[-1].limit_a != limit:
            periods.append(CapacityPeriod(start, limit))
    periods.append(CapacityPeriod(bounds[-1], (math.inf,) * 3))  # after the last departure: no shifting
    return CapacitySchedule(tuple(periods))
