"""Refused authorizations: every id token a station was refused, for the admin (issue 15)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Integer
from piccolo.columns.column_types import Timestamptz
from piccolo.columns.column_types import Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-06T05:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "refused_authorization"

_COLUMNS = (
    ("station_id", Varchar, {"length": 64, "default": "", "null": False, "index": True}),
    ("id_token", Varchar, {"length": 255, "default": "", "null": False, "index": True}),
    ("token_type", Varchar, {"length": 24, "default": "", "null": False, "index": False}),
    ("status", Varchar, {"length": 24, "default": "", "null": False, "index": False}),
    ("purpose", Varchar, {"length": 16, "default": "", "null": False, "index": False}),
    ("evse_id", Integer, {"default": None, "null": True, "index": False}),
    ("source", Varchar, {"length": 64, "default": "", "null": False, "index": False}),
    ("timestamp", Timestamptz, {"default": TimestamptzNow(), "null": False, "index": True}),
)


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="core", description=DESCRIPTION
    )

    manager.add_table(
        class_name="RefusedAuthorization",
        tablename="refused_authorization",
        schema=None,
        columns=None,
    )

    for name, column_class, params in _COLUMNS:
        manager.add_column(
            table_class_name="RefusedAuthorization",
            tablename="refused_authorization",
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
