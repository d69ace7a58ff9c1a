"""What the CSMS tells an OCPP 2.1 station beyond DER controls: an aFRR grid signal
(AFRRSignal), a new value for a dynamic charging profile (UpdateDynamicSchedule), priority
charging of a transaction (UsePriorityCharging), the energy transfer modes allowed for a
transaction (NotifyAllowedEnergyTransfer) and a driver's web payment having started at an EVSE
(NotifyWebPaymentStarted). Earlier versions have none of them (``NotSupported``). The periodic
event streams are :mod:`csms.core.services.event_streams`'.

What the station accepts is kept where it belongs: a schedule update on the charging profile it
updates (``charging_profile.schedule_update``), priority charging and the allowed modes on the
transaction (``charging_session.priority_charging``, ``allowed_energy_transfer``). A profile or
transaction the CSMS does not know at that station is refused before anything is sent. The
aFRR signal and the web payment change nothing the CSMS keeps: they are in the command log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csms.core.ocpp.outbound import StationCalls
from csms.core.services.operations import OperationError, calls_with
from csms.core.tables import ChargingProfile, ChargingSession
from csms.core.timeutil import utcnow
from csms.i18n import N_

if TYPE_CHECKING:
    from datetime import datetime

    from csms.core.services.commands import CommandService


class EnergyControlService:
    def __init__(self, commands: CommandService) -> None:
        self.commands = commands

    async def _calls(self, station_id: str) -> StationCalls:
        return await calls_with(self.commands, station_id, "supports_energy_controls",
                                "aFRR signals, dynamic schedule updates, priority charging, allowed energy "
                                "transfer or web payments (OCPP 2.1 has)")

    async def _running(self, station_id: str, transaction_id: str) -> int:
        """The id of the station's running session ``transaction_id``."""
        row = await ChargingSession.select(ChargingSession.id, ChargingSession.state).where(
            (ChargingSession.station.station_id == station_id)
            & (ChargingSession.transaction_id == transaction_id)).first()
        if row is None or row["state"] != "active":
            raise OperationError(N_("no running transaction %(transaction)s at %(station)s"),
                                 transaction=repr(transaction_id), station=station_id)
        return int(row["id"])

    async def afrr_signal(self, station_id: str, *, timestamp: datetime, signal: int, by: str = "") -> dict[str, Any]:
        """AFRRSignal: ``signal`` (a value of the station's v2xSignalWattCurve) from ``timestamp``."""
        calls = await self._calls(station_id)
        call = calls.afrr_signal(timestamp=timestamp, signal=signal)
        return call.outcome(await self.commands.send(station_id, call.action, call.payload, requested_by=by))

    async def update_dynamic_schedule(self, station_id: str, *, profile_id: int, update: dict[str, Any],
                                      by: str = "") -> dict[str, Any]:
        """UpdateDynamicSchedule of a charging profile the station holds (one the CSMS sent and
        the station accepted, or one the station reported); an accepted update is stored on it."""
        calls = await self._calls(station_id)
        if not update:
            raise OperationError(N_("the schedule update sets no value (limit, setpoint, discharge limit ...)"))
        row = await ChargingProfile.select(ChargingProfile.id).where(
            (ChargingProfile.station.station_id == station_id) & (ChargingProfile.profile_id == profile_id)
            & ChargingProfile.cleared_at.is_null()
            & ((ChargingProfile.source == "station") | (ChargingProfile.status == "Accepted"))
        ).order_by(ChargingProfile.id, ascending=False).first()
        if row is None:
            raise OperationError(N_("station %(station)s holds no charging profile %(profile)s the CSMS knows of"),
                                 station=station_id, profile=profile_id)
        call = calls.update_dynamic_schedule(profile_id=profile_id, update=update)
        result = call.outcome(await self.commands.send(station_id, call.action, call.payload, requested_by=by))
        if result["status"] == "Accepted":
            await ChargingProfile.update({ChargingProfile.schedule_update: update,
                                          ChargingProfile.schedule_updated_at: utcnow()}).where(
                ChargingProfile.id == row["id"])
        return result

    async def use_priority_charging(self, station_id: str, *, transaction_id: str, activate: bool,
                                    by: str = "") -> dict[str, Any]:
        """UsePriorityCharging (``activate`` false: stop it) for a running transaction; what the
        station accepts is kept with the transaction (its NotifyPriorityCharging updates it too)."""
        calls = await self._calls(station_id)
        session_id = await self._running(station_id, transaction_id)
        call = calls.use_priority_charging(transaction_id=transaction_id, activate=activate)
        result = call.outcome(await self.commands.send(station_id, call.action, call.payload, requested_by=by))
        if result["status"] == "Accepted":
            await ChargingSession.update({ChargingSession.priority_charging: activate,
                                          ChargingSession.updated_at: utcnow()}).where(ChargingSession.id == session_id)
        return result

    async def priority_charging_reported(self, station_pk: int, transaction_id: str, activated: bool) -> None:
        """The station's NotifyPriorityCharging: its word on the transaction's priority charging."""
        await ChargingSession.update({ChargingSession.priority_charging: activated,
                                      ChargingSession.updated_at: utcnow()}).where(
            (ChargingSession.station == station_pk) & (ChargingSession.transaction_id == transaction_id))

    async def notify_allowed_energy_transfer(self, station_id: str, *, transaction_id: str, modes: list[str],
                                             by: str = "") -> dict[str, Any]:
        """NotifyAllowedEnergyTransfer: the energy transfer modes (EnergyTransferModeEnumType)
        the CSMS allows for a running transaction; accepted, they are kept with it."""
        calls = await self._calls(station_id)
        session_id = await self._running(station_id, transaction_id)
        call = calls.notify_allowed_energy_transfer(transaction_id=transaction_id, modes=modes)
        result = call.outcome(await self.commands.send(station_id, call.action, call.payload, requested_by=by))
        if result["status"] == "Accepted":
            await ChargingSession.update({ChargingSession.allowed_energy_transfer: modes,
                                          ChargingSession.updated_at: utcnow()}).where(ChargingSession.id == session_id)
        return result

    async def notify_web_payment_started(self, station_id: str, *, evse_id: int, timeout: int,
                                         by: str = "") -> dict[str, Any]:
        """NotifyWebPaymentStarted: a driver started paying on the web (e.g. by the QR code of
        EVSE ``evse_id``); the station expects no result after ``timeout`` seconds."""
        calls = await self._calls(station_id)
        call = calls.notify_web_payment_started(evse_id=evse_id, timeout=timeout)
        return call.outcome(await self.commands.send(station_id, call.action, call.payload, requested_by=by))
