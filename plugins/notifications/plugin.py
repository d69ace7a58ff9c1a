"""The notifications plugin's hook implementations (entry point ``notifications`` in the ``csms``
group): webhooks, e-mail, live admin notifications and drivers' own session notifications (by
e-mail, webhook or Web Push to their phone: the driver portal's Notifications page)."""

from __future__ import annotations

from pathlib import Path

from csms.plugin_api import N_, NavItem, hookimpl, public_route
from plugins.notifications.config import NotificationSettings

TEMPLATE_DIR = Path(__file__).parent / "templates"
LOCALE_DIR = Path(__file__).parent / "locale"
SETTINGS_CLASSES = (NotificationSettings,)


@hookimpl
def piccolo_apps():
    return ["plugins.notifications.piccolo_app"]


@hookimpl
def startup(app, settings):
    from plugins.notifications import service, webpush

    webpush.use_public_url(settings.public_url)
    return service.start


@hookimpl
def shutdown(app):
    from plugins.notifications import service

    return service.stop


@hookimpl
def event_batch(events):
    from plugins.notifications import service

    notifier = service.notifier()
    if notifier is not None:
        for event in events:
            notifier.on_event(event)


@hookimpl
def driver_data_export(driver):
    """The driver's subscriptions and their delivery log, for their data export (GDPR)."""
    from plugins.notifications.personal_data import driver_export

    async def export():
        return await driver_export(driver)

    return export


@hookimpl
def driver_erased(driver):
    """Delete the driver's subscriptions and link; scrub their address from the delivery log."""
    from plugins.notifications.personal_data import driver_erase

    async def erase():
        await driver_erase(driver)

    return erase


@hookimpl
def register_routes(settings):
    from plugins.notifications.admin import driver_router, notifications_admin_router
    from plugins.notifications.api import notifications_api_router
    from plugins.notifications.driver_push import push_driver_router

    return [notifications_api_router(), notifications_admin_router(), push_driver_router(),
            public_route(driver_router(), "a driver's own notification settings, opened by the secret link "
                                          "the operator sends (the token in the path is the credential)")]


@hookimpl
def template_dirs():
    return [str(TEMPLATE_DIR)]


@hookimpl
def locale_dirs():
    return [str(LOCALE_DIR)]


@hookimpl
def admin_nav(request):
    return [NavItem(N_("Notifications"), "/admin/notifications", order=58)]


@hookimpl
def driver_nav(request):
    return [NavItem(N_("Notifications"), "/driver/notifications", order=40)]


@hookimpl
def admin_panels(page, request, context):
    from plugins.notifications.admin import panel

    return panel(page, request, context)
