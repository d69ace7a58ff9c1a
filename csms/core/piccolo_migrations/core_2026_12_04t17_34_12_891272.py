from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import BigInt
from piccolo.columns.column_types import Integer
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-04T17:34:12:891272"
VERSION = "1.38.0"
DESCRIPTION = "transaction_seq_no; meter_value.unit of 20 characters"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="core", description=DESCRIPTION
    )

    manager.add_table(
        class_name="TransactionSeqNo",
        tablename="transaction_seq_no",
        schema=None,
        columns=None,
    )

    manager.add_column(
        table_class_name="TransactionSeqNo",
        tablename="transaction_seq_no",
        column_name="session",
        db_column_name="session",
        column_class_name="BigInt",
        column_class=BigInt,
        params={
            "default": 0,
            "null": False,
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

    manager.add_column(
        table_class_name="TransactionSeqNo",
        tablename="transaction_seq_no",
        column_name="seq_no",
        db_column_name="seq_no",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": 0,
            "null": False,
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

    manager.alter_column(
        table_class_name="MeterValue",
        tablename="meter_value",
        column_name="unit",
        db_column_name="unit",
        params={"length": 20},
        old_params={"length": 16},
        column_class=Varchar,
        old_column_class=Varchar,
        schema=None,
    )

    return manager
