"""Local authorization list messages per protocol version: the payload builder behind
:mod:`csms.core.services.local_lists` (as :mod:`csms.core.services.operations` is for the other
commands), and what a station's configuration says about its list.

An entry is version-neutral: ``{"status", "expires_at", "group", "type"}`` for an id token, or
``None`` to remove the token (a differential update's entry without idTagInfo / idTokenInfo).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from csms.core.ocpp.validation import V16
from csms.core.tables import ConfigurationKey, DeviceVariable

Entry = dict[str, Any]

# OCPP 2.0.1 IdTokenEnumType; a card of another type goes into a 2.0.1 list as "Local".
TOKEN_TYPES_201 = frozenset({"Central", "eMAID", "ISO14443", "ISO15693", "KeyCode", "Local", "MacAddress",
                             "NoAuthorization"})
# What each version's idTag / idToken may hold (CiString20Type / IdToken.idToken maxLength 36).
MAX_TOKEN_LENGTH = {V16: 20}
DEFAULT_MAX_TOKEN_LENGTH = 36
STATUSES_16 = frozenset({"Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"})

_encode = msgspec.json.Encoder().encode


def fits(version: str, id_token: str) -> bool:
    """Whether ``id_token`` can be named in a list of ``version`` at all."""
    return 0 < len(id_token) <= MAX_TOKEN_LENGTH.get(version, DEFAULT_MAX_TOKEN_LENGTH)


def token_type(version: str, kind: str) -> str:
    """The IdTokenEnumType a card of ``kind`` is sent as (2.0.1; 1.6 has no types)."""
    return kind if kind in TOKEN_TYPES_201 else "Local"


def version_request() -> tuple[str, dict[str, Any]]:
    return "GetLocalListVersion", {}


def version_of(version: str, response: dict[str, Any]) -> int:
    """The list version in a GetLocalListVersion answer (1.6: -1 means no list support)."""
    return int(response["listVersion"] if version == V16 else response["versionNumber"])


def _info(version: str, entry: Entry) -> dict[str, Any]:
    if version == V16:
        info: dict[str, Any] = {"status": entry["status"] if entry["status"] in STATUSES_16 else "Invalid"}
        if entry.get("expires_at"):
            info["expiryDate"] = entry["expires_at"]
        if entry.get("group") and len(entry["group"]) <= 20:
            info["parentIdTag"] = entry["group"]
        return info
    info = {"status": entry["status"]}
    if entry.get("expires_at"):
        info["cacheExpiryDateTime"] = entry["expires_at"]
    if entry.get("group") and len(entry["group"]) <= DEFAULT_MAX_TOKEN_LENGTH:
        info["groupIdToken"] = {"idToken": entry["group"], "type": "Central"}  # as Authorize answers it
    return info


def list_item(version: str, id_token: str, entry: Entry | None, kind: str) -> dict[str, Any]:
    """One element of ``localAuthorizationList``; ``entry`` None removes the token."""
    if version == V16:
        item: dict[str, Any] = {"idTag": id_token}
        if entry is not None:
            item["idTagInfo"] = _info(version, entry)
        return item
    item = {"idToken": {"idToken": id_token, "type": token_type(version, kind)}}
    if entry is not None:
        item["idTokenInfo"] = _info(version, entry)
    return item


def send_request(version: str, list_version: int, update_type: str,
                 items: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """A SendLocalList request; ``update_type`` "Full" or "Differential"."""
    key = "listVersion" if version == V16 else "versionNumber"
    payload: dict[str, Any] = {key: list_version, "updateType": update_type}
    if items:
        payload["localAuthorizationList"] = items
    return "SendLocalList", payload


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


@dataclass(frozen=True)
class Capabilities:
    """What the station's stored configuration says about its list (None: it did not say)."""

    supported: bool | None = None  # 1.6 LocalAuthListManagement profile / 2.0.1 LocalAuthListCtrlr.Available
    enabled: bool | None = None  # 1.6 LocalAuthListEnabled / 2.0.1 LocalAuthListCtrlr.Enabled
    per_message: int | None = None  # 1.6 SendLocalListMaxLength / 2.0.1 ItemsPerMessage
    bytes_per_message: int | None = None  # 2.0.1 BytesPerMessage
    max_entries: int | None = None  # 1.6 LocalAuthListMaxLength / 2.0.1 Entries' maxLimit


def _int(value: Any) -> int | None:
    try:
        number = int(float(str(value).strip()))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _bool(value: Any) -> bool | None:
    text = str(value).strip().lower() if value is not None else ""
    return True if text == "true" else False if text == "false" else None


async def capabilities(version: str, station_pk: int) -> Capabilities:
    """The station's list capabilities from the configuration it reported (1.6 keys, 2.0.1
    device-model variables)."""
    if version == V16:
        rows = {r["key"]: r["value"] for r in await ConfigurationKey.select(ConfigurationKey.key, ConfigurationKey.value)
                .where((ConfigurationKey.station == station_pk) & ConfigurationKey.key.is_in(
                    ["SupportedFeatureProfiles", "LocalAuthListEnabled", "LocalAuthListMaxLength",
                     "SendLocalListMaxLength"]))}
        profiles = rows.get("SupportedFeatureProfiles")
        return Capabilities(
            supported=None if profiles is None else "LocalAuthListManagement" in
            [p.strip() for p in str(profiles).split(",")],
            enabled=_bool(rows.get("LocalAuthListEnabled")),
            per_message=_int(rows.get("SendLocalListMaxLength")),
            max_entries=_int(rows.get("LocalAuthListMaxLength")))
    variables = await DeviceVariable.select(
        DeviceVariable.variable, DeviceVariable.value, DeviceVariable.max_limit).where(
        (DeviceVariable.station == station_pk) & (DeviceVariable.component == "LocalAuthListCtrlr")
        & (DeviceVariable.attribute_type == "Actual"))
    found = {r["variable"]: r for r in variables}

    def value(name: str) -> Any:
        return found[name]["value"] if name in found else None

    entries = found.get("Entries")
    return Capabilities(
        supported=_bool(value("Available")),
        enabled=_bool(value("Enabled")),
        per_message=_int(value("ItemsPerMessage")),
        bytes_per_message=_int(value("BytesPerMessage")),
        max_entries=_int(entries["max_limit"]) if entries is not None else None)
