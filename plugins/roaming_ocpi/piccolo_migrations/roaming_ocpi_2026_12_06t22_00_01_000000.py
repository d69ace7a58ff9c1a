"""Organizations as tenants: the Locations and Tokens published so far are marked with the
organization of their site or card, so the first refresh after the upgrade takes them for
unchanged (not for objects given to another organization, which would be pushed again). The
column is added by the migration before, because a migration runs its raw SQL before its column
changes."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder
from piccolo.querystring import QueryString

ID = "2026-12-06T22:00:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "organization of the objects published so far"


FILL = (
    "UPDATE ocpi_snapshot SET organization = "
    "(SELECT site.organization FROM site WHERE CAST(site.id AS TEXT) = ocpi_snapshot.key) "
    "WHERE kind = 'location' AND organization IS NULL",
    "UPDATE ocpi_snapshot SET organization = "
    "(SELECT t.organization FROM id_token t WHERE ocpi_snapshot.key IN "
    "('RFID:' || t.id_token, 'APP_USER:' || t.id_token, 'OTHER:' || t.id_token) LIMIT 1) "
    "WHERE kind = 'token' AND organization IS NULL",
)


async def fill_snapshot_owners() -> None:
    # the engine being migrated now (a table class made at import would keep the engine of the
    # first database this process migrated)
    engine = engine_finder()
    assert engine is not None
    for sql in FILL:
        await engine.run_querystring(QueryString(sql))


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="roaming_ocpi", description=DESCRIPTION
    )
    manager.add_raw(fill_snapshot_owners)
    return manager
