"""DataTransfer to a station, on the station's page: a panel (through ``admin_panels``, a default
plugin, see ``csms.plugins.DEFAULT_PLUGINS``) with a form (vendor id, message id, data as text or
as JSON) that sends it (:meth:`csms.core.services.operations.Operations.data_transfer`, as
``POST /api/v1/stations/{id}/data-transfer`` does) and shows the station's status and data."""

from __future__ import annotations

import json
from typing import Any

from litestar import Request, post
from litestar.exceptions import NotFoundException
from litestar.response import Template
from markupsafe import Markup

from csms.admin.auth import actor, current_user
from csms.admin.outcomes import command_outcome
from csms.admin.templating import fragment, page_panel, render
from csms.core.runtime import get_core
from csms.core.services.operations import OperationError
from csms.core.tables import Station
from csms.i18n import N_, gettext
from csms.jsondepth import MAX_JSON_DEPTH, json_depth_exceeds
from csms.plugins import hookimpl

STATION = {"tenant": {"station_id": "station"}}
TEMPLATE = "stations/_data_transfer.html"
MAX_DATA = 100_000  # characters of data typed into the form


async def _context(request: Request, station_id: str, notice: str = "", ok: bool = True,
                   answer: dict[str, Any] | None = None) -> dict[str, Any]:
    if not await Station.exists().where(Station.station_id == station_id):
        raise NotFoundException(gettext("There is no station %(station)s.", station=station_id))
    user = await current_user(request)
    return {"sid": station_id, "notice": notice, "ok": ok, "answer": answer,
            "can_operate": bool(user and user.can("operator"))}


@hookimpl
@page_panel("station")
async def admin_panels(request: Request, station: dict[str, Any]) -> Markup:
    return fragment(request, TEMPLATE, **await _context(request, station["station_id"]))


def _data(text: str, kind: str) -> Any:
    """The data to send: None when empty, the text as it is, or the JSON value it holds."""
    if not text:
        return None
    if len(text) > MAX_DATA:
        raise OperationError(N_("the data is longer than %(max)s characters"), max=MAX_DATA)
    if kind != "json":
        return text
    if json_depth_exceeds(text, MAX_JSON_DEPTH):
        raise OperationError(N_("the data is nested deeper than %(max)s levels"), max=MAX_JSON_DEPTH)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise OperationError(N_("the data is not JSON: %(problem)s"), problem=str(exc)) from None


@post("/admin/stations/{station_id:str}/data-transfer", include_in_schema=False, opt=STATION)
async def data_transfer_send(request: Request, station_id: str) -> Template:
    form = await request.form()
    answer: dict[str, Any] | None = None

    async def command() -> dict[str, Any]:
        vendor_id = (form.get("vendor_id") or "").strip()
        message_id = (form.get("message_id") or "").strip() or None
        if not vendor_id or len(vendor_id) > 255:
            raise OperationError(N_("give the vendor id (1 to 255 characters)"))
        if message_id is not None and len(message_id) > 50:
            raise OperationError(N_("the message id has at most 50 characters"))
        data = _data((form.get("data") or "").strip(), form.get("data_kind") or "text")
        return await get_core().operations.data_transfer(station_id, vendor_id=vendor_id, message_id=message_id,
                                                         data=data, by=await actor(request))

    def said(result: dict[str, Any]) -> tuple[bool, str]:
        nonlocal answer
        answer = result
        if result["status"] == "Accepted":
            return True, gettext("The station accepted the data transfer.")
        return False, gettext("The station answered %(status)s.", status=result["status"])

    async def again(notice: str, ok: bool) -> Template:
        return await render(request, TEMPLATE, **await _context(request, station_id, notice, ok, answer))

    return await command_outcome(request, station_id, command(), said, again)
