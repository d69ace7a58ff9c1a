"""Variable monitors of 2.0.1 stations (SetVariableMonitoring accepted, NotifyMonitoringReport)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.base import OnDelete
from piccolo.columns.base import OnUpdate
from piccolo.columns.column_types import Boolean
from piccolo.columns.column_types import DoublePrecision
from piccolo.columns.column_types import ForeignKey
from piccolo.columns.column_types import Integer
from piccolo.columns.column_types import Serial
from piccolo.columns.column_types import Timestamptz
from piccolo.columns.column_types import Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.indexes import IndexMethod
from piccolo.table import Table


class Station(Table, tablename="station", schema=None):
    id = Serial(
        null=False,
        primary_key=True,
        unique=False,
        index=False,
        index_method=IndexMethod.btree,
        choices=None,
        db_column_name="id",
        secret=False,
    )


ID = "2026-12-06T16:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "variable_monitor"

_COLUMNS = (
    ("monitor_id", Integer, {"default": 0, "null": False, "index": False}),
    ("component", Varchar, {"length": 50, "default": "", "null": False, "index": False}),
    ("component_instance", Varchar, {"length": 50, "default": "", "null": False, "index": False}),
    ("evse_id", Integer, {"default": None, "null": True, "index": False}),
    ("connector_id", Integer, {"default": None, "null": True, "index": False}),
    ("variable", Varchar, {"length": 50, "default": "", "null": False, "index": False}),
    ("variable_instance", Varchar, {"length": 50, "default": "", "null": False, "index": False}),
    ("type", Varchar, {"length": 24, "default": "", "null": False, "index": False}),
    ("value", DoublePrecision, {"default": 0.0, "null": False, "index": False}),
    ("severity", Integer, {"default": 0, "null": False, "index": False}),
    ("transaction", Boolean, {"default": False, "null": False, "index": False}),
    ("source", Varchar, {"length": 8, "default": "station", "null": False, "index": False}),
    ("reported_in", Integer, {"default": None, "null": True, "index": False}),
    ("updated_at", Timestamptz, {"default": TimestamptzNow(), "null": False, "index": False}),
)


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="core", description=DESCRIPTION
    )

    manager.add_table(
        class_name="VariableMonitor",
        tablename="variable_monitor",
        schema=None,
        columns=None,
    )

    manager.add_column(
        table_class_name="VariableMonitor",
        tablename="variable_monitor",
        column_name="station",
        db_column_name="station",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": Station,
            "on_delete": OnDelete.cascade,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": True,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    for name, column_class, params in _COLUMNS:
        manager.add_column(
            table_class_name="VariableMonitor",
            tablename="variable_monitor",
            column_name=name,
            db_column_name=name,
            column_class_name=column_class.__name__,
            column_class=column_class,
            params={
                **params,
                "primary_key": False,
                "unique": False,
                "index_method": IndexMethod.btree,
                "choices": None,
                "db_column_name": None,
                "secret": False,
            },
            schema=None,
        )

    return manager
