"""The running cost of an ongoing transaction, to the station's display: OCPP 2.0.1 and 2.1
``CostUpdated``; OCPP 1.6 has no such message, so with ``running_cost_data_transfer`` on the
1.6 adapter sends a California Pricing ``DataTransfer`` (RunningCost) instead.

A pricing plugin computes the cost (the billing plugin's ``cost_updates`` does, at most once per
interval per session) and hands it here through ``get_core().running_costs.send(...)``; which
message carries it is the station's adapter's business, not the plugin's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csms.core.ocpp.outbound import known_calls
from csms.core.timeutil import utcnow

if TYPE_CHECKING:
    from datetime import datetime

    from csms.core.domain import SessionCost
    from csms.core.services.commands import CommandService
    from csms.settings import Settings


class RunningCostService:
    def __init__(self, settings: Settings, commands: CommandService) -> None:
        self.settings = settings
        self.commands = commands

    def sends_to(self, station_id: str) -> bool:
        """Whether a running cost reaches the station as it is connected now (its version has a
        message for it, and a vendor DataTransfer is switched on where it needs one)."""
        calls = known_calls(self.commands.version_of(station_id))
        if calls is None or not calls.supports_running_cost:
            return False
        return not calls.running_cost_by_data_transfer or self.settings.running_cost_data_transfer

    def shown(self, station_id: str, *, cost: SessionCost, meter_wh: float | None = None,
              charging: bool = True) -> tuple[Any, ...]:
        """What the station's display shows of this running cost: equal for two sends that would
        show the same, so a sender can skip the second. ``CostUpdated`` carries the total alone;
        the 1.6 DataTransfer also the meter reading and whether the car is charging."""
        calls = known_calls(self.commands.version_of(station_id))
        if calls is not None and calls.running_cost_by_data_transfer:
            return cost.currency, cost.total_incl_vat, meter_wh, charging
        return cost.currency, cost.total_incl_vat

    async def send(self, station_id: str, *, transaction_id: str, cost: SessionCost, meter_wh: float | None = None,
                   charging: bool = True, at: datetime | None = None, by: str = "") -> dict[str, Any] | None:
        """Send ``cost`` (the total so far) of transaction ``transaction_id``; the station's
        answer, or None when it gets no running cost (:meth:`sends_to`). Raises what
        ``CommandService.send`` raises, ``OperationError`` for a transaction id the version
        cannot carry."""
        if not self.sends_to(station_id):
            return None
        calls = known_calls(self.commands.version_of(station_id))
        assert calls is not None  # sends_to checked it
        call = calls.running_cost(transaction_id=transaction_id, cost=cost, meter_wh=meter_wh, at=at or utcnow(),
                                  charging=charging)
        return call.outcome(await self.commands.send(station_id, call.action, call.payload, requested_by=by))
