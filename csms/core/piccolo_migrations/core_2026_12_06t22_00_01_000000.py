"""The shipped plans HOME, BUSINESS and PUBLIC (issue 18); the installation's admins change them
on the Plans page. No organization is given one: existing installations stay unrestricted."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-06T22:00:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "shipped plans"

# The shipped plans (the admins change them on the Plans page).
SHIPPED = (
    ("HOME", "A home or a small business: a few stations, its drivers' portal.",
     ["driver_portal", "billing"], 2, 1, 3, 0),
    ("BUSINESS", "A company's sites: most features, moderate limits.",
     ["public_publishing", "driver_portal", "api_access", "billing", "load_balancing", "peak_shaving"], 50, 5, 25, 5),
    ("PUBLIC", "Public charging: every feature, no limits.",
     ["public_publishing", "driver_portal", "api_access", "billing", "load_balancing", "peak_shaving", "roaming"],
     None, None, None, None),
)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="core", description=DESCRIPTION)

    async def insert_plans():
        from csms.core.tables import Plan

        for name, description, features, stations, hubs, users, keys in SHIPPED:
            await Plan.insert(Plan(name=name, description=description, features=features, max_stations=stations,
                                   max_hubs=hubs, max_users=users, max_api_keys=keys))

    manager.add_raw(insert_plans)
    return manager
