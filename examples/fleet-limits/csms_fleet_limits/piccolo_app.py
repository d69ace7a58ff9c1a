"""The plugin's Piccolo app: its table and migrations, applied after the core's by `csms migrate`."""

from __future__ import annotations

import os

from piccolo.conf.apps import AppConfig

from csms_fleet_limits.tables import FleetCardLimit

APP_CONFIG = AppConfig(
    app_name="fleet_limits",
    migrations_folder_path=os.path.join(os.path.dirname(__file__), "piccolo_migrations"),
    table_classes=[FleetCardLimit],
    migration_dependencies=["csms.core.piccolo_app"],
    commands=[],
)
