"""Rotating stations' Basic-auth passwords (security profiles 1 and 2), one station or many.

Each station gets a new random password through its version's command
(:meth:`csms.core.services.operations.Operations.rotate_password`); its hash replaces the stored
one only when the station accepts. The password is never returned: only the station needs it.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, post
from litestar.exceptions import ValidationException

from csms.api.audit import audited
from csms.api.auth import caller, require
from csms.api.bounds import Int32
from csms.api.stations import run_command, station_row
from csms.api.tenancy import SCOPED, descendants, organization_tree, restrict, tenant_scope
from csms.core.runtime import get_core
from csms.core.tables import Station


class RotateMany(msgspec.Struct, forbid_unknown_fields=True):
    """Which stations: those named, those of a site, those of an organization (and the
    organizations below it); the filters given all apply."""

    station_ids: list[str] | None = None
    site: Int32 | None = None
    organization: Int32 | None = None


class StationPasswordController(Controller):
    path = "/stations"
    tags = ["stations"]

    @post("/{station_id:str}/rotate-password", guards=[require("admin")],
          opt={"tenant": {"station_id": "station"}})
    async def rotate_one(self, request: Request, station_id: str) -> dict[str, Any]:
        """Send the station a new random password; its hash is stored once the station accepts.
        Offline: 409; no answer: 504."""
        await station_row(station_id)
        try:
            result = await run_command(get_core().operations.rotate_password(station_id, by=caller(request)))
        except Exception as exc:
            await audited(request, "update", "station", station_id,
                          summary=f"password rotation failed: {getattr(exc, 'detail', exc)}"[:255])
            raise
        await audited(request, "update", "station", station_id, summary=f"password rotation: {result['status']}")
        return {"station_id": station_id, "status": result["status"],
                "password_changed": result["status"] in ("Accepted", "RebootRequired")}

    @post("/rotate-password", guards=[require("admin")], opt={"tenant": SCOPED})
    async def rotate_many(self, request: Request, data: RotateMany) -> dict[str, Any]:
        """Rotate the passwords of many stations: ``station_ids``, a ``site`` or an
        ``organization`` (with its sub-organizations). The answer has each station's outcome:
        the station's answer (Accepted, RebootRequired, Rejected, ...), Offline, Timeout, Error,
        or NotFound (a station id the caller does not see)."""
        if data.station_ids is None and data.site is None and data.organization is None:
            raise ValidationException("name station_ids, a site or an organization")
        query = restrict(Station.select(Station.station_id), Station.organization, await tenant_scope(request))
        if data.station_ids is not None:
            query = query.where(Station.station_id.is_in(data.station_ids or [""]))
        if data.site is not None:
            query = query.where(Station.site == data.site)
        if data.organization is not None:
            tree = descendants(await organization_tree(), data.organization)
            query = query.where(Station.organization.is_in(sorted(tree)))
        visible = [r["station_id"] for r in await query.order_by(Station.station_id)]
        outcome = await get_core().operations.rotate_passwords(visible, by=caller(request))
        for station_id, status in outcome.items():
            await audited(request, "update", "station", station_id, summary=f"password rotation: {status}")
        missing = [s for s in dict.fromkeys(data.station_ids or []) if s not in outcome]
        results = [{"station_id": s, "status": status} for s, status in outcome.items()]
        results += [{"station_id": s, "status": "NotFound"} for s in missing]
        counts: dict[str, int] = {}
        for r in results:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        return {"results": results, "counts": counts}
