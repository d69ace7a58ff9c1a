"""Outbound OCPP adapters: the calls the CSMS makes to a station, one adapter per protocol version
(the inbound side is :mod:`csms.core.ocpp.v16`, :mod:`csms.core.ocpp.v201` and :mod:`csms.core.ocpp.v21`)."""

from __future__ import annotations

from csms.core.ocpp.outbound.calls import Call, OperationError, StationCalls
from csms.core.ocpp.outbound.v16 import Calls16
from csms.core.ocpp.outbound.v201 import Calls201
from csms.core.ocpp.outbound.v21 import Calls21

BY_VERSION: dict[str, StationCalls] = {adapter.version: adapter for adapter in (Calls16(), Calls201(), Calls21())}
# For a station whose version is not known yet: 2.0.1, whose messages 2.1 stations take as well.
NEWEST: StationCalls = BY_VERSION[Calls201.version]


def calls_for(version: str) -> StationCalls:
    """The outbound adapter of protocol ``version``."""
    return BY_VERSION[version]


def known_calls(version: str | None) -> StationCalls | None:
    """The outbound adapter of ``version``; None for no version or one this CSMS does not speak
    (a version stored for a station may be either)."""
    return BY_VERSION.get(version) if version is not None else None


def calls_or_newest(version: str | None) -> StationCalls:
    """The outbound adapter of ``version``, the newest version's for a version not known."""
    return known_calls(version) or NEWEST


__all__ = ["BY_VERSION", "NEWEST", "Call", "Calls16", "Calls201", "Calls21", "OperationError", "StationCalls", "calls_for",
           "calls_or_newest", "known_calls"]
