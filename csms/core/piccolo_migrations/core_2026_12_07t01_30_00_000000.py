"""charging_session.v2x: the EV's bidirectional (V2X) parameters from 2.1 NotifyEVChargingNeeds."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import JSON
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-07T01:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "charging_session.v2x"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="core", description=DESCRIPTION)
    manager.add_column(
        table_class_name="ChargingSession",
        tablename="charging_session",
        column_name="v2x",
        db_column_name="v2x",
        column_class_name="JSON",
        column_class=JSON,
        params={"default": None, "null": True, "primary_key": False, "unique": False, "index": False,
                "index_method": IndexMethod.btree, "choices": None, "db_column_name": None, "secret": False},
        schema=None,
    )
    return manager
