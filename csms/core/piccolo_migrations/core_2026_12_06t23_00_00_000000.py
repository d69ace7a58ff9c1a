"""station_data_clear: cards of erased drivers whose data stations are to clear (N10)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Integer, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-06T23:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "station_data_clear"

_COLUMNS = (
    ("station_id", Varchar, {"length": 64, "default": "", "null": False, "index": True}),
    ("driver_id", Integer, {"default": 0, "null": False, "index": True}),
    ("id_token", Varchar, {"length": 255, "default": "", "null": False, "index": False}),
    ("token_type", Varchar, {"length": 24, "default": "", "null": False, "index": False}),
    ("status", Varchar, {"length": 24, "default": "Pending", "null": False, "index": True}),
    ("detail", Text, {"default": "", "null": False, "index": False}),
    ("attempts", Integer, {"default": 0, "null": False, "index": False}),
    ("request_id", Integer, {"default": None, "null": True, "index": False}),
    ("created_at", Timestamptz, {"default": TimestamptzNow(), "null": False, "index": False}),
    ("done_at", Timestamptz, {"default": None, "null": True, "index": False}),
)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="core", description=DESCRIPTION)
    manager.add_table(class_name="StationDataClear", tablename="station_data_clear", schema=None, columns=None)
    for name, column_class, params in _COLUMNS:
        manager.add_column(
            table_class_name="StationDataClear",
            tablename="station_data_clear",
            column_name=name,
            db_column_name=name,
            column_class_name=column_class.__name__,
            column_class=column_class,
            params={**params, "primary_key": False, "unique": False, "index_method": IndexMethod.btree,
                    "choices": None, "db_column_name": None, "secret": False},
            schema=None,
        )
    return manager
