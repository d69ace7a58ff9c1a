"""The built-in admin pages, registered in the navigation through the ``admin_nav`` hook like
any plugin's pages (a default plugin, see ``csms.plugins.DEFAULT_PLUGINS``)."""

from __future__ import annotations

from typing import Any

from csms.core.domain import NavItem
from csms.i18n import N_
from csms.plugins import hookimpl


@hookimpl
def admin_nav(request: Any) -> list[NavItem]:
    items = [
        NavItem(N_("Dashboard"), "/", order=0),
        NavItem(N_("Stations"), "/admin/stations", order=10),
        NavItem(N_("Sites"), "/admin/sites", order=20),
        NavItem(N_("Map"), "/admin/map", order=25),
        NavItem(N_("Sessions"), "/admin/sessions", order=30),
        NavItem(N_("Cards"), "/admin/tokens", order=40),
        NavItem(N_("Drivers"), "/admin/drivers", order=45),
        NavItem(N_("Organizations"), "/admin/organizations", order=50),
        NavItem(N_("Users"), "/admin/users", order=80, min_role="admin"),
        NavItem(N_("Audit log"), "/admin/audit", order=85, min_role="admin"),
        NavItem(N_("Plans"), "/admin/plans", order=88, min_role="admin"),
        NavItem(N_("Plugins"), "/admin/plugins", order=90),
    ]
    user = request.scope.get("csms_admin_user") if request is not None else None
    if user is not None and user.superuser:
        items.append(NavItem(N_("Database"), "/admin/db/", order=95, min_role="admin"))
    return items
