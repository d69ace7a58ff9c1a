"""The stationops plugin's hook implementations (entry point ``stationops`` in the ``csms`` group):
firmware catalogue and campaigns, diagnostics uploads, health and uptime, alerts."""

from __future__ import annotations

from pathlib import Path

from csms.plugin_api import N_, NavItem, hookimpl, public_route
from plugins.stationops.config import StationOpsSettings

TEMPLATE_DIR = Path(__file__).parent / "templates"
LOCALE_DIR = Path(__file__).parent / "locale"
SETTINGS_CLASSES = (StationOpsSettings,)


@hookimpl
def piccolo_apps():
    return ["plugins.stationops.piccolo_app"]


@hookimpl
def startup(app, settings):
    from plugins.stationops import service

    return service.start


@hookimpl
def shutdown(app):
    from plugins.stationops import service

    return service.stop


@hookimpl
def event_batch(events):
    from plugins.stationops import service

    running = service.service()
    if running is not None:
        for event in events:
            running.on_event(event)


@hookimpl
def register_routes(settings):
    from plugins.stationops.admin import stationops_admin_router
    from plugins.stationops.api import stationops_api_router
    from plugins.stationops.diagnostics import upload_handlers
    from plugins.stationops.firmware import firmware_file

    return [stationops_api_router(), stationops_admin_router(),
            public_route(firmware_file, "stations download firmware without credentials; a file name starts "
                                        "with the image's hash"),
            *(public_route(h, "stations upload diagnostics without credentials; the unguessable, expiring "
                              "token in the path is the credential") for h in upload_handlers())]


@hookimpl
def template_dirs():
    return [str(TEMPLATE_DIR)]


@hookimpl
def locale_dirs():
    return [str(LOCALE_DIR)]


@hookimpl
def admin_nav(request):
    return [NavItem(N_("Firmware"), "/admin/firmware", order=55), NavItem(N_("Health"), "/admin/health", order=56),
            NavItem(N_("Alerts"), "/admin/alerts", order=57)]


@hookimpl
def admin_panels(page, request, context):
    from plugins.stationops.admin import panel

    return panel(page, request, context)
