"""Certificates issued to stations (SignCertificate signed by the built-in CA or a PKI plugin)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.base import OnDelete
from piccolo.columns.base import OnUpdate
from piccolo.columns.column_types import ForeignKey
from piccolo.columns.column_types import Serial
from piccolo.columns.column_types import Text
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


ID = "2026-12-06T06:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "issued_certificate"

_COLUMNS = (
    ("certificate_type", Varchar, {"length": 32, "default": "ChargingStationCertificate", "null": False,
                                   "index": False}),
    ("serial", Varchar, {"length": 64, "default": "", "null": False, "index": True}),
    ("subject", Varchar, {"length": 255, "default": "", "null": False, "index": False}),
    ("issuer", Varchar, {"length": 255, "default": "", "null": False, "index": False}),
    ("not_before", Timestamptz, {"default": None, "null": True, "index": False}),
    ("not_after", Timestamptz, {"default": None, "null": True, "index": True}),
    ("status", Varchar, {"length": 16, "default": "Pending", "null": False, "index": False}),
    ("issued_by", Varchar, {"length": 64, "default": "", "null": False, "index": False}),
    ("certificate", Text, {"default": "", "null": False, "index": False}),
    ("created_at", Timestamptz, {"default": TimestamptzNow(), "null": False, "index": False}),
)


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="core", description=DESCRIPTION
    )

    manager.add_table(
        class_name="IssuedCertificate",
        tablename="issued_certificate",
        schema=None,
        columns=None,
    )

    manager.add_column(
        table_class_name="IssuedCertificate",
        tablename="issued_certificate",
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
            table_class_name="IssuedCertificate",
            tablename="issued_certificate",
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
