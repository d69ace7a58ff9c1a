"""A station's local authorization list over REST: its state, and "send the full list now"."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get, post

from csms.api.audit import audited
from csms.api.auth import caller, require
from csms.api.stations import run_command
from csms.core.runtime import get_core


class LocalListSync(msgspec.Struct, forbid_unknown_fields=True):
    full: bool = True  # False: only the changes since the version the station acknowledged


class LocalListController(Controller):
    path = "/stations/{station_id:str}/local-list"
    tags = ["stations"]
    opt = {"tenant": {"station_id": "station"}}

    @get("/", guards=[require("viewer")])
    async def local_list(self, station_id: str) -> dict[str, Any]:
        """The list the station acknowledged (version, entries, content hash), whether it supports
        lists, the last synchronisation's result and time, and how many changes wait to be sent."""
        return await run_command(get_core().local_lists.state(station_id))

    @post("/sync", guards=[require("operator")])
    async def sync(self, request: Request, station_id: str, data: LocalListSync | None = None) -> dict[str, Any]:
        """Synchronise now: the full list (default), or only what changed; answers the new state
        (409 when the station is offline; what the station answered is in ``last_result``)."""
        full = data.full if data is not None else True
        state = await run_command(get_core().local_lists.sync(station_id, full=full, check=True,
                                                              by=caller(request)))
        await audited(request, "command", "station", station_id,
                      after={"action": "local_list_sync", "full": full, "version": state["version"],
                             "result": state["last_result"]},
                      summary=f"local list {'full' if full else 'differential'} sync: {state['last_result']}")
        return state
