"""Messages on a station's display over REST (OCPP 2.0.1; a 1.6 station answers 409
``NotSupported``): what the CSMS knows of them, set one, clear one, ask the station for all."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, post

from csms.api.auth import caller, require
from csms.api.bounds import Int32
from csms.api.crud import jsonable
from csms.api.stations import run_command
from csms.core.runtime import get_core


class DisplayMessageBody(msgspec.Struct, forbid_unknown_fields=True):
    content: str
    priority: str = "NormalCycle"  # AlwaysFront, InFront, NormalCycle
    format: str = "UTF8"  # UTF8, ASCII, HTML, URI
    language: str = ""
    state: str | None = None  # shown only while the station is Charging, Faulted, Idle or Unavailable
    evse_id: Int32 | None = None  # the display of this EVSE; none: the station's
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    transaction_id: str | None = None  # shown only during this transaction
    message_id: Int32 | None = None  # none: the next free id


class DisplayMessageFilter(msgspec.Struct, forbid_unknown_fields=True):
    ids: list[Int32] | None = None  # only these message ids
    priority: str | None = None  # only AlwaysFront, InFront or NormalCycle messages
    state: str | None = None  # only messages shown in Charging, Faulted, Idle or Unavailable


class DisplayMessageController(Controller):
    path = "/stations/{station_id:str}/display-messages"
    tags = ["stations"]
    opt = {"tenant": {"station_id": "station"}}

    @get("/", guards=[require("viewer")])
    async def display_messages(self, station_id: str) -> dict[str, Any]:
        """The messages the station accepted from the CSMS or reported (NotifyDisplayMessages)."""
        listing = await run_command(get_core().display_messages.listing(station_id))
        return {**listing, "items": [jsonable(r) for r in listing["items"]]}

    @post("/", guards=[require("operator")])
    async def set_display_message(self, request: Request, station_id: str,
                                  data: DisplayMessageBody) -> dict[str, Any]:
        """SetDisplayMessage; the station's answer, and the message id used."""
        return await run_command(get_core().display_messages.set(
            station_id, by=caller(request), **msgspec.structs.asdict(data)))

    @delete("/{message_id:int}", guards=[require("operator")], status_code=200)
    async def clear_display_message(self, request: Request, station_id: str, message_id: int) -> dict[str, Any]:
        """ClearDisplayMessage; the station's answer."""
        return await run_command(get_core().display_messages.clear(station_id, message_id=message_id,
                                                                   by=caller(request)))

    @post("/refresh", guards=[require("operator")])
    async def refresh_display_messages(self, request: Request, station_id: str,
                                       data: DisplayMessageFilter | None = None) -> dict[str, Any]:
        """GetDisplayMessages for all messages, or (body) only those with the given ids, priority
        and/or state: the stored ones that match are replaced by what the station reports
        (NotifyDisplayMessages, right after its answer)."""
        query = data or DisplayMessageFilter()
        return await run_command(get_core().display_messages.refresh(
            station_id, ids=query.ids, priority=query.priority, state=query.state, by=caller(request)))
