"""DER controls and battery swaps of an OCPP 2.1 station, on the station's page: a panel (through
``admin_panels``, a default plugin, see ``csms.plugins.DEFAULT_PLUGINS``) with what the station
last reported (its DER control reports, alarms, starts and stops, battery swaps: the station
events of categories ``der`` and ``battery_swap``), and forms to set a DER control (its settings
as the 2.1 JSON of that control type), ask the station for its controls, clear them, and request
a battery swap. Stations of earlier versions have none of these and get no panel."""

from __future__ import annotations

import json
from typing import Any

from litestar import Request, get, post
from litestar.datastructures import FormMultiDict
from litestar.exceptions import NotFoundException
from litestar.response import Template
from markupsafe import Markup

from csms.admin.auth import actor, current_user
from csms.admin.outcomes import command_outcome
from csms.admin.templating import fragment, page_panel, render
from csms.core.ocpp.validation import V21
from csms.core.runtime import get_core
from csms.core.services.der import CONTROL_FIELDS, TOKEN_TYPES
from csms.core.services.operations import OperationError
from csms.core.tables import Station, StationEvent
from csms.i18n import N_, gettext
from csms.plugins import hookimpl

STATION = {"tenant": {"station_id": "station"}}
TEMPLATE = "stations/_der.html"
CATEGORIES = ("der", "battery_swap")


async def _context(request: Request, station_id: str, notice: str = "", ok: bool = True,
                   reload: bool = False) -> dict[str, Any]:
    user = await current_user(request)
    if not await Station.exists().where(Station.station_id == station_id):
        raise NotFoundException(gettext("There is no station %(station)s.", station=station_id))
    reports = await StationEvent.select(StationEvent.kind, StationEvent.category, StationEvent.summary,
                                        StationEvent.timestamp).where(
        (StationEvent.station_id == station_id) & StationEvent.category.is_in(list(CATEGORIES))
    ).order_by(StationEvent.id, ascending=False).limit(10)
    return {"reports": reports, "sid": station_id, "notice": notice, "ok": ok, "reload": reload,
            "can_operate": bool(user and user.can("operator")), "control_types": sorted(CONTROL_FIELDS),
            "token_types": sorted(TOKEN_TYPES)}


@hookimpl
@page_panel("station", when=lambda context: context.get("version") == V21)
async def admin_panels(request: Request, station: dict[str, Any]) -> Markup:
    return fragment(request, TEMPLATE, **await _context(request, station["station_id"]))


@get("/admin/stations/{station_id:str}/der", include_in_schema=False, opt=STATION)
async def der_panel(request: Request, station_id: str) -> Template:
    """The panel alone (HTMX reloads it when the station's report is due)."""
    return await render(request, TEMPLATE, **await _context(request, station_id))


async def _outcome(request: Request, station_id: str, command: Any, done: Any, *,
                   reload: bool = False) -> Template:
    """Await ``command``; ``done(result)`` words an accepted answer. The panel comes back with
    the outcome, loading itself again a moment later with ``reload`` (a report follows)."""
    accepted = False

    def said(result: dict[str, Any]) -> tuple[bool, str]:
        nonlocal accepted
        accepted = result["status"] == "Accepted"
        if accepted:
            return True, done(result)
        reason = (result.get("response") or {}).get("statusInfo", {}).get("reasonCode")
        if reason:
            return False, gettext("The station answered %(status)s (%(reason)s).", status=result["status"],
                                  reason=reason)
        return False, gettext("The station answered %(status)s.", status=result["status"])

    async def again(notice: str, ok: bool) -> Template:
        return await render(request, TEMPLATE, **await _context(request, station_id, notice, ok, reload and accepted))

    return await command_outcome(request, station_id, command, said, again)


def _choice(form: FormMultiDict, name: str, allowed: Any) -> str | None:
    value = (form.get(name) or "").strip()
    if not value:
        return None
    if value not in allowed:
        raise OperationError(N_("%(value)s is not one of the choices"), value=repr(value))
    return value


@post("/admin/stations/{station_id:str}/der/set", include_in_schema=False, opt=STATION)
async def der_set(request: Request, station_id: str) -> Template:
    form = await request.form()

    async def command() -> dict[str, Any]:
        control_id = (form.get("control_id") or "").strip()
        control_type = _choice(form, "control_type", CONTROL_FIELDS)
        if not control_id or len(control_id) > 36:
            raise OperationError(N_("give the control an id of 1 to 36 characters"))
        if control_type is None:
            raise OperationError(N_("choose the control type"))
        try:
            settings = json.loads(form.get("control") or "")
        except ValueError:
            settings = None
        if not isinstance(settings, dict):
            raise OperationError(N_("the settings are not a JSON object (e.g. {\"priority\": 1, ...})"))
        return await get_core().der.set_control(station_id, control_id=control_id, control_type=control_type,
                                                control=settings, is_default=bool(form.get("is_default")),
                                                by=await actor(request))

    def done(result: dict[str, Any]) -> str:
        if result["superseded_ids"]:
            return gettext("DER control accepted; it supersedes %(ids)s.", ids=", ".join(result["superseded_ids"]))
        return gettext("DER control accepted.")

    return await _outcome(request, station_id, command(), done)


@post("/admin/stations/{station_id:str}/der/get", include_in_schema=False, opt=STATION)
async def der_get(request: Request, station_id: str) -> Template:
    form = await request.form()

    async def command() -> dict[str, Any]:
        return await get_core().der.get_controls(
            station_id, control_type=_choice(form, "control_type", CONTROL_FIELDS),
            control_id=(form.get("control_id") or "").strip() or None, by=await actor(request))

    return await _outcome(request, station_id, command(), lambda r: gettext(
        "Asked the station for its DER controls (request %(request)s); its report appears below.",
        request=r["request_id"]), reload=True)


@post("/admin/stations/{station_id:str}/der/clear", include_in_schema=False, opt=STATION)
async def der_clear(request: Request, station_id: str) -> Template:
    form = await request.form()

    async def command() -> dict[str, Any]:
        return await get_core().der.clear_controls(
            station_id, is_default=form.get("kind") == "default",
            control_type=_choice(form, "control_type", CONTROL_FIELDS),
            control_id=(form.get("control_id") or "").strip() or None, by=await actor(request))

    return await _outcome(request, station_id, command(), lambda r: gettext("DER controls cleared."))


@post("/admin/stations/{station_id:str}/der/battery-swap", include_in_schema=False, opt=STATION)
async def der_battery_swap(request: Request, station_id: str) -> Template:
    form = await request.form()

    async def command() -> dict[str, Any]:
        id_token = (form.get("id_token") or "").strip()
        if not id_token or len(id_token) > 255:
            raise OperationError(N_("give the id token of the driver (1 to 255 characters)"))
        return await get_core().der.request_battery_swap(
            station_id, id_token=id_token, token_type=_choice(form, "token_type", TOKEN_TYPES) or "ISO14443",
            by=await actor(request))

    return await _outcome(request, station_id, command(), lambda r: gettext(
        "Battery swap requested (request %(request)s); the station reports it below.", request=r["request_id"]),
        reload=True)
