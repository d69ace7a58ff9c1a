"""What became of clearing erased drivers' data on stations (N10), over REST: one row per
station and card (``station_data_clear``), with its status (``Pending`` until sent; the
station's CustomerInformation answer; ``LocalList`` for 1.6, where the blocked card in the local
list clears it; ``Timeout``, ``NotSupported``, ``NotSent``, ``Error``), the words of the outcome,
the attempts and when it was done. A caller sees the rows of the stations it sees."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get

from csms.api.auth import require
from csms.api.crud import jsonable, page_params
from csms.api.tenancy import SCOPED, tenant_scope, visible_station_ids
from csms.core.services import station_data_clear


class StationDataClearController(Controller):
    path = "/"
    tags = ["stations"]

    @get("/station-data-clears", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def station_data_clears(self, request: Request, station: str | None = None, driver_id: int | None = None,
                                  clear_status: str | None = None, pending: bool | None = None, limit: int = 100,
                                  offset: int = 0) -> dict[str, Any]:
        """Clearing requests, newest first; filters: ``station``, ``driver_id``, ``clear_status``
        (``status`` is reserved by Litestar), ``pending`` (not done yet)."""
        limit, offset = page_params(limit, offset)
        rows, total = await station_data_clear.listing(
            station_ids=await visible_station_ids(await tenant_scope(request)), station_id=station,
            driver_id=driver_id, status=clear_status, pending=pending, limit=limit, offset=offset)
        return {"items": [jsonable(r) for r in rows], "total": total, "limit": limit, "offset": offset}

    @get("/stations/{station_id:str}/data-clears", guards=[require("viewer")],
         opt={"tenant": {"station_id": "station"}})
    async def station_data_clears_of(self, station_id: str, clear_status: str | None = None,
                                     pending: bool | None = None, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """The clearing requests of one station, newest first."""
        limit, offset = page_params(limit, offset)
        rows, total = await station_data_clear.listing(station_ids=None, station_id=station_id, status=clear_status,
                                                       pending=pending, limit=limit, offset=offset)
        return {"items": [jsonable(r) for r in rows], "total": total, "limit": limit, "offset": offset}
