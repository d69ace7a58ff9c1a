"""Messages on a station's display (OCPP 2.0.1 SetDisplayMessage, GetDisplayMessages with the
station's NotifyDisplayMessages, ClearDisplayMessage; OCPP 1.6 has no display messages).

The CSMS keeps what it knows of each station's messages in ``display_message``: a message the
station accepted from SetDisplayMessage, and every message the station reports. "Refresh" asks
the station for all its messages: the stored ones are forgotten first, so the list afterwards is
exactly what the station reported (empty when it has none: it answers ``Unknown`` and reports
nothing); this needs no in-memory state, so a report reaching another node works the same.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from piccolo.columns.combination import Combinable
from piccolo.query.functions.aggregate import Max

from csms.core.ocpp.outbound import StationCalls
from csms.core.services.operations import OperationError, feature_state, known_station, live_calls_with
from csms.core.tables import DisplayMessage
from csms.core.timeutil import ocpp_ts, parse_ts, utcnow
from csms.i18n import N_

if TYPE_CHECKING:
    from csms.core.services.commands import CommandService
    from csms.core.services.stations import StationState

PRIORITIES = ("AlwaysFront", "InFront", "NormalCycle")
STATES = ("Charging", "Faulted", "Idle", "Unavailable")
MAX_FILTER_IDS = 100  # ids asked for in one GetDisplayMessages
FORMATS = ("UTF8", "ASCII", "HTML", "URI")
MAX_CONTENT = 512  # MessageContentType.content
MAX_MESSAGE_ID = 2**31 - 1


def message_info(*, message_id: int, content: str, priority: str, format: str = "UTF8", language: str = "",
                 state: str | None = None, evse_id: int | None = None, starts_at: datetime | None = None,
                 ends_at: datetime | None = None, transaction_id: str | None = None) -> dict[str, Any]:
    """A 2.0.1 MessageInfo; ``OperationError`` for what the schema or the station would refuse."""
    if not 0 <= message_id <= MAX_MESSAGE_ID:
        raise OperationError(N_("message_id must be between 0 and %(maximum)s"), maximum=MAX_MESSAGE_ID)
    if not content or len(content) > MAX_CONTENT:
        raise OperationError(N_("content must be 1 to %(maximum)s characters"), maximum=MAX_CONTENT)
    if priority not in PRIORITIES:
        raise OperationError(N_("priority must be one of %(priorities)s"), priorities=", ".join(PRIORITIES))
    if format not in FORMATS:
        raise OperationError(N_("format must be one of %(formats)s"), formats=", ".join(FORMATS))
    if format == "ASCII" and not content.isascii():
        raise OperationError(N_("ASCII content must be ASCII"))
    if len(language) > 8:
        raise OperationError(N_("language is an RFC 5646 tag of at most 8 characters"))
    if state is not None and state not in STATES:
        raise OperationError(N_("state must be one of %(states)s"), states=", ".join(STATES))
    if evse_id is not None and evse_id < 1:
        raise OperationError(N_("evse_id must be 1 or more (none: the station's main display)"))
    if starts_at and ends_at and ends_at <= starts_at:
        raise OperationError(N_("ends_at must be after starts_at"))
    if transaction_id is not None and not 1 <= len(transaction_id) <= 36:
        raise OperationError(N_("transaction_id must be 1 to 36 characters"))
    text: dict[str, Any] = {"format": format, "content": content}
    if language:
        text["language"] = language
    info: dict[str, Any] = {"id": message_id, "priority": priority, "message": text}
    if state:
        info["state"] = state
    if starts_at:
        info["startDateTime"] = ocpp_ts(starts_at)
    if ends_at:
        info["endDateTime"] = ocpp_ts(ends_at)
    if transaction_id:
        info["transactionId"] = transaction_id
    if evse_id:
        info["display"] = {"name": "Display", "evse": {"id": evse_id}}
    return info


def _columns(info: dict[str, Any]) -> dict[Any, Any]:
    text = info.get("message") or {}
    evse = (info.get("display") or {}).get("evse") or {}
    return {
        DisplayMessage.priority: info.get("priority", "NormalCycle"), DisplayMessage.state: info.get("state"),
        DisplayMessage.content: text.get("content", ""), DisplayMessage.format: text.get("format", "UTF8"),
        DisplayMessage.language: text.get("language", ""), DisplayMessage.evse_id: evse.get("id"),
        DisplayMessage.starts_at: parse_ts(info.get("startDateTime")),
        DisplayMessage.ends_at: parse_ts(info.get("endDateTime")),
        DisplayMessage.transaction_id: info.get("transactionId"), DisplayMessage.info: info,
        DisplayMessage.updated_at: utcnow(),
    }


class DisplayMessageService:
    def __init__(self, commands: CommandService) -> None:
        self.commands = commands

    async def _connected(self, station_id: str) -> tuple[int, StationCalls]:
        """The station's pk and outbound adapter when it is connected with a version that has
        display messages (2.0.1); 1.6 is ``NotSupported``."""
        row = await known_station(station_id)
        return row["id"], live_calls_with(self.commands, station_id, "supports_display_messages",
                                          "display messages (OCPP 2.0.1 has)")

    async def listing(self, station_id: str) -> dict[str, Any]:
        """The station's messages as the CSMS knows them, by message id; ``supported`` is False
        for a 1.6 station (None while its version is not known)."""
        row = await known_station(station_id)
        version = self.commands.version_of(station_id) or row["ocpp_version"] or None
        rows = await DisplayMessage.select(*DisplayMessage.all_columns(exclude=[DisplayMessage.station])).where(
            DisplayMessage.station == row["id"]).order_by(DisplayMessage.message_id).output(load_json=True)
        return {"station_id": station_id, "ocpp_version": version,
                "supported": feature_state(version, "supports_display_messages"), "items": rows}

    async def _store(self, station_pk: int, info: dict[str, Any], *, source: str) -> None:
        values = _columns(info)
        where = (DisplayMessage.station == station_pk) & (DisplayMessage.message_id == info["id"])
        if await DisplayMessage.exists().where(where):
            await DisplayMessage.update(values).where(where)
        else:
            await DisplayMessage.insert(DisplayMessage(station=station_pk, message_id=info["id"], source=source,
                                                       **{c._meta.name: v for c, v in values.items()}))

    async def set(self, station_id: str, *, content: str, priority: str = "NormalCycle", format: str = "UTF8",
                  language: str = "", state: str | None = None, evse_id: int | None = None,
                  starts_at: datetime | None = None, ends_at: datetime | None = None,
                  transaction_id: str | None = None, message_id: int | None = None, by: str = "") -> dict[str, Any]:
        """SetDisplayMessage; a message the station accepts is stored. Without ``message_id`` the
        next id after the highest one known for the station is used."""
        pk, calls = await self._connected(station_id)
        if message_id is None:
            top = await DisplayMessage.select(Max(DisplayMessage.message_id).as_alias("top")).where(
                DisplayMessage.station == pk).first()
            message_id = (top["top"] or 0) + 1 if top else 1
        info = message_info(message_id=message_id, content=content, priority=priority, format=format,
                            language=language, state=state, evse_id=evse_id, starts_at=starts_at, ends_at=ends_at,
                            transaction_id=transaction_id)
        call = calls.set_display_message(message=info)
        response = await self.commands.send(station_id, call.action, call.payload, requested_by=by)
        if response.get("status") == "Accepted":
            await self._store(pk, info, source="csms")
        return {**call.outcome(response), "message_id": message_id}

    async def clear(self, station_id: str, *, message_id: int, by: str = "") -> dict[str, Any]:
        """ClearDisplayMessage; the stored message is forgotten when the station cleared it or
        does not know it."""
        pk, calls = await self._connected(station_id)
        call = calls.clear_display_message(message_id=message_id)
        response = await self.commands.send(station_id, call.action, call.payload, requested_by=by)
        if response.get("status") in ("Accepted", "Unknown"):
            await DisplayMessage.delete().where((DisplayMessage.station == pk)
                                                & (DisplayMessage.message_id == message_id))
        return call.outcome(response)

    async def refresh(self, station_id: str, *, ids: list[int] | None = None, priority: str | None = None,
                      state: str | None = None, by: str = "") -> dict[str, Any]:
        """GetDisplayMessages for the station's messages (O03), or only those with the given ids,
        priority and/or state (O04); they arrive in NotifyDisplayMessages and replace the stored
        ones that match the same filter (the station answering Unknown: it has none of them)."""
        if ids is not None and not (1 <= len(ids) <= MAX_FILTER_IDS and all(0 <= i <= MAX_MESSAGE_ID for i in ids)):
            raise OperationError(N_("ids must be 1 to %(count)s message ids between 0 and %(maximum)s"),
                                 count=MAX_FILTER_IDS, maximum=MAX_MESSAGE_ID)
        if priority is not None and priority not in PRIORITIES:
            raise OperationError(N_("priority must be one of %(priorities)s"), priorities=", ".join(PRIORITIES))
        if state is not None and state not in STATES:
            raise OperationError(N_("state must be one of %(states)s"), states=", ".join(STATES))
        pk, calls = await self._connected(station_id)
        call = calls.get_display_messages(ids=ids, priority=priority, state=state)
        replaced: Combinable = DisplayMessage.station == pk
        if ids is not None:
            replaced = replaced & DisplayMessage.message_id.is_in(ids)
        if priority is not None:
            replaced = replaced & (DisplayMessage.priority == priority)
        if state is not None:
            replaced = replaced & (DisplayMessage.state == state)
        await DisplayMessage.delete().where(replaced)
        return call.outcome(await self.commands.send(station_id, call.action, call.payload, requested_by=by))

    async def report(self, state: StationState, messages: list[dict[str, Any]]) -> None:
        """A station's NotifyDisplayMessages: each message stored (a message the CSMS set keeps
        its source)."""
        for info in messages:
            await self._store(state.pk, info, source="station")
