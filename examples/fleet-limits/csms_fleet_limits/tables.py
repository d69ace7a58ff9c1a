"""The plugin's own table: a daily limit for one card, overriding the default."""

from __future__ import annotations

from piccolo.columns import Integer, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class FleetCardLimit(Table, tablename="fleet_limits_card"):
    id_token = Varchar(length=255, unique=True)
    sessions_per_day = Integer(default=0)
    note = Varchar(length=200, default="")
    updated_at = Timestamptz(default=TimestamptzNow())
