"""Learned departures: the pure estimator (csms/core/services/smart_charging/departures.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from csms.core.services.smart_charging.departures import Stay, combine, learn, predict, site_tz

UTC = timezone.utc
MONDAY = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
NOW = MONDAY + timedelta(days=28)  # Monday four weeks later


def stays(first: datetime, hours: list[float], *, at: int = 8, keys: tuple[str, ...] = (), days: int = 1,
          minute: int = 0) -> list[Stay]:
    """One stay a day (every ``days`` days from ``first``) arriving at ``at``:``minute``, ``hours`` long."""
    out = []
    for i, h in enumerate(hours):
        arrival = (first + timedelta(days=i * days)).replace(hour=at, minute=minute)
        out.append(Stay(arrival, arrival + timedelta(hours=h), keys))
    return out


def weekdays(n: int, start: datetime = MONDAY) -> list[datetime]:
    days, d = [], start
    while len(days) < n:
        if d.weekday() < 5:
            days.append(d)
        d += timedelta(days=1)
    return days


def on(days: list[datetime], hours: list[float], *, at: int = 8, keys: tuple[str, ...] = ()) -> list[Stay]:
    return [s for d, h in zip(days, hours) for s in stays(d, [h], at=at, keys=keys)]


def test_a_cards_median_stay_wins_over_the_site():
    days = weekdays(12)
    history = learn(on(days, [9, 9, 8, 10, 9, 30, 9], keys=("card:A",))  # one outlier: median (9), not mean (12)
                    + on(days, [2] * 12, keys=("card:B",)), now=NOW, tz=UTC)
    arrival = NOW.replace(hour=8, minute=30)
    p = predict(history, ["card:A", "driver:7"], arrival)
    assert p is not None and p.basis == "card"
    assert p.departure_at == arrival + timedelta(hours=9) and p.stays == 7
    q = predict(history, ["card:B"], arrival)
    assert q is not None and q.basis == "card" and q.departure_at == arrival + timedelta(hours=2)


def test_driver_then_site_when_the_card_has_too_little_history():
    days = weekdays(12)
    history = learn(on(days[:2], [9, 9], keys=("card:NEW", "driver:7"))  # 2 stays: too few for the card
                    + on(days[2:6], [7, 7, 7, 7], keys=("card:OLD", "driver:7"))
                    + on(days[6:], [3] * 6, keys=("card:X",)), now=NOW, tz=UTC)
    arrival = NOW.replace(hour=9)
    p = predict(history, ["card:NEW", "driver:7"], arrival)
    assert p is not None and p.basis == "driver" and p.departure_at == arrival + timedelta(hours=7)
    site = predict(history, ["card:UNKNOWN"], arrival)
    assert site is not None and site.basis == "site" and site.stays == 12
    assert site.departure_at == arrival + timedelta(hours=5)  # median of 9,9,7,7,7,7,3×6 = (3+7)/2


def test_weekday_and_weekend_are_told_apart_in_the_sites_time():
    weekday_stays = on(weekdays(15), [9] * 15, at=8)
    saturdays = [MONDAY + timedelta(days=5 + 7 * i) for i in range(3)]
    sundays = [MONDAY + timedelta(days=6 + 7 * i) for i in range(3)]
    weekend_stays = on(saturdays + sundays, [1, 1, 2, 1, 2, 2], at=8) + on(saturdays + sundays, [2] * 6, at=9)
    history = learn(weekday_stays + weekend_stays, now=NOW, tz=UTC)
    saturday = (NOW + timedelta(days=5)).replace(hour=8)
    p = predict(history, [], saturday, min_site_stays=10)
    assert p is not None and p.stays == 12 and p.departure_at == saturday + timedelta(hours=2)
    monday = NOW.replace(hour=8)
    assert predict(history, [], monday).departure_at == monday + timedelta(hours=9)  # type: ignore[union-attr]
    # 23:30 UTC on a Friday is Saturday morning in Auckland: a weekend arrival there
    auckland = learn(weekday_stays + weekend_stays, now=NOW, tz=ZoneInfo("Pacific/Auckland"))
    assert auckland.tz == site_tz("Pacific/Auckland") and site_tz("Not/AZone") == ZoneInfo("UTC")


def test_too_little_history_gives_nothing():
    history = learn(on(weekdays(5), [8] * 5), now=NOW, tz=UTC)  # 5 site stays < 10
    assert predict(history, ["card:A"], NOW.replace(hour=8)) is None
    assert predict(learn([], now=NOW, tz=UTC), ["card:A"], NOW) is None
    # evening arrivals say nothing about the morning's (±3 h at most)
    evening = learn(on(weekdays(15), [12] * 15, at=20), now=NOW, tz=UTC)
    assert predict(evening, [], NOW.replace(hour=8)) is None
    assert predict(evening, [], NOW.replace(hour=19)) is not None


def test_lookback_and_row_bounds():
    old = on(weekdays(15, MONDAY - timedelta(days=200)), [2] * 15, keys=("card:A",))
    recent = on(weekdays(15), [6] * 15, keys=("card:A",))
    history = learn(old + recent, now=NOW, tz=UTC, lookback_days=90)
    assert history.stays == 15
    assert predict(history, ["card:A"], NOW.replace(hour=8)).departure_at == NOW.replace(hour=14)  # type: ignore[union-attr]
    assert learn(old + recent, now=NOW, tz=UTC, lookback_days=400, max_stays=10).stays == 10
    # the latest are kept: all 6 h
    capped = learn(old + recent, now=NOW, tz=UTC, lookback_days=400, max_stays=10)
    assert set(capped.site[(False, 8)]) == {6 * 3600.0}
    # stays in the future of ``now``, of no length or of days are not learned from
    odd = [Stay(NOW + timedelta(days=1), NOW + timedelta(days=1, hours=2)),
           Stay(MONDAY, MONDAY), Stay(MONDAY, MONDAY + timedelta(days=5))]
    assert learn(odd, now=NOW, tz=UTC).stays == 0


def test_a_car_still_there_after_its_prediction_gets_a_later_one():
    history = learn(on(weekdays(12), [2, 2, 2, 2, 2, 2, 2, 4, 4, 8, 8, 8]), now=NOW, tz=UTC)
    arrival = NOW.replace(hour=8)
    assert predict(history, [], arrival).departure_at == arrival + timedelta(hours=2)  # type: ignore[union-attr]
    later = predict(history, [], arrival, now=arrival + timedelta(hours=3), min_site_stays=3)
    assert later is not None and later.departure_at == arrival + timedelta(hours=8) and later.stays == 5
    assert predict(history, [], arrival, now=arrival + timedelta(hours=9), min_site_stays=1) is None


@pytest.mark.parametrize("rule, expected, is_learned", [
    ("stated", 10, False), ("learned", 12, True), ("earlier", 10, False), ("later", 12, True), ("mean", 11, True)])
def test_combining_with_the_stated_departure(rule, expected, is_learned):
    stated, learned = NOW.replace(hour=10), NOW.replace(hour=12)
    assert combine(stated, learned, rule) == (NOW.replace(hour=expected), is_learned)
    assert combine(None, learned, rule) == (learned, True)
    assert combine(stated, None, rule) == (stated, False)
    assert combine(None, None, rule) == (None, False)
