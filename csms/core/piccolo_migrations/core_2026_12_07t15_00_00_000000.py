"""station.pending_password_hash: a new Basic-auth password sent, its acceptance not heard yet."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-07T15:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "a station's pending password"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="core", description=DESCRIPTION)
    manager.add_column(
        table_class_name="Station",
        tablename="station",
        column_name="pending_password_hash",
        db_column_name="pending_password_hash",
        column_class_name="Varchar",
        column_class=Varchar,
        params={"length": 200, "default": "", "null": True, "primary_key": False, "unique": False,
                "index": False, "index_method": IndexMethod.btree, "choices": None, "db_column_name": None,
                "secret": False},
        schema=None,
    )
    return manager
