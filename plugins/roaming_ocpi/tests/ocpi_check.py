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
DT_FIELDS = {"last_updated", "start_date_time", "end_date_time", "expiry_date", "period_begin", "period_end",
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
