"""The core's Piccolo app: its tables and migrations."""

from __future__ import annotations

import os

from piccolo.conf.apps import AppConfig

from csms.core.tables import CORE_TABLES

APP_CONFIG = AppConfig(
    app_name="core",
    migrations_folder_path=os.path.join(os.path.dirname(__file__), "piccolo_migrations"),
    table_classes=list(CORE_TABLES),
    migration_dependencies=[],
    commands=[],
)
