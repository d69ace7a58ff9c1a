"""Fleet cards with a daily session limit: an example of a third-party CSMS plugin.

Cards whose id starts with the configured prefix belong to a fleet: they may charge at any
station, but start at most ``sessions_per_day`` sessions per UTC day. Everything comes from the
public plugin API (``csms.plugin_api``); nothing here reaches into the core's modules.
"""

from __future__ import annotations

from datetime import datetime, time, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from litestar import Request, Router, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from csms.plugin_api import (
    ADMIN_EXCEPTION_HANDLERS,
    AuthorizationResult,
    ChargingSession,
    CsmsSettings,
    N_,
    NavItem,
    gettext,
    ngettext,
    hookimpl,
    render,
    require,
    utcnow,
)
from csms_fleet_limits.tables import FleetCardLimit


class FleetLimitsSettings(CsmsSettings):
    """``CSMS_FLEET_LIMITS_*`` variables or the ``[fleet_limits]`` table of the config file."""

    model_config = SettingsConfigDict(env_prefix="CSMS_FLEET_LIMITS_", extra="ignore")

    prefix: str = Field("FLEET-", description="Cards whose id starts with this belong to the fleet.")
    sessions_per_day: int = Field(3, ge=0, description="Sessions a fleet card may start per UTC day.")


SETTINGS_CLASSES = (FleetLimitsSettings,)  # listed in `csms config` and the settings registry


@lru_cache(maxsize=1)
def fleet_settings() -> FleetLimitsSettings:
    return FleetLimitsSettings()


def _midnight() -> datetime:
    return datetime.combine(utcnow().date(), time(0), tzinfo=timezone.utc)


async def limit_of(id_token: str) -> int:
    """The card's own limit (the plugin's table), else the default from the settings."""
    row = await FleetCardLimit.select(FleetCardLimit.sessions_per_day).where(
        FleetCardLimit.id_token == id_token).first()
    return row["sessions_per_day"] if row else fleet_settings().sessions_per_day


async def set_limit(id_token: str, sessions_per_day: int, note: str = "") -> None:
    values = {FleetCardLimit.sessions_per_day: sessions_per_day, FleetCardLimit.note: note,
              FleetCardLimit.updated_at: utcnow()}
    if await FleetCardLimit.exists().where(FleetCardLimit.id_token == id_token):
        await FleetCardLimit.update(values).where(FleetCardLimit.id_token == id_token)
    else:
        await FleetCardLimit.insert(FleetCardLimit(id_token=id_token, sessions_per_day=sessions_per_day, note=note))


async def sessions_today(id_token: str) -> int:
    return await ChargingSession.count().where(
        (ChargingSession.id_token == id_token) & (ChargingSession.started_at >= _midnight()))


async def usage_today() -> list[dict[str, Any]]:
    """Fleet cards that charged today, with their session count and energy."""
    rows = await ChargingSession.select(ChargingSession.id_token, ChargingSession.energy_wh).where(
        ChargingSession.id_token.like(fleet_settings().prefix + "%") & (ChargingSession.started_at >= _midnight()))
    usage: dict[str, dict[str, Any]] = {}
    for row in rows:
        if not row["id_token"].startswith(fleet_settings().prefix):  # LIKE treats % and _ as patterns
            continue
        entry = usage.setdefault(row["id_token"], {"id_token": row["id_token"], "sessions": 0, "energy_kwh": 0.0})
        entry["sessions"] += 1
        entry["energy_kwh"] += (row["energy_wh"] or 0) / 1000
    own = {r["id_token"]: r["sessions_per_day"] for r in await FleetCardLimit.select(
        FleetCardLimit.id_token, FleetCardLimit.sessions_per_day).where(FleetCardLimit.id_token.is_in(list(usage)))} \
        if usage else {}
    default = fleet_settings().sessions_per_day
    return [{**u, "energy_kwh": round(u["energy_kwh"], 3), "limit": own.get(u["id_token"], default),
             "left": max(own.get(u["id_token"], default) - u["sessions"], 0)}
            for u in sorted(usage.values(), key=lambda u: u["id_token"])]


# -- hooks ------------------------------------------------------------------------------------------


@hookimpl
def authorize_token(id_token, purpose):
    """Fleet cards only; any other card is left to the next plugin (the core's card list)."""
    if not id_token.startswith(fleet_settings().prefix):
        return None
    if purpose == "stop":
        return AuthorizationResult("Accepted", group_id="FLEET", source="fleet_limits")

    async def check() -> AuthorizationResult:
        allowed = await sessions_today(id_token) < await limit_of(id_token)
        return AuthorizationResult("Accepted" if allowed else "NotAtThisTime", group_id="FLEET",
                                   source="fleet_limits")

    return check


@get("/admin/fleet-limits")
async def usage_page(request: Request, error: str = "") -> Template:
    # No guard here: a plugin's admin route requires a login (viewer for GET, operator for POST)
    # and a CSRF token for forms unless the plugin declares it public.
    cards = await FleetCardLimit.select().order_by(FleetCardLimit.id_token)
    # the saved limit's notice: named in the redirect (?m=saved&card=...&limit=...), worded here
    # in the viewer's language
    query = request.query_params
    notice = ngettext("%(card)s may start %(num)s session a day.", "%(card)s may start %(num)s sessions a day.",
                      int(query["limit"]), card=query.get("card", "")) \
        if query.get("m") == "saved" and query.get("limit", "").isdigit() else ""
    return await render(request, "fleet_limits/usage.html", title=gettext("Fleet limits"), usage=await usage_today(),
                        cards=cards, limit=fleet_settings().sessions_per_day, prefix=fleet_settings().prefix,
                        error=error, notice=notice)


@post("/admin/fleet-limits/cards")
async def card_limit_save(data: dict[str, str] = Body(media_type=RequestEncodingType.URL_ENCODED)) -> Redirect:
    id_token = data.get("id_token", "").strip()
    limit = data.get("sessions_per_day", "").strip()
    if not id_token.startswith(fleet_settings().prefix) or len(id_token) > 255:
        return Redirect("/admin/fleet-limits", query_params={"error": gettext(
            "A fleet card's id starts with %(prefix)s.", prefix=fleet_settings().prefix)})
    if not limit.isdigit() or int(limit) > 1000:
        return Redirect("/admin/fleet-limits", query_params={"error": gettext("The limit is a whole number from 0 to 1000.")})
    await set_limit(id_token, int(limit), data.get("note", "").strip()[:200])
    return Redirect("/admin/fleet-limits", query_params={"m": "saved", "card": id_token, "limit": limit})


@get("/api/v1/fleet-limits/usage", guards=[require("viewer")])
async def usage_api() -> dict[str, Any]:
    return {"limit": fleet_settings().sessions_per_day, "prefix": fleet_settings().prefix, "cards": await usage_today()}


@hookimpl
def register_routes(settings):
    return [Router(path="/", route_handlers=[usage_page, card_limit_save], exception_handlers=ADMIN_EXCEPTION_HANDLERS,
                   include_in_schema=False),
            usage_api]


@hookimpl
def piccolo_apps():
    return ["csms_fleet_limits.piccolo_app"]


@hookimpl
def template_dirs():
    return [str(Path(__file__).parent / "templates")]


@hookimpl
def locale_dirs():
    return [str(Path(__file__).parent / "locale")]


@hookimpl
def admin_nav(request):
    return [NavItem(N_("Fleet limits"), "/admin/fleet-limits", order=90)]
