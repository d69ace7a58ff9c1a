"""DER controls and battery swaps of an OCPP 2.1 station over REST (an earlier version answers
409 ``NotSupported``): set, read and clear DER controls, and request a battery swap. Bodies are
checked here (known fields, the control type from DERControlEnumType, the token type from
IdTokenEnumType) and the whole request against the 2.1 schema before it is sent (400, nothing
sent). What the station reports back is in its events (categories ``der``, ``battery_swap``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, post

from csms.api.auth import caller, require
from csms.api.stations import run_command
from csms.core.runtime import get_core

ControlType = Literal[
    "EnterService", "FreqDroop", "FreqWatt", "FixedPFAbsorb", "FixedPFInject", "FixedVar", "Gradients", "HFMustTrip",
    "HFMayTrip", "HVMustTrip", "HVMomCess", "HVMayTrip", "LimitMaxDischarge", "LFMustTrip", "LVMustTrip", "LVMomCess",
    "LVMayTrip", "PowerMonitoringMustTrip", "VoltVar", "VoltWatt", "WattPF", "WattVar"]
TokenType = Literal["Central", "DirectPayment", "eMAID", "EVCCID", "ISO14443", "ISO15693", "KeyCode", "Local",
                    "MacAddress", "NoAuthorization", "VIN"]


class SetDerControlBody(msgspec.Struct, forbid_unknown_fields=True):
    control_id: Annotated[str, msgspec.Meta(min_length=1, max_length=36)]
    control_type: ControlType
    control: dict[str, Any]  # the type's settings: a 2.1 DERCurveType for the curves, else e.g. FreqDroopType
    is_default: bool = False


class ClearDerControlBody(msgspec.Struct, forbid_unknown_fields=True):
    is_default: bool  # true: default controls, false: scheduled ones
    control_type: ControlType | None = None
    control_id: str | None = None


class BatterySwapBody(msgspec.Struct, forbid_unknown_fields=True):
    id_token: str
    token_type: TokenType = "ISO14443"


class DerController(Controller):
    path = "/stations/{station_id:str}"
    tags = ["stations"]
    opt = {"tenant": {"station_id": "station"}}

    @post("/der-controls", guards=[require("operator")])
    async def set_der_control(self, request: Request, station_id: str, data: SetDerControlBody) -> dict[str, Any]:
        """SetDERControl; the station's answer and the ids of the controls it superseded."""
        return await run_command(get_core().der.set_control(
            station_id, control_id=data.control_id, control_type=data.control_type, control=data.control,
            is_default=data.is_default, by=caller(request)))

    @get("/der-controls", guards=[require("viewer")])
    async def get_der_controls(self, request: Request, station_id: str, control_type: ControlType | None = None,
                               control_id: str | None = None, is_default: bool | None = None) -> dict[str, Any]:
        """GetDERControl; the station's answer and the ``request_id`` of the ReportDERControl it
        sends next (in its events, category ``der``)."""
        return await run_command(get_core().der.get_controls(
            station_id, control_type=control_type, control_id=control_id, is_default=is_default, by=caller(request)))

    @post("/der-controls/clear", guards=[require("operator")])
    async def clear_der_controls(self, request: Request, station_id: str, data: ClearDerControlBody) -> dict[str, Any]:
        """ClearDERControl: one control, those of a type, or all default (or scheduled) ones."""
        return await run_command(get_core().der.clear_controls(
            station_id, is_default=data.is_default, control_type=data.control_type, control_id=data.control_id,
            by=caller(request)))

    @post("/battery-swap", guards=[require("operator")])
    async def request_battery_swap(self, request: Request, station_id: str, data: BatterySwapBody) -> dict[str, Any]:
        """RequestBatterySwap; the station's answer and the ``request_id`` its BatterySwap reports carry."""
        return await run_command(get_core().der.request_battery_swap(
            station_id, id_token=data.id_token, token_type=data.token_type, by=caller(request)))
