"""The Stripe plugin's Piccolo app: its tables and migrations (after the core's)."""

from __future__ import annotations

import os

from piccolo.conf.apps import AppConfig

from plugins.payments_stripe.tables import STRIPE_TABLES

APP_CONFIG = AppConfig(
    app_name="payments_stripe",
    migrations_folder_path=os.path.join(os.path.dirname(__file__), "piccolo_migrations"),
    table_classes=list(STRIPE_TABLES),
    migration_dependencies=["csms.core.piccolo_app"],
    commands=[],
)
