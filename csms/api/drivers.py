"""A driver's personal data over REST (GDPR): ``GET /drivers/{id}/export`` and
``POST /drivers/{id}/erase``, and the rule for ``DELETE /drivers/{id}``.

The routes join the drivers' CRUD collection (:func:`csms.api.crud.crud_controller` mixes
:class:`DriverDataRoutes` in) and keep its tenant rule: a driver of an organization the caller
does not see is a 404, as one that does not exist. Export needs the operator role and erase the
admin role, as in the admin; both call :mod:`csms.core.services.driver_data` and are audited with
the API key as actor.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import HTTPException, NotFoundException

from csms.api.audit import actor_of, audited
from csms.api.auth import require
from csms.core.services import driver_data

TENANT = {"tenant": {"item_id": "driver"}}

EXPORT_DESCRIPTION = (
    "The driver's personal data as JSON, the same document the admin's *Export* and the driver portal's "
    "*Download my data* give (`format` `csms-driver-data/1`): the driver, the portal account (never its "
    "secrets), cards, sessions with energy and cost, and what plugins hold about the driver under `plugins` "
    "(the `driver_data_export` hook). Operator role; audited as `export` of the driver.")
ERASE_DESCRIPTION = (
    "Anonymise the driver: name, e-mail, phone and notes go (also from earlier audit entries), the portal "
    "account and its sign-ins go, every card is blocked and unlinked; sessions stay with the anonymised "
    "driver, so energy and cost totals do not change. `station_clears` counts the station and card pairs "
    "queued to clear the card's data on the 2.0.1/2.1 stations that may hold it (CustomerInformation "
    "with `clear`, sent in the background, to offline stations when they reconnect; audited as "
    "`clear_customer_data` of the driver with each station's answer). Plugins erase their own copies (the `driver_erased` "
    "hook; `failed_plugins` names any that failed: erase again to retry them). Admin role. While one of the "
    "driver's sessions runs: 409, nothing changed. Idempotent: erasing an erased driver changes nothing, "
    "answers `already_erased: true` and asks the plugins again. Audited as `erase` with the API key as actor.")


def _not_found(item_id: int) -> NotFoundException:
    return NotFoundException(f"no driver with id {item_id}")


class DriverDataRoutes:
    """The GDPR routes of ``/drivers`` (mixed into the drivers' CRUD controller)."""

    @get("/{item_id:int}/export", guards=[require("operator")], opt=TENANT,
         summary="Export everything held about a driver (GDPR)", description=EXPORT_DESCRIPTION)
    async def export_driver(self, request: Request, item_id: int) -> Response[dict[str, Any]]:
        """See :data:`EXPORT_DESCRIPTION`."""
        try:
            data = await driver_data.export(item_id)
        except driver_data.UnknownDriver:
            raise _not_found(item_id) from None
        await audited(request, "export", "driver", item_id, summary="personal data exported over the REST API")
        return Response(data, headers={"Cache-Control": "no-store"})

    @post("/{item_id:int}/erase", guards=[require("admin")], opt=TENANT, status_code=200,
          summary="Erase a driver's personal data (GDPR)", description=ERASE_DESCRIPTION)
    async def erase_driver(self, request: Request, item_id: int) -> dict[str, Any]:
        """See :data:`ERASE_DESCRIPTION`."""
        actor, organization = await actor_of(request)
        try:
            done = await driver_data.erase(item_id, actor=actor, actor_organization=organization)
        except driver_data.UnknownDriver:
            raise _not_found(item_id) from None
        except driver_data.DriverBusy as exc:
            running = await driver_data.running_session(item_id)
            raise HTTPException(status_code=409, detail=str(exc), extra={
                "error": "DriverBusy", "session": running["id"] if running else None,
                "station_id": running["station_id"] if running else None}) from None
        return {"driver_id": done.driver_id, "already_erased": done.already, "cards_blocked": done.cards,
                "sessions_kept": done.sessions_kept, "station_clears": done.station_clears,
                "failed_plugins": done.failed_plugins}


def driver_has_sessions(exc: driver_data.DriverHasSessions) -> HTTPException:
    """``DELETE /drivers/{id}`` of a driver with sessions: 409 pointing to erasure (see
    :func:`csms.core.services.driver_data.delete`)."""
    erase = f"/api/v1/drivers/{exc.driver_id}/erase"
    return HTTPException(status_code=409, detail=f"{exc} Use POST {erase}.", extra={
        "error": "DriverHasSessions", "sessions": exc.sessions, "erase": erase})
