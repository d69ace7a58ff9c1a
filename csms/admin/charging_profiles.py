"""Charging profiles on the station's page: a panel (through ``admin_panels``, a default plugin,
see ``csms.plugins.DEFAULT_PLUGINS``) listing the profiles the CSMS knows the station holds, a
form to set one (SetChargingProfile: purpose, kind, schedule periods typed one per line), a
button to clear each, a form to clear by EVSE, purpose and stack level (both versions), and
"Ask the station" (GetChargingProfiles, OCPP 2.0.1 only)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Template
from markupsafe import Markup

from csms.admin.auth import actor, current_user
from csms.admin.forms import parse_datetime_local
from csms.admin.outcomes import command_outcome
from csms.admin.templating import fragment, page_panel, render, viewer_zone
from csms.core.runtime import get_core
from csms.core.services.charging_profiles import KINDS, PURPOSES, RECURRENCIES, UNITS
from csms.core.services.commands import UnknownStation
from csms.core.services.operations import OperationError
from csms.i18n import N_, gettext
from csms.plugins import hookimpl

STATION = {"tenant": {"station_id": "station"}}
TEMPLATE = "stations/_charging_profiles.html"
PURPOSE_LABELS = {"station_max": N_("Station maximum"), "tx_default": N_("Default for transactions"),
                  "tx": N_("One transaction")}


async def _context(request: Request, station_id: str, notice: str = "", ok: bool = True,
                   reload: bool = False) -> dict[str, Any]:
    user = await current_user(request)
    try:
        listing = await get_core().charging_profiles.listing(station_id)
    except UnknownStation:
        raise NotFoundException(gettext("There is no station %(station)s.", station=station_id)) from None
    return {"cp": listing, "sid": station_id, "notice": notice, "ok": ok, "reload": reload,
            "can_operate": bool(user and user.can("operator")),
            "purposes": [(p, gettext(PURPOSE_LABELS[p])) for p in PURPOSES], "kinds": KINDS,
            "recurrencies": RECURRENCIES, "units": UNITS}


@hookimpl
@page_panel("station")
async def admin_panels(request: Request, station: dict[str, Any]) -> Markup:
    return fragment(request, TEMPLATE, **await _context(request, station["station_id"]))


async def _outcome(request: Request, station_id: str, command: Any, done: str, *,
                   reload: bool = False, **words: Any) -> Template:
    """Await ``command``; the panel comes back with its outcome, loading itself again a moment
    later with ``reload`` (the station's reports follow its answer)."""
    accepted = False

    def said(result: dict[str, Any]) -> tuple[bool, str]:
        nonlocal accepted
        accepted = result["status"] == "Accepted"
        if accepted:
            return True, gettext(done, **{**result, **words})
        if result["status"] == "NoProfiles":
            return True, gettext("The station has no matching profiles.")
        if result["status"] == "Unknown":
            return False, gettext("The station knows no matching profile (nothing cleared).")
        return False, gettext("The station answered %(status)s.", status=result["status"])

    async def again(notice: str, ok: bool) -> Template:
        return await render(request, TEMPLATE, **await _context(request, station_id, notice, ok, reload and accepted))

    return await command_outcome(request, station_id, command, said, again)


def _int(value: Any, what: str) -> int | None:
    value = (value or "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise OperationError(N_("%(what)s: %(value)s is not a number"), what=what, value=repr(value))
    return int(value)


@get("/admin/stations/{station_id:str}/charging-profiles", include_in_schema=False, opt=STATION)
async def charging_profile_panel(request: Request, station_id: str) -> Template:
    """The panel alone (HTMX reloads it after asking the station)."""
    return await render(request, TEMPLATE, **await _context(request, station_id))


@post("/admin/stations/{station_id:str}/charging-profiles/clear", include_in_schema=False, opt=STATION)
async def charging_profile_clear(request: Request, station_id: str) -> Template:
    form = await request.form()

    async def command() -> dict[str, Any]:
        return await get_core().charging_profiles.clear(
            station_id, profile_id=_int(form.get("profile_id"), gettext("Profile")),
            evse_id=_int(form.get("evse_id"), "EVSE"), purpose=form.get("purpose") or None,
            stack_level=_int(form.get("stack_level"), gettext("Stack level")), by=await actor(request))

    return await _outcome(request, station_id, command(), N_("The station cleared the profiles."))


def _periods(text: str) -> list[dict[str, Any]]:
    """Schedule periods typed one per line: seconds from the start, the limit, optionally the
    number of phases (``0 16``, ``3600 8 1``)."""
    periods = []
    for number, line in enumerate(text.strip().splitlines(), start=1):
        parts = line.replace(",", " ").split()
        if not parts:
            continue
        try:
            if len(parts) not in (2, 3):
                raise ValueError
            period: dict[str, Any] = {"start_period": int(parts[0]), "limit": float(parts[1])}
            if len(parts) == 3:
                period["number_phases"] = int(parts[2])
        except ValueError:
            raise OperationError(N_("period line %(line)s: write seconds from the start and the limit, e.g. 0 16"),
                                 line=number) from None
        periods.append(period)
    return periods


@post("/admin/stations/{station_id:str}/charging-profiles/set", include_in_schema=False, opt=STATION)
async def charging_profile_set(request: Request, station_id: str) -> Template:
    form = await request.form()

    def moment(name: str) -> Any:
        raw = (form.get(name) or "").strip()
        if not raw:
            return None
        try:
            return parse_datetime_local(raw, viewer_zone())
        except ValueError:
            raise OperationError(N_("%(what)s: %(value)s is not a date and time"), what=name, value=repr(raw)) from None

    async def command() -> dict[str, Any]:
        evse_id = _int(form.get("evse_id"), "EVSE")
        return await get_core().charging_profiles.set_profile(
            station_id, evse_id=evse_id if evse_id is not None else 0, purpose=form.get("purpose") or "",
            kind=form.get("kind") or "Absolute", recurrency=form.get("recurrency") or None,
            start_at=moment("start_at"), valid_to=moment("valid_to"), unit=form.get("unit") or "A",
            stack_level=_int(form.get("stack_level"), gettext("Stack level")) or 0,
            periods=_periods(form.get("periods") or ""),
            transaction_id=(form.get("transaction_id") or "").strip() or None, by=await actor(request))

    return await _outcome(request, station_id, command(), N_("The station accepted profile %(profile_id)s."))


@post("/admin/stations/{station_id:str}/charging-profiles/report", include_in_schema=False, opt=STATION)
async def charging_profile_report(request: Request, station_id: str) -> Template:
    return await _outcome(request, station_id, get_core().charging_profiles.request_report(
        station_id, by=await actor(request)), N_("Asked the station for its charging profiles."), reload=True)
