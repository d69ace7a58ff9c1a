"""The roaming plugin's Piccolo app: its tables and migrations (after the core's)."""

from __future__ import annotations

import os

from piccolo.conf.apps import AppConfig

from plugins.roaming_ocpi.tables import OCPI_TABLES

APP_CONFIG = AppConfig(
    app_name="roaming_ocpi",
    migrations_folder_path=os.path.join(os.path.dirname(__file__), "piccolo_migrations"),
    table_classes=list(OCPI_TABLES),
    migration_dependencies=["csms.core.piccolo_app"],
    commands=[],
)
