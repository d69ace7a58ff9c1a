from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-07T01:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "the requesting party (OCPI-from-*) of a command received, to which its CommandResult is addressed"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="roaming_ocpi", description=DESCRIPTION
    )

    manager.add_column(
        table_class_name="CommandRecord",
        tablename="ocpi_command",
        column_name="from_country_code",
        db_column_name="from_country_code",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 2,
            "default": "",
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
        table_class_name="CommandRecord",
        tablename="ocpi_command",
        column_name="from_party_id",
        db_column_name="from_party_id",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 3,
            "default": "",
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

    return manager
