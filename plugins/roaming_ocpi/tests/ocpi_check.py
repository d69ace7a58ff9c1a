"""Validation of OCPI payloads with the ``ocpi-types`` package (PyPI), as the brief asks.

``ocpi-types`` parses with ``X.from_dict`` (types, enums and required fields checked by
assertions) and writes back with ``to_dict``; a payload is valid when it parses and the round trip
gives it back unchanged (an unknown or misspelt field would be dropped). It does not check string
lengths or DateTime formats, so DateTimes are checked here too (UTC with ``Z``, as we emit them).
"""

from __future__ import annotations

import re
from typing import Any

from ocpi_types import v2_2_1 as ocpi

DT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$")
DT_FIELDS = {"last_updated", "start_datetime", "end_datetime", "stop_date_time", "start_date_time", "end_date_time", "expiry_date", "period_begin", "period_end",
             "timestamp"}

CLASSES = {
    "Version": ocpi.Version, "VersionDetails": ocpi.VersionDetails, "Credentials": ocpi.Credentials,
    "Location": ocpi.Location, "EVSE": ocpi.Evse, "Connector": ocpi.Connector, "Session": ocpi.Session,
    "CDR": ocpi.Cdr, "Tariff": ocpi.Tariff, "Token": ocpi.Token, "AuthorizationInfo": ocpi.AuthorizationInfo,
    "LocationReferences": ocpi.LocationReferences, "CommandResponse": ocpi.CommandResponse,
    "CommandResult": ocpi.CommandResult, "START_SESSION": ocpi.StartSession, "STOP_SESSION": ocpi.StopSession,
    "RESERVE_NOW": ocpi.ReserveNow, "CANCEL_RESERVATION": ocpi.CancelReservation,
    "UNLOCK_CONNECTOR": ocpi.UnlockConnector, "SetChargingProfile": ocpi.SetChargingProfile,
    "ChargingProfileResponse": ocpi.ChargingProfileResponse, "ChargingProfileResult": ocpi.ChargingProfileResult,
    "ActiveChargingProfileResult": ocpi.ActiveChargingProfileResult, "ClearProfileResult": ocpi.ClearProfileResult,
    "Hours": ocpi.Hours, "ClientInfo": ocpi.HubClientInfo,
}


def _datetimes(value: Any, path: str = "") -> list[str]:
    bad = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "regular_hours":  # period_begin/period_end there are times of day (HH:MM)
                continue
            if k in DT_FIELDS and isinstance(v, str) and not DT.match(v):
                bad.append(f"{path}{k}={v!r}")
            bad += _datetimes(v, f"{path}{k}.")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            bad += _datetimes(v, f"{path}{i}.")
    return bad


def assert_valid(kind: str, data: Any) -> None:
    """``data`` is a valid OCPI 2.2.1 ``kind`` object according to ocpi-types (and UTC ``Z`` times)."""
    cls = CLASSES[kind]
    try:
        parsed = cls.from_dict(data)
    except (AssertionError, ValueError, TypeError, KeyError) as exc:
        raise AssertionError(f"not a valid OCPI {kind}: {exc!r}\n{data}") from None
    assert parsed.to_dict() == data, f"{kind} does not survive the ocpi-types round trip:\n{data}\n{parsed.to_dict()}"
    bad = _datetimes(data)
    assert not bad, f"{kind} has DateTimes that are not UTC 'Z': {bad}"


def assert_envelope(body: Any, status_code: int = 1000) -> Any:
    """An OCPI response envelope with ``status_code``; returns its data."""
    assert isinstance(body, dict), body
    assert body["status_code"] == status_code, body
    assert DT.match(body["timestamp"]), body["timestamp"]
    assert set(body) <= {"data", "status_code", "status_message", "timestamp"}, body
    return body.get("data")


def assert_valid_211(kind: str, data: Any) -> None:
    """``data`` is a valid OCPI 2.1.1 ``kind`` object according to ocpi-types' 2.1.1 models (and
    the 2.1.1 required fields that those models leave optional), with UTC ``Z`` times."""
    from ocpi_types import v2_1_1 as old

    classes = {"Credentials": old.Credentials, "Location": old.Location, "EVSE": old.Evse, "Connector": old.Connector,
               "Session": old.Session, "CDR": old.Cdr, "Tariff": old.Tariff, "Token": old.Token}
    required = {  # the 2.1.1 text's cardinality 1 (ocpi-types makes most fields optional)
        "Credentials": ("token", "url", "business_details", "party_id", "country_code"),
        "Location": ("id", "type", "address", "city", "postal_code", "country", "coordinates", "last_updated"),
        "EVSE": ("uid", "status", "connectors", "last_updated"),
        "Connector": ("id", "standard", "format", "power_type", "voltage", "amperage", "last_updated"),
        "Session": ("id", "start_datetime", "kwh", "auth_id", "auth_method", "location", "currency", "status",
                    "last_updated"),
        "Token": ("uid", "type", "auth_id", "issuer", "valid", "whitelist", "last_updated"),
    }
    try:
        parsed = classes[kind].from_dict(data)
    except (AssertionError, ValueError, TypeError, KeyError) as exc:
        raise AssertionError(f"not a valid OCPI 2.1.1 {kind}: {exc!r}\n{data}") from None
    assert parsed.to_dict() == data, f"2.1.1 {kind} does not survive the ocpi-types round trip:\n{data}\n{parsed.to_dict()}"
    missing = [f for f in required.get(kind, ()) if data.get(f) is None]
    assert not missing, f"2.1.1 {kind} lacks {missing}: {data}"
    for forbidden in ("country_code", "party_id", "publish", "roles") if kind != "Credentials" else ("roles",):
        assert forbidden not in data, f"2.1.1 {kind} has the 2.2.1 field {forbidden}: {data}"
    bad = _datetimes(data)
    assert not bad, f"{kind} has DateTimes that are not UTC 'Z': {bad}"
