"""A driver's personal data for the operator (GDPR): the same JSON export the driver downloads
from the portal, and erasure, for a request that reached the operator by mail or phone.

Exporting needs the operator role and erasing the admin role; both stay inside the caller's
organizations (the tenant rule of ``pk``) and both are audited.
"""

from __future__ import annotations

import json
from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Template

from csms.admin.templating import render
from csms.api.audit import actor_of, audited
from csms.core.services import driver_data
from csms.core.tables import ChargingSession, Driver, IdToken
from csms.core.timeutil import utcnow
from csms.i18n import gettext

EXPORT = {"tenant": {"pk": "driver"}, "role": "operator"}
ERASE = {"tenant": {"pk": "driver"}, "role": "admin"}


def export_download(data: dict[str, Any], filename: str) -> Response:
    """A data export as a JSON file the browser saves, never cached on the way."""
    return Response(json.dumps(data, indent=2, ensure_ascii=False).encode(), media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "Cache-Control": "no-store"})


async def _driver(pk: int) -> dict[str, Any]:
    row = await Driver.select(Driver.id, Driver.name, Driver.email, Driver.organization).where(Driver.id == pk).first()
    if row is None:
        raise NotFoundException(gettext("There is no such driver."))
    return row


@get("/admin/drivers/{pk:int}/export", include_in_schema=False, opt=EXPORT)
async def driver_export(request: Request, pk: int) -> Response:
    await _driver(pk)
    data = await driver_data.export(pk)
    await audited(request, "export", "driver", pk, summary="personal data exported by the operator")
    return export_download(data, f"driver-{pk}-data-{utcnow().date().isoformat()}.json")


async def _erase_page(request: Request, pk: int, *, status_code: int = 200, error: str = "",
                      done: driver_data.Erasure | None = None) -> Template:
    return await render(
        request, "cards/driver_erase.html", status_code=status_code, title=gettext("Erase a driver's personal data"),
        d=await _driver(pk), error=error, done=done, erased=await driver_data.is_erased(pk),
        running=await driver_data.running_session(pk),
        cards=await IdToken.count().where(IdToken.driver == pk),
        sessions=await ChargingSession.count().where(ChargingSession.driver == pk))


@get("/admin/drivers/{pk:int}/erase", include_in_schema=False, opt=ERASE)
async def driver_erase_page(request: Request, pk: int) -> Template:
    return await _erase_page(request, pk)


@post("/admin/drivers/{pk:int}/erase", include_in_schema=False, opt=ERASE)
async def driver_erase(request: Request, pk: int) -> Template:
    await _driver(pk)
    if (await request.form()).get("confirm") != "yes":
        return await _erase_page(request, pk, status_code=422, error=gettext("Tick the box to confirm the erasure."))
    actor, organization = await actor_of(request)
    try:
        done = await driver_data.erase(pk, actor=actor, actor_organization=organization)
    except driver_data.DriverBusy as exc:
        return await _erase_page(request, pk, status_code=409, error=str(exc))
    return await _erase_page(request, pk, done=done)
