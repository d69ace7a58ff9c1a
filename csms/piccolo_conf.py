"""Piccolo configuration: the engine chosen by the settings and every app's tables.

Piccolo finds this module through ``PICCOLO_CONF=csms.piccolo_conf`` (set by ``csms.db``).
Plugin apps come from the ``piccolo_apps`` hook.
"""

from __future__ import annotations

from piccolo.conf.apps import AppRegistry

from csms.db import make_engine
from csms.plugins import plugin_app_modules
from csms.settings import get_settings

DB = make_engine(get_settings().effective_database_url)

APP_REGISTRY = AppRegistry(
    apps=[
        "csms.core.piccolo_app",
        "piccolo.apps.user.piccolo_app",
        "piccolo_api.session_auth.piccolo_app",
        *plugin_app_modules(),
    ]
)
