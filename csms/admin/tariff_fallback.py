"""The texts a 2.0.1 or 2.1 station shows when it cannot reach the CSMS (I04, I05), on the
station's page: a panel (through ``admin_panels``, a default plugin, see
``csms.plugins.DEFAULT_PLUGINS``) with what the station holds as far as the CSMS knows
(``TariffCostCtrlr.TariffFallbackMessage`` and ``TotalCostFallbackMessage`` among its stored
variables) and a form that sends them now (:meth:`TariffFallbackService.send
<csms.core.services.tariff_fallback.TariffFallbackService.send>`, as ``POST
/api/v1/stations/{id}/tariffs/fallback`` does): the operator's texts, or, left empty, the tariff
text of the pricing plugin and the configured total-cost text."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.exceptions import NotFoundException
from litestar.response import Template
from markupsafe import Markup

from csms.admin.auth import actor, current_user
from csms.admin.outcomes import command_outcome
from csms.admin.templating import fragment, page_panel, render
from csms.core.ocpp.validation import V21, V201
from csms.core.runtime import get_core
from csms.core.services.tariff_fallback import COMPONENT, VARIABLES
from csms.core.services.tariff_messages import MAX_CONTENT
from csms.core.tables import DeviceVariable, Station
from csms.i18n import gettext
from csms.plugins import hookimpl

STATION = {"tenant": {"station_id": "station"}}
TEMPLATE = "stations/_tariff_fallback.html"


async def _context(request: Request, station_id: str, notice: str = "", ok: bool = True,
                   results: dict[str, Any] | None = None) -> dict[str, Any]:
    if not await Station.exists().where(Station.station_id == station_id):
        raise NotFoundException(gettext("There is no station %(station)s.", station=station_id))
    user = await current_user(request)
    rows = await DeviceVariable.select(DeviceVariable.variable, DeviceVariable.value).where(
        (DeviceVariable.station.station_id == station_id) & (DeviceVariable.component == COMPONENT)
        & DeviceVariable.variable.is_in(list(VARIABLES.values())) & (DeviceVariable.attribute_type == "Actual"))
    held = {r["variable"]: r["value"] for r in rows}
    return {"sid": station_id, "notice": notice, "ok": ok, "results": results, "max": MAX_CONTENT,
            "held": {kind: held.get(variable) for kind, variable in VARIABLES.items()},
            "can_operate": bool(user and user.can("operator"))}


@hookimpl
@page_panel("station", when=lambda context: context.get("version") in (V201, V21))
async def admin_panels(request: Request, station: dict[str, Any]) -> Markup:
    return fragment(request, TEMPLATE, **await _context(request, station["station_id"]))


@post("/admin/stations/{station_id:str}/tariff-fallback", include_in_schema=False, opt=STATION)
async def tariff_fallback_send(request: Request, station_id: str) -> Template:
    form = await request.form()
    results: dict[str, Any] | None = None

    async def command() -> dict[str, Any]:
        texts = {k: (form.get(k) or "").strip() or None for k in ("tariff_message", "total_cost_message")}
        return {"results": await get_core().tariff_fallback.send(
            station_id, tariff=texts["tariff_message"], total_cost=texts["total_cost_message"],
            by=await actor(request))}

    def said(outcome: dict[str, Any]) -> tuple[bool, str]:
        nonlocal results
        results = outcome["results"]
        refused = [r["variable"] for r in results.values() if r["status"] != "Accepted"]
        if refused:
            return False, gettext("The station did not take %(variables)s.", variables=", ".join(refused))
        return True, gettext("The station took the texts.")

    async def again(notice: str, ok: bool) -> Template:
        return await render(request, TEMPLATE, **await _context(request, station_id, notice, ok, results))

    return await command_outcome(request, station_id, command(), said, again)
