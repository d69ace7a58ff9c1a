"""OCPP 2.1 state of the CSMS's own messages: charging_session.priority_charging and
allowed_energy_transfer (UsePriorityCharging, NotifyAllowedEnergyTransfer), charging_profile.
schedule_update and schedule_updated_at (UpdateDynamicSchedule)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import JSON, Boolean, Timestamptz
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-07T05:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "priority charging, allowed energy transfer, dynamic schedule updates"

_COLUMNS = (
    ("ChargingSession", "charging_session", "priority_charging", Boolean),
    ("ChargingSession", "charging_session", "allowed_energy_transfer", JSON),
    ("ChargingProfile", "charging_profile", "schedule_update", JSON),
    ("ChargingProfile", "charging_profile", "schedule_updated_at", Timestamptz),
)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="core", description=DESCRIPTION)
    for class_name, tablename, name, column_class in _COLUMNS:
        manager.add_column(
            table_class_name=class_name,
            tablename=tablename,
            column_name=name,
            db_column_name=name,
            column_class_name=column_class.__name__,
            column_class=column_class,
            params={"default": None, "null": True, "primary_key": False, "unique": False, "index": False,
                    "index_method": IndexMethod.btree, "choices": None, "db_column_name": None, "secret": False},
            schema=None,
        )
    return manager
