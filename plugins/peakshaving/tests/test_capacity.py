"""Schedules and signals as a capacity over time, and the minimum with the grid limit."""

from __future__ import annotations

import math
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from plugins.peakshaving.capacity import (
    Signal,
    Window,
    capacity_schedule,
    format_days,
    parse_days,
    parse_hhmm,
)

INF = math.inf
GRID = (32.0, 32.0, 32.0)
UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
MONDAY_NOON = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)  # a Monday
DAY = timedelta(days=1)


def window(days="Mon-Sun", start="17:00", end="20:00", limit=(16.0, 16.0, 16.0)) -> Window:
    return Window(parse_days(days), parse_hhmm(start), parse_hhmm(end), limit)


def test_days_and_times_are_parsed():
    assert parse_days("Mon-Fri") == frozenset(range(5))
    assert parse_days("Sat,Sun") == frozenset({5, 6})
    assert parse_days("Fri-Mon") == frozenset({4, 5, 6, 0})
    assert parse_days([1, 7]) == frozenset({0, 6})
    assert parse_days(["monday", "Tue"]) == frozenset({0, 1})
    assert format_days(parse_days("Sun,Mon")) == "Mon,Sun"
    assert parse_hhmm("07:30") == time(7, 30)
    for bad in ("Someday", "", [0], [8]):
        with pytest.raises(ValueError):
            parse_days(bad)
    for bad in ("7:30", "25:00", "noon"):
        with pytest.raises(ValueError):
            parse_hhmm(bad)


def test_a_daily_window_caps_its_hours_and_the_grid_limit_counts_too():
    cap = capacity_schedule([window()], None, GRID, UTC, MONDAY_NOON, DAY)
    assert cap.at(MONDAY_NOON) == GRID
    assert cap.at(MONDAY_NOON.replace(hour=17)) == (16.0, 16.0, 16.0)
    assert cap.at(MONDAY_NOON.replace(hour=19, minute=59)) == (16.0, 16.0, 16.0)
    assert cap.at(MONDAY_NOON.replace(hour=20)) == GRID
    # a window above the grid limit does not raise it; an unlimited phase stays at the grid's
    loose = capacity_schedule([window(limit=(50.0, INF, 10.0))], None, GRID, UTC, MONDAY_NOON, DAY)
    assert loose.at(MONDAY_NOON.replace(hour=18)) == (32.0, 32.0, 10.0)


def test_days_of_week_and_windows_past_midnight_belong_to_the_day_they_start():
    night = window(days="Fri", start="22:00", end="06:00", limit=(10.0, 10.0, 10.0))
    friday = MONDAY_NOON + 4 * DAY
    cap = capacity_schedule([night], None, GRID, UTC, MONDAY_NOON, 7 * DAY)
    assert cap.at(friday.replace(hour=21)) == GRID
    assert cap.at(friday.replace(hour=23)) == (10.0, 10.0, 10.0)
    assert cap.at(friday + timedelta(hours=17)) == (10.0, 10.0, 10.0)  # Saturday 05:00
    assert cap.at(friday + timedelta(hours=18)) == GRID  # Saturday 06:00
    assert cap.at(friday.replace(hour=3)) == GRID  # Friday early morning: Thursday has no window
    whole_day = capacity_schedule([window(days="Tue", start="00:00", end="00:00")], None, GRID, UTC,
                                  MONDAY_NOON, 3 * DAY)
    assert whole_day.at(MONDAY_NOON + DAY) == (16.0, 16.0, 16.0)
    assert whole_day.at(MONDAY_NOON + 2 * DAY) == GRID


def test_windows_are_in_the_sites_local_time():
    cap = capacity_schedule([window()], None, GRID, BERLIN, MONDAY_NOON, DAY)
    # 17:00 in Berlin in January is 16:00 UTC
    assert cap.at(MONDAY_NOON.replace(hour=16)) == (16.0, 16.0, 16.0)
    assert cap.at(MONDAY_NOON.replace(hour=19)) == GRID


def test_overlapping_windows_and_a_signal_give_the_lowest_per_phase():
    windows = [window(limit=(20.0, INF, 20.0)), window(start="18:00", end="19:00", limit=(INF, 12.0, 25.0))]
    signal = Signal((30.0, 30.0, 8.0), MONDAY_NOON.replace(hour=18, minute=30))
    cap = capacity_schedule(windows, signal, GRID, UTC, MONDAY_NOON, DAY)
    assert cap.at(MONDAY_NOON) == (30.0, 30.0, 8.0)
    assert cap.at(MONDAY_NOON.replace(hour=17)) == (20.0, 30.0, 8.0)
    assert cap.at(MONDAY_NOON.replace(hour=18)) == (20.0, 12.0, 8.0)
    assert cap.at(MONDAY_NOON.replace(hour=18, minute=30)) == (20.0, 12.0, 20.0)  # the signal ended
    assert cap.at(MONDAY_NOON.replace(hour=19)) == (20.0, 32.0, 20.0)
    assert cap.at(MONDAY_NOON.replace(hour=20)) == GRID


def test_nothing_to_say_without_windows_or_a_live_signal():
    assert capacity_schedule([], None, GRID, UTC, MONDAY_NOON, DAY) is None
    expired = Signal((1.0, 1.0, 1.0), MONDAY_NOON - timedelta(seconds=1))
    assert capacity_schedule([], expired, GRID, UTC, MONDAY_NOON, DAY) is None
    signal = Signal((1.0, 1.0, 1.0), MONDAY_NOON + timedelta(hours=1))
    cap = capacity_schedule([], signal, GRID, UTC, MONDAY_NOON, DAY)
    assert [p.limit_a for p in cap.periods] == [(1.0, 1.0, 1.0), GRID]
    assert cap.periods[1].start == MONDAY_NOON + timedelta(hours=1)
