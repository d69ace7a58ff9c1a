"""The local authorization list on a station's page: a panel (through ``admin_panels``, a default
plugin, see ``csms.plugins.DEFAULT_PLUGINS``) with the list's state and "Send full list now"."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.response import Template
from markupsafe import Markup

from csms.admin.auth import actor, current_user
from csms.admin.outcomes import outcome_page
from csms.admin.templating import fragment, is_htmx, page_panel, render
from csms.api.audit import audited
from csms.core.runtime import get_core
from csms.core.services.commands import StationOffline
from csms.i18n import gettext
from csms.plugins import hookimpl

STATION = {"tenant": {"station_id": "station"}}
TEMPLATE = "stations/_local_list.html"


@hookimpl
@page_panel("station")
async def admin_panels(request: Request, station: dict[str, Any]) -> Markup:
    user = await current_user(request)
    state = await get_core().local_lists.state(station["station_id"])
    return fragment(request, TEMPLATE, ll=state, sid=station["station_id"],
                    can_operate=bool(user and user.can("operator")), notice="")


@post("/admin/stations/{station_id:str}/local-list/sync", include_in_schema=False, opt=STATION)
async def local_list_sync(request: Request, station_id: str) -> Template:
    """Send the full list now; the panel comes back with the outcome (a page of it without HTMX)."""
    core = get_core()
    by = await actor(request)
    offline = False
    try:
        state = await core.local_lists.sync(station_id, full=True, check=True, by=by)
        result = state["last_result"]
        if result == "Accepted":
            notice = gettext("Sent: the station accepted version %(version)s.", version=state["version"])
        elif not result:
            notice = gettext("Nothing was sent.")
        elif state["last_detail"]:
            notice = gettext("Not sent in full (%(result)s): %(detail)s", result=result, detail=state["last_detail"])
        else:
            notice = gettext("Not sent in full (%(result)s).", result=result)
    except StationOffline:
        offline = True
        state = await core.local_lists.state(station_id)
        notice = gettext("The station is offline; its list is sent when it connects again.")
    await audited(request, "command", "station", station_id,
                  after={"action": "local_list_sync", "full": True, "version": state["version"],
                         "result": state["last_result"]},
                  summary="local list full sync: " + ("station offline" if offline else state["last_result"] or "nothing sent"))
    if not is_htmx(request):
        # went well as the panel shows it (its outcome's class)
        return await outcome_page(request, station_id, notice, state["last_result"] in ("Accepted", "InSync"))
    return await render(request, TEMPLATE, ll=state, sid=station_id, notice=notice)
