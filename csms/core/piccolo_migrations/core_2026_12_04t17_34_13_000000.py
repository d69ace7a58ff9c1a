"""A 2.0.1 transaction's seqNo is stored once: a unique index on transaction_seq_no."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-04T17:34:13:000000"
VERSION = "1.38.0"
DESCRIPTION = "unique transaction seqNos"

_STATEMENTS = (
    "CREATE UNIQUE INDEX transaction_seq_no_unique ON transaction_seq_no (session, seq_no)",
)


async def forwards():
    from csms.core.tables import MeterValue

    manager = MigrationManager(migration_id=ID, app_name="core", description=DESCRIPTION)

    async def create_indexes():
        for sql in _STATEMENTS:
            await MeterValue.raw(sql)

    manager.add_raw(create_indexes)
    return manager
