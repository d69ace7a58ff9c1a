"""The peak-shaving plugin's Piccolo app: its tables and migrations (after the core's)."""

from __future__ import annotations

import os

from piccolo.conf.apps import AppConfig

from plugins.peakshaving.tables import PEAKSHAVING_TABLES

APP_CONFIG = AppConfig(
    app_name="peakshaving",
    migrations_folder_path=os.path.join(os.path.dirname(__file__), "piccolo_migrations"),
    table_classes=list(PEAKSHAVING_TABLES),
    migration_dependencies=["csms.core.piccolo_app"],
    commands=[],
)
