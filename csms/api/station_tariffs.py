"""The tariffs an OCPP 2.1 station calculates costs with, over REST (an earlier version answers
409 ``NotSupported``): set the default tariff, ask the station what it holds, clear, and change
a running transaction's tariff. Without a ``tariff`` in the body the ``station_tariff`` hook's
(the billing plugin's) is sent. And the fallback tariff texts of a 2.0.1 or 2.1 station."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get, post

from csms.api.auth import caller, require
from csms.api.bounds import Int32
from csms.api.stations import run_command
from csms.core.runtime import get_core


class DefaultTariffBody(msgspec.Struct, forbid_unknown_fields=True):
    evse_id: Int32 = 0  # 0: every EVSE of the station
    tariff: dict[str, Any] | None = None  # an OCPP 2.1 TariffType; none: the station_tariff hook's


class ClearTariffsBody(msgspec.Struct, forbid_unknown_fields=True):
    tariff_ids: list[str] | None = None  # none: every tariff
    evse_id: Int32 | None = None  # none: at every EVSE


class TransactionTariffBody(msgspec.Struct, forbid_unknown_fields=True):
    transaction_id: str
    tariff: dict[str, Any] | None = None  # none: the station_tariff hook's for the transaction's EVSE


class FallbackTextsBody(msgspec.Struct, forbid_unknown_fields=True):
    tariff_message: str | None = None  # none: the tariff_message hook's text for a driver without a contract
    total_cost_message: str | None = None  # none: the total_cost_fallback_message setting


class StationTariffController(Controller):
    path = "/stations/{station_id:str}/tariffs"
    tags = ["stations"]
    opt = {"tenant": {"station_id": "station"}}

    @get("/", guards=[require("viewer")])
    async def station_tariffs(self, request: Request, station_id: str, evse_id: Int32 = 0) -> dict[str, Any]:
        """GetTariffs: the tariffs the station holds (at ``evse_id``; 0: all), as it answers."""
        return await run_command(get_core().station_tariffs.tariffs(station_id, evse_id=evse_id,
                                                                    by=caller(request)))

    @post("/default", guards=[require("operator")])
    async def set_default_tariff(self, request: Request, station_id: str, data: DefaultTariffBody) -> dict[str, Any]:
        """SetDefaultTariff; the station's answer and the tariff sent."""
        return await run_command(get_core().station_tariffs.set_default(
            station_id, evse_id=data.evse_id, tariff=data.tariff, by=caller(request)))

    @post("/clear", guards=[require("operator")])
    async def clear_tariffs(self, request: Request, station_id: str, data: ClearTariffsBody) -> dict[str, Any]:
        """ClearTariffs; the station's answer per tariff (``results``)."""
        return await run_command(get_core().station_tariffs.clear(
            station_id, tariff_ids=data.tariff_ids, evse_id=data.evse_id, by=caller(request)))

    @post("/transaction", guards=[require("operator")])
    async def change_transaction_tariff(self, request: Request, station_id: str,
                                        data: TransactionTariffBody) -> dict[str, Any]:
        """ChangeTransactionTariff of a running transaction; the station's answer and the tariff sent."""
        return await run_command(get_core().station_tariffs.change_for_transaction(
            station_id, transaction_id=data.transaction_id, tariff=data.tariff, by=caller(request)))

    @post("/fallback", guards=[require("operator")])
    async def send_fallback_texts(self, request: Request, station_id: str, data: FallbackTextsBody) -> dict[str, Any]:
        """The texts a 2.0.1/2.1 station shows when it cannot reach the CSMS (I04, I05), set now
        with SetVariables: ``TariffCostCtrlr.TariffFallbackMessage`` (the tariff) and
        ``TotalCostFallbackMessage`` (instead of a total cost). Per text (``tariff``,
        ``total_cost``) the station's answer; 1.6: 409 ``NotSupported``; no text at all: 400."""
        return {"results": await run_command(get_core().tariff_fallback.send(
            station_id, tariff=data.tariff_message, total_cost=data.total_cost_message, by=caller(request)))}
