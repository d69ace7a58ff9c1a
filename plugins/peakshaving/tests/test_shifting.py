"""Price-aware shifting and reading time-of-day prices from an OCPI tariff."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from plugins.peakshaving.prices import energy_price_at, tariff_json
from plugins.peakshaving.shifting import Demand, plan, shifted_schedule, slot_starts

UTC = timezone.utc
NOW = datetime(2030, 1, 7, 16, 0, tzinfo=UTC)  # a Monday, 16:00
HOUR = timedelta(hours=1)
V = 230.0
INF = math.inf


def hourly(hours: int) -> list[datetime]:
    return [NOW + i * HOUR for i in range(hours + 1)]


def ah(wh: float, phases: int = 3) -> float:
    return wh / (V * phases)


def delivered(bounds, caps_or_rates, phase=0) -> float:
    return sum(c[phase] * (bounds[j + 1] - bounds[j]).total_seconds() / 3600 for j, c in enumerate(caps_or_rates))


def test_energy_goes_to_the_cheap_hours_and_the_demand_is_met():
    bounds = hourly(6)
    caps = [(32.0, 32.0, 32.0)] * 6
    prices = (0.40, 0.40, 0.40, 0.10, 0.10, 0.40)  # cheap from 19:00 to 21:00
    need = 3 * V * 36.0  # 36 Ah per phase: 4 Ah more than the two cheap hours at 16 A give
    car = Demand("a", (1, 2, 3), 16.0, need, NOW + 6 * HOUR, prices)
    caps_out = plan(bounds, caps, [car], V)
    # the cheapest hours are open up to the car's maximum; the rest of the need falls into the
    # earliest of the expensive hours; other expensive hours are closed
    assert [c[0] for c in caps_out] == [4.0, 0.0, 0.0, 16.0, 16.0, 0.0]
    assert delivered(bounds, caps_out) >= ah(need) - 1e-9


def test_flat_prices_unknown_prices_or_unknown_demand_are_not_shifted():
    bounds = hourly(4)
    caps = [(32.0, 32.0, 32.0)] * 4
    flat = Demand("flat", (1, 2, 3), 16.0, 5000.0, NOW + 4 * HOUR, (0.3, 0.3, 0.3, 0.3))
    unknown_price = Demand("np", (1, 2, 3), 16.0, 5000.0, NOW + 4 * HOUR, (None,) * 4)
    unknown_need = Demand("nn", (1, 2, 3), 16.0, None, NOW + 4 * HOUR, (0.5, 0.1, 0.5, 0.5))
    for d in (flat, unknown_price, unknown_need):
        assert plan(bounds, caps, [d], V) == caps
        assert shifted_schedule(bounds, caps, [d], V) is None


def test_the_cap_is_never_raised_and_only_shifting_phases_are_touched():
    bounds = hourly(3)
    caps = [(10.0, 32.0, 32.0)] * 3
    single = Demand("l1", (1,), 16.0, V * 5.0, NOW + 3 * HOUR, (0.5, 0.1, 0.5))  # 5 Ah on L1
    out = plan(bounds, caps, [single], V)
    assert all(c[0] <= 10.0 for c in out)
    assert [c[1] for c in out] == [32.0, 32.0, 32.0] and [c[2] for c in out] == [32.0, 32.0, 32.0]
    assert [c[0] for c in out] == [0.0, 10.0, 0.0]


def test_earlier_departures_are_planned_first_and_both_are_met():
    bounds = hourly(4)
    caps = [(16.0, 16.0, 16.0)] * 4
    prices = (0.5, 0.1, 0.5, 0.1)
    soon = Demand("soon", (1, 2, 3), 16.0, 3 * V * 16.0, NOW + 2 * HOUR, prices)  # 16 Ah by 18:00
    late = Demand("late", (1, 2, 3), 16.0, 3 * V * 16.0, NOW + 4 * HOUR, prices)  # 16 Ah by 20:00
    out = plan(bounds, caps, [late, soon], V)
    # "soon" takes the cheap 17:00 hour, "late" the cheap 19:00 hour; the expensive hours close
    assert [c[0] for c in out] == [0.0, 16.0, 0.0, 16.0]


def test_a_car_that_cannot_wait_is_charged_whatever_the_price():
    bounds = hourly(2)
    caps = [(32.0, 32.0, 32.0)] * 2
    urgent = Demand("u", (1, 2, 3), 16.0, 3 * V * 24.0, NOW + 2 * HOUR, (0.9, 0.1))
    out = plan(bounds, caps, [urgent], V)
    assert [c[0] for c in out] == [8.0, 16.0]


def test_slots_follow_the_clock_and_the_departures():
    now = NOW + timedelta(minutes=7)
    departure = NOW + timedelta(minutes=50)
    marks = slot_starts(now, NOW + HOUR, timedelta(minutes=15), [departure])
    assert marks[0] == now and marks[-1] == NOW + HOUR
    assert NOW + timedelta(minutes=15) in marks and departure in marks
    schedule = shifted_schedule([now, NOW + HOUR, NOW + 2 * HOUR], [(32.0,) * 3] * 2,
                                [Demand("a", (1, 2, 3), 16.0, 1000.0, NOW + 2 * HOUR, (0.5, 0.1))], V)
    assert schedule.at(now) == (0.0, 0.0, 0.0)
    assert schedule.at(NOW + HOUR) == (16.0, 16.0, 16.0)
    assert schedule.at(NOW + 3 * HOUR) == (INF, INF, INF)  # after the last departure: no restriction


TARIFF = {
    "id": "TOU", "currency": "EUR",
    "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.45, "step_size": 1}],
         "restrictions": {"start_time": "17:00", "end_time": "21:00", "day_of_week": ["MONDAY", "TUESDAY",
                                                                                       "WEDNESDAY", "THURSDAY",
                                                                                       "FRIDAY"]}},
        {"price_components": [{"type": "ENERGY", "price": 0.15, "step_size": 1}],
         "restrictions": {"start_time": "23:00", "end_time": "06:00"}},
        {"price_components": [{"type": "ENERGY", "price": 0.99, "step_size": 1}],
         "restrictions": {"min_kwh": 50}},
        {"price_components": [{"type": "FLAT", "price": 1.00, "step_size": 1}]},
        {"price_components": [{"type": "ENERGY", "price": 0.30, "step_size": 1}]},
    ],
}


def test_time_of_day_prices_from_an_ocpi_tariff():
    monday = NOW
    assert energy_price_at(TARIFF, monday.replace(hour=16), UTC) == Decimal("0.30")
    assert energy_price_at(TARIFF, monday.replace(hour=17), UTC) == Decimal("0.45")
    assert energy_price_at(TARIFF, monday.replace(hour=20, minute=59), UTC) == Decimal("0.45")
    assert energy_price_at(TARIFF, monday.replace(hour=23, minute=30), UTC) == Decimal("0.15")
    assert energy_price_at(TARIFF, monday.replace(hour=5), UTC) == Decimal("0.15")  # wraps past midnight
    saturday = monday + timedelta(days=5)
    assert energy_price_at(TARIFF, saturday.replace(hour=18), UTC) == Decimal("0.30")  # weekdays only
    assert energy_price_at({"elements": []}, monday, UTC) is None


def test_tariffs_are_read_from_any_pricing_plugins_answer():
    class Choice:
        def __init__(self, tariff):
            self.tariff = tariff

    class OcpiObject:
        def to_ocpi(self):
            return TARIFF

    assert tariff_json(TARIFF) is TARIFF
    assert tariff_json(OcpiObject()) is TARIFF
    assert tariff_json(Choice(OcpiObject())) is TARIFF
    assert tariff_json(None) is None and tariff_json("flat rate") is None
