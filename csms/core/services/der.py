"""What an OCPP 2.1 station with distributed energy resources (DER, ISO 15118-20 V2X and
battery swap stations) is asked by the CSMS: set, read and clear its DER controls
(SetDERControl, GetDERControl, ClearDERControl) and request a battery swap (RequestBatterySwap).
Earlier versions have none of them (``NotSupported``).

Each control type carries its settings in one field of SetDERControlRequest
(:data:`CONTROL_FIELDS`); the whole request is checked against the 2.1 schema before it is sent.
What the station reports back (ReportDERControl for a GetDERControl, NotifyDERStartStop,
NotifyDERAlarm, BatterySwap) arrives through the 2.1 adapter and is kept in its event log
(categories ``der`` and ``battery_swap``) with the request id returned here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csms.core.ocpp.outbound import StationCalls
from csms.core.ocpp.outbound.calls import new_request_id
from csms.core.ocpp.outbound.v201 import TOKEN_TYPES as TOKEN_TYPES_201
from csms.core.services.operations import calls_with

if TYPE_CHECKING:
    from csms.core.services.commands import CommandService

_CURVES = ("FreqWatt", "HFMayTrip", "HFMustTrip", "HVMayTrip", "HVMomCess", "HVMustTrip", "LFMustTrip",
           "LVMayTrip", "LVMomCess", "LVMustTrip", "PowerMonitoringMustTrip", "VoltVar", "VoltWatt", "WattPF",
           "WattVar")
# DERControlEnumType → the field of SetDERControlRequest that holds that control's settings
CONTROL_FIELDS: dict[str, str] = {
    **{name: "curve" for name in _CURVES},
    "EnterService": "enterService", "FixedPFAbsorb": "fixedPFAbsorb", "FixedPFInject": "fixedPFInject",
    "FixedVar": "fixedVar", "FreqDroop": "freqDroop", "Gradients": "gradient", "LimitMaxDischarge": "limitMaxDischarge",
}

# IdTokenEnumType of 2.1 (2.0.1's and what 2.1 adds), for a battery swap's token
TOKEN_TYPES = TOKEN_TYPES_201 | {"DirectPayment", "EVCCID", "VIN"}


class DerService:
    def __init__(self, commands: CommandService) -> None:
        self.commands = commands

    async def _calls(self, station_id: str) -> StationCalls:
        return await calls_with(self.commands, station_id, "supports_der",
                                "DER controls or battery swaps (OCPP 2.1 has)")

    async def set_control(self, station_id: str, *, control_id: str, control_type: str, control: dict[str, Any],
                          is_default: bool = False, by: str = "") -> dict[str, Any]:
        """SetDERControl: ``control`` (the settings of ``control_type``: a DERCurveType for the
        curves, else that type's own object); the station's answer and the controls it superseded."""
        calls = await self._calls(station_id)
        call = calls.set_der_control(control_id=control_id, control_type=control_type, is_default=is_default,
                                     field=CONTROL_FIELDS[control_type], control=control)
        response = await self.commands.send(station_id, call.action, call.payload, requested_by=by)
        return call.outcome(response)

    async def get_controls(self, station_id: str, *, control_type: str | None = None, control_id: str | None = None,
                           is_default: bool | None = None, by: str = "") -> dict[str, Any]:
        """GetDERControl; the station's answer and the ``request_id`` its ReportDERControl carries."""
        calls = await self._calls(station_id)
        call = calls.get_der_control(request_id=new_request_id(), control_type=control_type, control_id=control_id,
                                     is_default=is_default)
        response = await self.commands.send(station_id, call.action, call.payload, requested_by=by)
        return call.outcome(response)

    async def clear_controls(self, station_id: str, *, is_default: bool, control_type: str | None = None,
                             control_id: str | None = None, by: str = "") -> dict[str, Any]:
        """ClearDERControl: one control (``control_id``), those of a type, or every default or
        scheduled one (``is_default``)."""
        calls = await self._calls(station_id)
        call = calls.clear_der_control(is_default=is_default, control_type=control_type, control_id=control_id)
        response = await self.commands.send(station_id, call.action, call.payload, requested_by=by)
        return call.outcome(response)

    async def request_battery_swap(self, station_id: str, *, id_token: str, token_type: str = "ISO14443",
                                   by: str = "") -> dict[str, Any]:
        """RequestBatterySwap for ``id_token``; the station's answer and the ``request_id`` its
        BatterySwap reports carry."""
        calls = await self._calls(station_id)
        call = calls.request_battery_swap(request_id=new_request_id(), id_token=id_token, token_type=token_type)
        response = await self.commands.send(station_id, call.action, call.payload, requested_by=by)
        return call.outcome(response)
