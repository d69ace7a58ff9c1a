"""Plans per organization (issue 18): the ``plan`` table and ``organization.plan`` (none: its
parent's plan, or no restrictions). The shipped plans follow in the next migration (a migration's
raw steps run before its tables are made)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.base import OnDelete
from piccolo.columns.base import OnUpdate
from piccolo.columns.column_types import JSON
from piccolo.columns.column_types import ForeignKey
from piccolo.columns.column_types import Integer
from piccolo.columns.column_types import Serial
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod
from piccolo.table import Table

ID = "2026-12-06T22:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "plan, organization.plan"


class Plan(Table, tablename="plan", schema=None):
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


_COLUMNS = (
    ("name", Varchar, {"length": 50, "default": "", "null": False, "unique": True}),
    ("description", Varchar, {"length": 300, "default": "", "null": False, "unique": False}),
    ("features", JSON, {"default": "[]", "null": False, "unique": False}),
    ("max_stations", Integer, {"default": None, "null": True, "unique": False}),
    ("max_hubs", Integer, {"default": None, "null": True, "unique": False}),
    ("max_users", Integer, {"default": None, "null": True, "unique": False}),
    ("max_api_keys", Integer, {"default": None, "null": True, "unique": False}),
)

async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="core", description=DESCRIPTION)

    manager.add_table(class_name="Plan", tablename="plan", schema=None, columns=None)
    for name, column_class, params in _COLUMNS:
        manager.add_column(
            table_class_name="Plan",
            tablename="plan",
            column_name=name,
            db_column_name=name,
            column_class_name=column_class.__name__,
            column_class=column_class,
            params={**params, "primary_key": False, "index": False, "index_method": IndexMethod.btree,
                    "choices": None, "db_column_name": None, "secret": False},
            schema=None,
        )

    manager.add_column(
        table_class_name="Organization",
        tablename="organization",
        column_name="plan",
        db_column_name="plan",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": Plan,
            "on_delete": OnDelete.restrict,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    return manager
