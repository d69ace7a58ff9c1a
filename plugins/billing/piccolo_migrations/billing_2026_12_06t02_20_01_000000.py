"""Organizations as tenants: existing statements belong to their party's organization (an
organization party's own, a driver's organization); the column is added by the migration before,
because a migration runs its raw SQL before its column changes."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder
from piccolo.querystring import QueryString

ID = "2026-12-06T02:20:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "owner of existing statements"


FILL = (
    "UPDATE billing_statement SET organization = party_id "
    "WHERE party_kind IN ('organization', 'leasing_partner') AND organization IS NULL "
    "AND party_id IN (SELECT id FROM organization)",
    "UPDATE billing_statement SET organization = "
    "(SELECT driver.organization FROM driver WHERE driver.id = billing_statement.party_id) "
    "WHERE party_kind = 'driver' AND organization IS NULL",
)


async def fill_statement_owners() -> None:
    # the engine being migrated now (a table class made at import would keep the engine of the
    # first database this process migrated)
    engine = engine_finder()
    assert engine is not None
    for sql in FILL:
        await engine.run_querystring(QueryString(sql))


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="billing", description=DESCRIPTION
    )
    manager.add_raw(fill_statement_owners)
    return manager
