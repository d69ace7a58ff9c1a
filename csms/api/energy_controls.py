"""What the CSMS tells an OCPP 2.1 station over REST beyond DER controls (an earlier version
answers 409 ``NotSupported``): an aFRR signal, a dynamic schedule update of a charging profile,
priority charging of a transaction, the energy transfer modes allowed for a transaction, and a
web payment started at an EVSE; the periodic event streams the station has open, and adjusting
one. Bodies are checked here (known fields, types, the modes from
EnergyTransferModeEnumType) and each request against the 2.1 schema before it is sent (400,
nothing sent); a profile or transaction the CSMS does not know at the station is refused (400).
Each answer is the station's; what it accepts is kept (see
:mod:`csms.core.services.energy_controls`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, post

from csms.api.auth import caller, require
from csms.api.bounds import Int32
from csms.api.stations import run_command
from csms.core.runtime import get_core
from csms.core.timeutil import utcnow

EnergyTransferMode = Literal["AC_single_phase", "AC_two_phase", "AC_three_phase", "DC", "AC_BPT", "AC_BPT_DER",
                             "AC_DER", "DC_BPT", "DC_ACDP", "DC_ACDP_BPT", "WPT"]
TransactionId = Annotated[str, msgspec.Meta(min_length=1, max_length=36)]

# the body's names of a ChargingScheduleUpdateType's fields → OCPP's
SCHEDULE_UPDATE_FIELDS = {
    "limit": "limit", "limit_l2": "limit_L2", "limit_l3": "limit_L3",
    "discharge_limit": "dischargeLimit", "discharge_limit_l2": "dischargeLimit_L2",
    "discharge_limit_l3": "dischargeLimit_L3",
    "setpoint": "setpoint", "setpoint_l2": "setpoint_L2", "setpoint_l3": "setpoint_L3",
    "setpoint_reactive": "setpointReactive", "setpoint_reactive_l2": "setpointReactive_L2",
    "setpoint_reactive_l3": "setpointReactive_L3",
}


class AfrrSignalBody(msgspec.Struct, forbid_unknown_fields=True):
    signal: Int32  # a value of the station's v2xSignalWattCurve
    timestamp: datetime | None = None  # when the signal becomes active; none: now


class ScheduleUpdateBody(msgspec.Struct, forbid_unknown_fields=True):
    """The new values of a dynamic profile, in its charging rate unit (at least one)."""

    limit: float | None = None
    limit_l2: float | None = None
    limit_l3: float | None = None
    discharge_limit: float | None = None
    discharge_limit_l2: float | None = None
    discharge_limit_l3: float | None = None
    setpoint: float | None = None
    setpoint_l2: float | None = None
    setpoint_l3: float | None = None
    setpoint_reactive: float | None = None
    setpoint_reactive_l2: float | None = None
    setpoint_reactive_l3: float | None = None


class PriorityChargingBody(msgspec.Struct, forbid_unknown_fields=True):
    transaction_id: TransactionId
    activate: bool = True  # false: stop priority charging


class AllowedEnergyTransferBody(msgspec.Struct, forbid_unknown_fields=True):
    transaction_id: TransactionId
    modes: Annotated[list[EnergyTransferMode], msgspec.Meta(min_length=1, max_length=11)]


class WebPaymentStartedBody(msgspec.Struct, forbid_unknown_fields=True):
    evse_id: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
    timeout: Annotated[int, msgspec.Meta(ge=1, le=86400)]  # seconds after which no payment result is expected


class AdjustStreamBody(msgspec.Struct, forbid_unknown_fields=True):
    """When the station sends the stream's data: every ``interval`` seconds and/or every
    ``values`` values (at least one)."""

    interval: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)] | None = None
    values: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)] | None = None


class EnergyControlController(Controller):
    path = "/stations/{station_id:str}"
    tags = ["stations"]
    opt = {"tenant": {"station_id": "station"}}

    @post("/afrr-signal", guards=[require("operator")])
    async def afrr_signal(self, request: Request, station_id: str, data: AfrrSignalBody) -> dict[str, Any]:
        """AFRRSignal: an aFRR signal value from ``timestamp`` (default now); the station's answer."""
        return await run_command(get_core().energy_controls.afrr_signal(
            station_id, timestamp=data.timestamp or utcnow(), signal=data.signal, by=caller(request)))

    @post("/charging-profiles/{profile_id:int}/schedule-update", guards=[require("operator")])
    async def update_dynamic_schedule(self, request: Request, station_id: str, profile_id: int,
                                      data: ScheduleUpdateBody) -> dict[str, Any]:
        """UpdateDynamicSchedule of a charging profile the station holds; accepted, the update is
        stored with the profile."""
        update = {SCHEDULE_UPDATE_FIELDS[k]: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
        return await run_command(get_core().energy_controls.update_dynamic_schedule(
            station_id, profile_id=profile_id, update=update, by=caller(request)))

    @post("/priority-charging", guards=[require("operator")])
    async def use_priority_charging(self, request: Request, station_id: str,
                                    data: PriorityChargingBody) -> dict[str, Any]:
        """UsePriorityCharging for a running transaction (``activate`` false: stop it); accepted,
        it is kept with the session (``priority_charging``)."""
        return await run_command(get_core().energy_controls.use_priority_charging(
            station_id, transaction_id=data.transaction_id, activate=data.activate, by=caller(request)))

    @post("/allowed-energy-transfer", guards=[require("operator")])
    async def notify_allowed_energy_transfer(self, request: Request, station_id: str,
                                             data: AllowedEnergyTransferBody) -> dict[str, Any]:
        """NotifyAllowedEnergyTransfer: the energy transfer modes allowed for a running
        transaction; accepted, they are kept with the session (``allowed_energy_transfer``)."""
        return await run_command(get_core().energy_controls.notify_allowed_energy_transfer(
            station_id, transaction_id=data.transaction_id, modes=list(dict.fromkeys(data.modes)),
            by=caller(request)))

    @get("/event-streams", guards=[require("viewer")])
    async def periodic_event_streams(self, request: Request, station_id: str) -> dict[str, Any]:
        """GetPeriodicEventStream: the streams the station has open (``streams``: ``id``,
        ``monitor_id``, ``interval``, ``values``), asked of the station, not stored."""
        return await run_command(get_core().energy_controls.periodic_event_streams(station_id, by=caller(request)))

    @post("/event-streams/{stream_id:int}/adjust", guards=[require("operator")])
    async def adjust_periodic_event_stream(self, request: Request, station_id: str, stream_id: int,
                                           data: AdjustStreamBody) -> dict[str, Any]:
        """AdjustPeriodicEventStream of an open stream; the station's answer."""
        return await run_command(get_core().energy_controls.adjust_periodic_event_stream(
            station_id, stream_id=stream_id, interval=data.interval, values=data.values, by=caller(request)))

    @post("/web-payment-started", guards=[require("operator")])
    async def notify_web_payment_started(self, request: Request, station_id: str,
                                         data: WebPaymentStartedBody) -> dict[str, Any]:
        """NotifyWebPaymentStarted: a driver started a web payment for the EVSE (e.g. by its QR
        code); the station waits ``timeout`` seconds for its outcome."""
        return await run_command(get_core().energy_controls.notify_web_payment_started(
            station_id, evse_id=data.evse_id, timeout=data.timeout, by=caller(request)))
