"""Local authorization list messages: the payload builder behind
:mod:`csms.core.services.local_lists` (as the adapters are for :mod:`csms.core.services.operations`),
and what a station's configuration says about its list. Each function takes the station's protocol
version and leaves what differs to that version's adapter (a version not known is read as the
newest one's).

An entry is version-neutral: ``{"status", "expires_at", "group", "type"}`` for an id token, or
``None`` to remove the token (a differential update's entry without idTagInfo / idTokenInfo).
"""

from __future__ import annotations

from typing import Any

import msgspec

from csms.core.ocpp.outbound import NEWEST, calls_or_newest
from csms.core.ocpp.outbound.calls import Entry
from csms.core.ocpp.outbound.calls import LocalListCapabilities as Capabilities
from csms.core.ocpp.outbound.v201 import TOKEN_TYPES

_encode = msgspec.json.Encoder().encode


def fits(version: str, id_token: str) -> bool:
    """Whether ``id_token`` can be named in a list of ``version`` at all."""
    return 0 < len(id_token) <= calls_or_newest(version).max_id_token_length


def token_type(version: str, kind: str) -> str:
    """The IdTokenEnumType a card of ``kind`` is sent as (2.0.1; 1.6 has no types)."""
    return kind if kind in TOKEN_TYPES else "Local"


def version_request() -> tuple[str, dict[str, Any]]:
    """A GetLocalListVersion request (the same in every version)."""
    call = NEWEST.get_local_list_version()
    return call.action, call.payload


def version_of(version: str, response: dict[str, Any]) -> int:
    """The list version in a GetLocalListVersion answer (1.6: -1 means no list support)."""
    return calls_or_newest(version).local_list_version(response)


def list_item(version: str, id_token: str, entry: Entry | None, kind: str) -> dict[str, Any]:
    """One element of ``localAuthorizationList``; ``entry`` None removes the token."""
    return calls_or_newest(version).local_list_item(id_token, entry, token_type(version, kind))


def send_request(version: str, list_version: int, update_type: str,
                 items: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """A SendLocalList request; ``update_type`` "Full" or "Differential"."""
    call = calls_or_newest(version).send_local_list(list_version=list_version, update_type=update_type, items=items)
    return call.action, call.payload


def chunks(items: list[dict[str, Any]], *, per_message: int, bytes_per_message: int | None) -> list[list[dict[str, Any]]]:
    """``items`` split so that no message holds more than ``per_message`` entries or (when the
    station says) more than ``bytes_per_message`` bytes of entries (with room for the envelope)."""
    budget = None if bytes_per_message is None else max(bytes_per_message - 120, 1)
    out: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for item in items:
        item_size = len(_encode(item)) + 1
        if current and (len(current) >= per_message or (budget is not None and size + item_size > budget)):
            out.append(current)
            current, size = [], 0
        current.append(item)
        size += item_size
    if current:
        out.append(current)
    return out


async def capabilities(version: str, station_pk: int) -> Capabilities:
    """The station's list capabilities from the configuration it reported (1.6 keys, 2.0.1
    device-model variables)."""
    return await calls_or_newest(version).local_list_capabilities(station_pk)


__all__ = ["Capabilities", "Entry", "capabilities", "chunks", "fits", "list_item", "send_request", "token_type",
           "version_of", "version_request"]
