"""The tariffs an OCPP 2.1 station calculates costs with (I11 Set/Get/Clear Default Tariff, I12
Change Transaction Tariff): SetDefaultTariff, GetTariffs, ClearTariffs, ChangeTransactionTariff.
Earlier versions have none (``NotSupported``).

The tariff sent is a 2.1 TariffType: given by the caller, or, when none is given, the answer of
the ``station_tariff`` hook (the billing plugin answers with the tariff assigned to the
station, in 2.1's terms). A tariff that breaks the 2.1 schema is refused before it is sent.
What the station holds is its business: ``tariffs`` asks it (GetTariffs); every call and its
answer is in the command log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csms.core.ocpp.outbound import StationCalls
from csms.core.services.operations import OperationError, calls_with
from csms.core.tables import ChargingSession
from csms.plugins import call_hook

if TYPE_CHECKING:
    from csms.core.services.commands import CommandService


class StationTariffService:
    def __init__(self, commands: CommandService) -> None:
        self.commands = commands

    async def _calls(self, station_id: str) -> StationCalls:
        return await calls_with(self.commands, station_id, "supports_tariffs", "tariffs at the station (OCPP 2.1 has)")

    async def _tariff(self, station_id: str, evse_id: int, tariff: dict[str, Any] | None) -> dict[str, Any]:
        if tariff is not None:
            return tariff
        answer = await call_hook("station_tariff", station_id=station_id, evse_id=evse_id)
        if answer is None:
            raise OperationError("no tariff given, and no plugin has one for this station (station_tariff hook)")
        return dict(answer)

    async def set_default(self, station_id: str, *, evse_id: int = 0, tariff: dict[str, Any] | None = None,
                          by: str = "") -> dict[str, Any]:
        """SetDefaultTariff at ``evse_id`` (0: every EVSE); the station's answer and the tariff sent."""
        if evse_id < 0:
            raise OperationError("evse_id must be 0 (every EVSE) or more")
        calls = await self._calls(station_id)
        sent = await self._tariff(station_id, evse_id, tariff)
        call = calls.set_default_tariff(evse_id=evse_id, tariff=sent)
        response = await self.commands.send(station_id, call.action, call.payload, requested_by=by)
        return {**call.outcome(response), "tariff": sent}

    async def tariffs(self, station_id: str, *, evse_id: int = 0, by: str = "") -> dict[str, Any]:
        """GetTariffs: the tariffs the station holds at ``evse_id`` (0: all of them)."""
        if evse_id < 0:
            raise OperationError("evse_id must be 0 (all EVSEs) or more")
        calls = await self._calls(station_id)
        call = calls.get_tariffs(evse_id=evse_id)
        return call.outcome(await self.commands.send(station_id, call.action, call.payload, requested_by=by))

    async def clear(self, station_id: str, *, tariff_ids: list[str] | None = None, evse_id: int | None = None,
                    by: str = "") -> dict[str, Any]:
        """ClearTariffs: the given tariffs (none: all) at ``evse_id`` (none: everywhere)."""
        calls = await self._calls(station_id)
        call = calls.clear_tariffs(tariff_ids=tariff_ids, evse_id=evse_id)
        return call.outcome(await self.commands.send(station_id, call.action, call.payload, requested_by=by))

    async def change_for_transaction(self, station_id: str, *, transaction_id: str,
                                     tariff: dict[str, Any] | None = None, by: str = "") -> dict[str, Any]:
        """ChangeTransactionTariff for a running transaction of the station; without ``tariff``
        the ``station_tariff`` hook's for the transaction's EVSE."""
        calls = await self._calls(station_id)
        session = await ChargingSession.select(ChargingSession.evse_id, ChargingSession.state).where(
            (ChargingSession.station.station_id == station_id) & (ChargingSession.transaction_id == transaction_id)).first()
        if session is None or session["state"] != "active":
            raise OperationError(f"no running transaction {transaction_id!r} at {station_id}")
        sent = await self._tariff(station_id, session["evse_id"] or 0, tariff)
        call = calls.change_transaction_tariff(transaction_id=transaction_id, tariff=sent)
        response = await self.commands.send(station_id, call.action, call.payload, requested_by=by)
        return {**call.outcome(response), "tariff": sent}
