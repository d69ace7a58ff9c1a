"""Invoices: statement numbers are unique (drafts have none: null, which both databases allow
more than once). An index of its own, because SQLite cannot add a UNIQUE column, and after the
column's migration, because a migration runs its raw SQL before its column changes."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder
from piccolo.querystring import QueryString

ID = "2026-12-06T06:20:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "unique statement numbers"


async def unique_numbers() -> None:
    engine = engine_finder()  # the engine being migrated now
    assert engine is not None
    await engine.run_querystring(QueryString(
        "CREATE UNIQUE INDEX IF NOT EXISTS billing_statement_number_key ON billing_statement (number)"))


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="billing", description=DESCRIPTION
    )
    manager.add_raw(unique_numbers)
    return manager
