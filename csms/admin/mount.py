"""``AdminPlugin``: puts the operator admin into the Litestar app in one step.

It adds the admin's routes (guarded by login and role), CSRF protection for every form
(the machine endpoints ``/api/``, ``/ocpp/``, ``/ocpi/`` are left out: they use bearer tokens
or are not browsers), piccolo-admin at ``/admin/db``, the live-update hub, the template
filters, and the session-login resolver of the REST API.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, AsyncIterator

from litestar import Router
from litestar.config.csrf import CSRFConfig
from litestar.plugins import InitPlugin

from csms.admin import (audit, auth, cards, dashboard, display_messages, local_lists, login, personal_data, plugin_list,
                        public_map, session_actions, sessions, sites, stations, users)
from csms.admin import plans, reservations
from csms.admin import qr_labels
from csms.admin import charging_profiles, customer_information, der, monitoring, network_profiles
from csms.admin import certificates, data_transfer, energy_controls, tariff_fallback
from csms.admin.config import AdminSettings, admin_settings
from csms.admin.database import create_database_admin, database_mount
from csms.admin.errors import ADMIN_EXCEPTION_HANDLERS
from csms.admin.live import LiveHub
from csms.admin.templating import install_filters, mark_request_start
from csms.api.auth import principal_resolvers
from csms.api.tenancy import page_principal_resolvers

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.config.app import AppConfig

    from csms.settings import Settings

log = logging.getLogger("csms.admin")

CSRF_EXCLUDE = ["^/api/", "^/ocpp/", "^/ocpi/", "^/admin/db"]


def admin_router() -> Router:
    return Router(
        path="/",
        route_handlers=[
            login.login_page, login.login_submit, login.logout_submit,
            dashboard.dashboard, dashboard.admin_home, dashboard.dashboard_stats, dashboard.dashboard_events, dashboard.stream,
            stations.station_list, stations.station_new, stations.station_create, stations.station_detail,
            stations.station_live, stations.station_action, stations.station_registration,
            stations.station_password, stations.station_rotate_password, stations.station_assign,
            stations.station_security_profile,
            local_lists.local_list_sync,
            reservations.reservation_create, reservations.reservation_cancel,
            display_messages.display_message_panel, display_messages.display_message_set,
            display_messages.display_message_clear, display_messages.display_message_refresh,
            charging_profiles.charging_profile_panel, charging_profiles.charging_profile_clear,
            charging_profiles.charging_profile_set,
            charging_profiles.charging_profile_report, network_profiles.network_profile_set,
            monitoring.monitoring_panel, monitoring.monitoring_set, monitoring.monitoring_clear,
            monitoring.monitoring_report, monitoring.monitoring_base, monitoring.monitoring_level,
            customer_information.customer_information_panel, customer_information.customer_information_request,
            der.der_panel, der.der_set, der.der_get, der.der_clear, der.der_battery_swap,
            certificates.certificate_panel, certificates.certificate_installed, certificates.certificate_install,
            certificates.certificate_delete, certificates.certificate_renew, data_transfer.data_transfer_send, tariff_fallback.tariff_fallback_send,
            energy_controls.energy_control_panel, energy_controls.energy_control_afrr,
            energy_controls.energy_control_schedule_update, energy_controls.energy_control_priority,
            energy_controls.energy_control_allowed, energy_controls.energy_control_web_payment,
            energy_controls.energy_control_event_streams, energy_controls.energy_control_adjust_stream,
            sites.site_list, sites.site_new, sites.site_create, sites.site_detail, sites.site_edit,
            sites.site_update, sites.site_assign, sites.site_delete, sites.hub_new, sites.hub_create,
            sites.hub_edit, sites.hub_update, sites.site_map, sites.site_map_data,
            qr_labels.station_labels, qr_labels.site_labels,
            sessions.session_list, sessions.session_csv, sessions.session_detail, session_actions.session_force_close,
            cards.token_list, cards.token_csv, cards.refused_tokens, cards.token_new, cards.token_create, cards.token_edit,
            cards.token_update,
            cards.token_set_status, cards.token_delete, cards.token_import_form, cards.token_import,
            cards.driver_list, cards.organization_list, *cards.ENTITY_ROUTES,
            personal_data.driver_export, personal_data.driver_erase_page, personal_data.driver_erase,
            plugin_list.plugin_list, *plans.PLAN_ROUTES, audit.audit_page, audit.audit_csv,
            users.user_list, users.user_new, users.user_invite, users.user_role, users.user_active, users.user_reset,
            users.account, users.account_save, users.account_time_zone, users.account_language, users.link_page, users.link_save,
        ],
        guards=[auth.admin_guard],
        before_request=mark_request_start,
        exception_handlers=ADMIN_EXCEPTION_HANDLERS,
        include_in_schema=False,
    )


class AdminPlugin(InitPlugin):
    """The operator admin as one Litestar plugin (``Litestar(plugins=[AdminPlugin(settings)])``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings: AdminSettings = admin_settings(settings)
        self.hub = LiveHub()

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.extend([
            admin_router(),
            public_map.public_map_router(),
            database_mount(create_database_admin(production=self.settings.secure_cookies)),
        ])
        app_config.csrf_config = CSRFConfig(
            secret=self.settings.secret, cookie_name=auth.CSRF_COOKIE, header_name=auth.CSRF_HEADER,
            cookie_secure=self.settings.secure_cookies, cookie_httponly=True, cookie_samesite="lax",
            exclude=CSRF_EXCLUDE,
        )
        app_config.state.admin_hub = self.hub
        app_config.state.admin_settings = self.settings
        app_config.state.admin_login_limiter = login.login_limiter()
        app_config.lifespan.append(self._lifespan)
        if app_config.template_config is not None and app_config.template_config.engine_instance is not None:
            install_filters(app_config.template_config.engine_instance.engine)
        resolver = auth.session_principal_resolver(self.settings.secret)
        principal_resolvers[:] = [r for r in principal_resolvers if getattr(r, "__name__", "") != resolver.__name__]
        principal_resolvers.append(resolver)
        page_principal_resolvers[:] = [auth.page_principal]
        return app_config

    @asynccontextmanager
    async def _lifespan(self, app: Litestar) -> AsyncIterator[None]:
        from csms.core.runtime import get_core

        self.hub.start(get_core().events)
        try:
            yield
        finally:
            await self.hub.stop()
