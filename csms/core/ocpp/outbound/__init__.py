"""Outbound OCPP adapters: the calls the CSMS makes to a station, one adapter per protocol version
(the inbound side is :mod:`csms.core.ocpp.v16` and :mod:`csms.core.ocpp.v201`)."""

from __future__ import annotations

from csms.core.ocpp.outbound.calls import Call, OperationError, StationCalls
from csms.core.ocpp.outbound.v16 import Calls16
from csms.core.ocpp.outbound.v201 import Calls201

BY_VERSION: dict[str, StationCalls] = {adapter.version: adapter for adapter in (Calls16(), Calls201())}


def calls_for(version: str) -> StationCalls:
    """The outbound adapter of protocol ``version``."""
    return BY_VERSION[version]


__all__ = ["Call", "Calls16", "Calls201", "OperationError", "StationCalls", "calls_for"]
