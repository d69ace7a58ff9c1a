"""Readings and seqNos stored once: unique indexes on meter_value and transaction_seq_no.

A reading is the value of one measurand, phase, location and context at one timestamp of one
EVSE: the same one twice is a replay. Duplicates stored before this migration are removed
first, keeping the earliest row of each.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-04T17:34:13:000000"
VERSION = "1.38.0"
DESCRIPTION = "unique meter_value readings and transaction seqNos"

_STATEMENTS = (
    "DELETE FROM meter_value WHERE id NOT IN (SELECT MIN(id) FROM meter_value GROUP BY station_id, evse_id, "
    "timestamp, measurand, phase, location, context, value)",
    # timestamp first: new readings all land at the index's end, as cheap to insert as the rows
    "CREATE UNIQUE INDEX meter_value_reading ON meter_value (timestamp, station_id, evse_id, measurand, phase, "
    "location, context, value)",
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
