"""One display message per (station, message id): a unique index on display_message."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-06T02:30:48:300000"
VERSION = "1.38.0"
DESCRIPTION = "unique display message ids per station"

_STATEMENTS = (
    "CREATE UNIQUE INDEX display_message_station_message_id ON display_message (station, message_id)",
)


async def forwards():
    from csms.core.tables import DisplayMessage

    manager = MigrationManager(migration_id=ID, app_name="core", description=DESCRIPTION)

    async def create_indexes():
        for sql in _STATEMENTS:
            await DisplayMessage.raw(sql)

    manager.add_raw(create_indexes)
    return manager
