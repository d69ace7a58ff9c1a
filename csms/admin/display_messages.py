"""Messages on a 2.0.1 station's display, on the station's page: a panel (through
``admin_panels``, a default plugin, see ``csms.plugins.DEFAULT_PLUGINS``) listing what the CSMS
knows of them, a form to set one, a button to clear each, and "Ask the station". OCPP 1.6
stations have no display messages and get no panel."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Template
from markupsafe import Markup

from csms.admin.auth import actor, current_user
from csms.admin.outcomes import command_outcome
from csms.admin.templating import fragment, page_panel, render
from csms.core.ocpp.validation import V16
from csms.core.runtime import get_core
from csms.core.services.commands import UnknownStation
from csms.core.services.display_messages import PRIORITIES, STATES
from csms.core.services.operations import OperationError
from csms.i18n import N_, gettext
from csms.plugins import hookimpl

STATION = {"tenant": {"station_id": "station"}}
TEMPLATE = "stations/_display_messages.html"


async def _context(request: Request, station_id: str, notice: str = "", ok: bool = True,
                   reload: bool = False) -> dict[str, Any]:
    user = await current_user(request)
    try:
        listing = await get_core().display_messages.listing(station_id)
    except UnknownStation:
        raise NotFoundException(gettext("There is no station %(station)s.", station=station_id)) from None
    return {"dm": listing, "sid": station_id, "notice": notice,
            "ok": ok, "reload": reload, "can_operate": bool(user and user.can("operator")),
            "priorities": PRIORITIES, "states": STATES}


@hookimpl
@page_panel("station", when=lambda context: context.get("version") != V16)
async def admin_panels(request: Request, station: dict[str, Any]) -> Markup:
    return fragment(request, TEMPLATE, **await _context(request, station["station_id"]))


async def _outcome(request: Request, station_id: str, command: Any, done: str, *,
                   reload: bool = False, **words: Any) -> Template:
    """Await ``command``; the panel comes back with its outcome (a page of it without HTMX),
    loading itself again a moment later with ``reload`` (the station's report follows its answer)."""
    accepted = False

    def said(result: dict[str, Any]) -> tuple[bool, str]:
        nonlocal accepted
        accepted = result["status"] == "Accepted"
        if result["status"] in ("Accepted", "Unknown"):
            return True, gettext(done, **{**result, **words})
        return False, gettext("The station answered %(status)s.", status=result["status"])

    async def again(notice: str, ok: bool) -> Template:
        return await render(request, TEMPLATE, **await _context(request, station_id, notice, ok, reload and accepted))

    return await command_outcome(request, station_id, command, said, again)


@get("/admin/stations/{station_id:str}/display-messages", include_in_schema=False, opt=STATION)
async def display_message_panel(request: Request, station_id: str) -> Template:
    """The panel alone (HTMX reloads it after asking the station)."""
    return await render(request, TEMPLATE, **await _context(request, station_id))


def _int(value: Any) -> int | None:
    value = (value or "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise OperationError(N_("%(value)s is not a number"), value=repr(value))
    return int(value)


@post("/admin/stations/{station_id:str}/display-messages", include_in_schema=False, opt=STATION)
async def display_message_set(request: Request, station_id: str) -> Template:
    form = await request.form()

    async def command() -> dict[str, Any]:
        return await get_core().display_messages.set(
            station_id, content=(form.get("content") or "").strip(), priority=form.get("priority") or "NormalCycle",
            state=form.get("state") or None, language=(form.get("language") or "").strip(),
            evse_id=_int(form.get("evse_id")), by=await actor(request))

    return await _outcome(request, station_id, command(), N_("Shown: the station accepted message %(message_id)s."))


@post("/admin/stations/{station_id:str}/display-messages/{message_id:int}/clear", include_in_schema=False,
      opt=STATION)
async def display_message_clear(request: Request, station_id: str, message_id: int) -> Template:
    return await _outcome(request, station_id, get_core().display_messages.clear(
        station_id, message_id=message_id, by=await actor(request)), N_("Message %(message_id)s cleared."), message_id=message_id)


@post("/admin/stations/{station_id:str}/display-messages/refresh", include_in_schema=False, opt=STATION)
async def display_message_refresh(request: Request, station_id: str) -> Template:
    return await _outcome(request, station_id, get_core().display_messages.refresh(station_id, by=await actor(request)),
                          N_("Asked the station for its messages."), reload=True)
