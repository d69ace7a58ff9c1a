"""A 2.0.1 station's network connection profile, on the station's page: a panel (through
``admin_panels``, a default plugin, see ``csms.plugins.DEFAULT_PLUGINS``) with a form that stores
a profile in a slot (B09) and, when asked, makes that slot first and resets the station (A05
upgrading its security profile, B10 moving it to another CSMS). OCPP 1.6 stations have no
SetNetworkProfile and get no panel."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.exceptions import NotFoundException
from litestar.response import Template
from markupsafe import Markup

from csms.admin.auth import actor, current_user
from csms.admin.outcomes import command_outcome
from csms.admin.templating import fragment, page_panel, render
from csms.core.ocpp.validation import V16
from csms.core.runtime import get_core
from csms.core.services.network_profiles import INTERFACES
from csms.core.services.operations import OperationError
from csms.core.tables import Station
from csms.i18n import N_, gettext
from csms.plugins import hookimpl

STATION = {"tenant": {"station_id": "station"}}
TEMPLATE = "stations/_network_profile.html"
STEPS = {"set_network_profile": N_("storing the profile"), "priority": N_("making its slot first"),
         "reset": N_("the reset")}


async def _context(request: Request, station_id: str, notice: str = "", ok: bool = True) -> dict[str, Any]:
    user = await current_user(request)
    row = await Station.select(Station.security_profile).where(Station.station_id == station_id).first()
    if row is None:
        raise NotFoundException(gettext("There is no station %(station)s.", station=station_id))
    return {"sid": station_id, "notice": notice, "ok": ok, "can_operate": bool(user and user.can("operator")),
            "interfaces": INTERFACES, "stored_profile": row["security_profile"] or 0}


@hookimpl
@page_panel("station", when=lambda context: context.get("version") != V16)
async def admin_panels(request: Request, station: dict[str, Any]) -> Markup:
    return fragment(request, TEMPLATE, **await _context(request, station["station_id"]))


def _int(value: Any, what: str) -> int:
    value = (value or "").strip()
    if not value.isdigit():
        raise OperationError(N_("%(what)s: %(value)s is not a number"), what=what, value=repr(value))
    return int(value)


@post("/admin/stations/{station_id:str}/network-profile", include_in_schema=False, opt=STATION)
async def network_profile_set(request: Request, station_id: str) -> Template:
    form = await request.form()
    switch = form.get("switch") == "on"

    async def command() -> dict[str, Any]:
        args: dict[str, Any] = {"slot": _int(form.get("slot"), gettext("Slot")), "url": (form.get("url") or "").strip(),
                "security_profile": _int(form.get("security_profile"), gettext("Security profile")),
                "interface": form.get("interface") or "Wired0",
                "message_timeout": _int(form.get("message_timeout") or "30", gettext("Message timeout")),
                "by": await actor(request)}
        service = get_core().network_profiles
        return await (service.switch(station_id, **args) if switch else service.set_profile(station_id, **args))

    def said(result: dict[str, Any]) -> tuple[bool, str]:
        if result["status"] != "Accepted":
            step = result.get("failed_at", "set_network_profile")
            return False, gettext("The station answered %(status)s to %(step)s.", status=result["status"],
                                  step=gettext(STEPS[step]))
        if switch:
            return True, gettext("The station stored the profile, tries it first (priority %(priority)s) and "
                                 "resets when idle.", priority=result["priority"])
        return True, gettext("The station stored the profile in slot %(slot)s.", slot=result["slot"])

    async def again(notice: str, ok: bool) -> Template:
        return await render(request, TEMPLATE, **await _context(request, station_id, notice, ok))

    return await command_outcome(request, station_id, command(), said, again)
