"""The peak-shaving plugin's tables (prefix ``peakshaving_``), deleted with their site."""

from __future__ import annotations

from piccolo.columns import Boolean, DoublePrecision, ForeignKey, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from csms.plugin_api import Site


class PeakShavingSchedule(Table, tablename="peakshaving_schedule"):
    """A recurring cap on a site's draw: on some days, from one local time to another."""

    site = ForeignKey(references=Site, index=True, on_delete=OnDelete.cascade)
    days = Varchar(length=40, default="Mon,Tue,Wed,Thu,Fri,Sat,Sun")
    start_time = Varchar(length=5, default="00:00")  # HH:MM, site's local time
    end_time = Varchar(length=5, default="00:00")  # exclusive; at or before start: the next day
    limit_l1_a = DoublePrecision(null=True, default=None)
    limit_l2_a = DoublePrecision(null=True, default=None)
    limit_l3_a = DoublePrecision(null=True, default=None)
    label = Varchar(length=100, default="")
    created_at = Timestamptz(default=TimestamptzNow())


class PeakShavingSignal(Table, tablename="peakshaving_signal"):
    """The latest external limit for a site (grid operator, building meter), valid until ``until``."""

    site = ForeignKey(references=Site, unique=True, on_delete=OnDelete.cascade)
    limit_l1_a = DoublePrecision(null=True, default=None)
    limit_l2_a = DoublePrecision(null=True, default=None)
    limit_l3_a = DoublePrecision(null=True, default=None)
    until = Timestamptz()
    source = Text(default="")
    updated_at = Timestamptz(default=TimestamptzNow())


class PeakShavingSite(Table, tablename="peakshaving_site"):
    """A site's shifting settings; absent values fall back to ``CSMS_PEAKSHAVING_*``."""

    site = ForeignKey(references=Site, unique=True, on_delete=OnDelete.cascade)
    price_shifting = Boolean(default=True)
    default_departure_h = DoublePrecision(null=True, default=None)
    default_energy_wh = DoublePrecision(null=True, default=None)


PEAKSHAVING_TABLES: list[type[Table]] = [PeakShavingSchedule, PeakShavingSignal, PeakShavingSite]
