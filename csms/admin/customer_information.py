"""Customer information of a 2.0.1 station, on the station's page: a panel (through
``admin_panels``, a default plugin, see ``csms.plugins.DEFAULT_PLUGINS``) to ask the station to
report and/or clear what it holds about one customer (by id token or customer identifier) and
the requests with the data the station sent, assembled from its NotifyCustomerInformation
parts. OCPP 1.6 stations have no customer information and get no panel."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Template
from markupsafe import Markup

from csms.admin.auth import actor, current_user
from csms.admin.outcomes import command_outcome
from csms.admin.templating import fragment, page_panel, render
from csms.core.ocpp.outbound.v201 import TOKEN_TYPES
from csms.core.ocpp.validation import V16
from csms.core.runtime import get_core
from csms.core.services.commands import UnknownStation
from csms.core.services.operations import OperationError
from csms.i18n import N_, gettext
from csms.plugins import hookimpl

STATION = {"tenant": {"station_id": "station"}}
TEMPLATE = "stations/_customer_information.html"


async def _context(request: Request, station_id: str, notice: str = "", ok: bool = True,
                   reload: bool = False) -> dict[str, Any]:
    user = await current_user(request)
    try:
        requests = await get_core().customer_information.listing(station_id, limit=10)
    except UnknownStation:
        raise NotFoundException(gettext("There is no station %(station)s.", station=station_id)) from None
    return {"requests": requests, "sid": station_id, "notice": notice, "ok": ok, "reload": reload,
            "can_operate": bool(user and user.can("operator")), "token_types": sorted(TOKEN_TYPES)}


@hookimpl
@page_panel("station", when=lambda context: context.get("version") != V16)
async def admin_panels(request: Request, station: dict[str, Any]) -> Markup:
    return fragment(request, TEMPLATE, **await _context(request, station["station_id"]))


@get("/admin/stations/{station_id:str}/customer-information", include_in_schema=False, opt=STATION)
async def customer_information_panel(request: Request, station_id: str) -> Template:
    """The panel alone (HTMX reloads it while the station's data comes in)."""
    return await render(request, TEMPLATE, **await _context(request, station_id))


@post("/admin/stations/{station_id:str}/customer-information", include_in_schema=False, opt=STATION)
async def customer_information_request(request: Request, station_id: str) -> Template:
    form = await request.form()
    by, value = form.get("by") or "id_token", (form.get("customer") or "").strip()
    if by not in ("id_token", "customer_identifier"):
        by = "id_token"

    async def command() -> dict[str, Any]:
        if not value:
            raise OperationError(N_("name the customer: an id token or a customer identifier"))
        return await get_core().customer_information.request(
            station_id, report=bool(form.get("report")), clear=bool(form.get("clear")),
            token_type=form.get("token_type") or "ISO14443", by=await actor(request),
            id_token=value if by == "id_token" else None,
            customer_identifier=value if by == "customer_identifier" else None)

    def words(result: dict[str, Any]) -> tuple[bool, str]:
        if result["status"] == "Accepted":
            return True, gettext("Request %(request)s: %(outcome)s.", request=result["request_id"],
                                 outcome=gettext(result["words"]))
        return False, gettext("The station answered %(status)s: %(reason)s.", status=result["status"],
                              reason=gettext(result["words"]))

    async def again(notice: str, ok: bool) -> Template:
        return await render(request, TEMPLATE, **await _context(request, station_id, notice, ok, reload=ok))

    return await command_outcome(request, station_id, command(), words, again)
