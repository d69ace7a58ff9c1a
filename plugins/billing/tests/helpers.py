"""Stations and data for the billing tests: the ``ocpp`` library's ChargePoint over ``websockets``."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v21 import call_result as result21
from ocpp.v21.enums import Action as Action21

ENERGY = "Energy.Active.Import.Register"

#: 0.30/kWh and 1.00 per session, 21 % VAT: prices do not depend on time, so a test's totals are
#: exact: 10 kWh cost 4.00 excl. and 4.84 incl. VAT; 5 kWh 2.50 and 3.03 (3.025 rounded half-up).
FLAT_AND_ENERGY = {"id": "STD", "currency": "EUR", "elements": [{"price_components": [
    {"type": "ENERGY", "price": 0.30, "vat": 21, "step_size": 1},
    {"type": "FLAT", "price": 1.00, "vat": 21, "step_size": 1}]}]}


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def minutes_ago(n: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(minutes=n)


class Station201(ChargePoint201):
    """Records the CostUpdated messages the CSMS sends."""

    cost_updates: list[dict[str, Any]]

    @on(Action201.cost_updated)
    async def on_cost_updated(self, total_cost, transaction_id, **kwargs):
        self.cost_updates.append({"total_cost": total_cost, "transaction_id": transaction_id})
        return result201.CostUpdated()


class Station21(ChargePoint21):
    """An OCPP 2.1 station (the library's ``ocpp.v21``, checking frames against the 2.1 schemas);
    it takes the 2.0.1 messages :class:`Session` sends, which 2.1 keeps."""

    cost_updates: list[dict[str, Any]]

    @on(Action21.cost_updated)
    async def on_cost_updated(self, total_cost, transaction_id, **kwargs):
        self.cost_updates.append({"total_cost": total_cost, "transaction_id": transaction_id})
        return result21.CostUpdated()

    @on(Action21.set_default_tariff)
    async def on_set_default_tariff(self, evse_id, tariff, **kwargs):
        self.default_tariffs.append({"evse_id": evse_id, "tariff": tariff})
        return result21.SetDefaultTariff(status="Accepted")


STATIONS: dict[str, Any] = {"1.6": ChargePoint16, "2.0.1": Station201, "2.1": Station21}


@asynccontextmanager
async def station(srv: Any, station_id: str, version: str) -> AsyncIterator[Any]:
    """A booted station of ``version`` ("1.6", "2.0.1" or "2.1") with its receive loop running."""
    async with websockets.connect(srv.ws_url(station_id), subprotocols=[f"ocpp{version}"]) as ws:
        cp: Any = STATIONS[version](station_id, ws)
        cp.cost_updates = []
        cp.default_tariffs = []
        task = asyncio.create_task(cp.start())
        try:
            if version == "1.6":
                await cp.call(call16.BootNotification(charge_point_vendor="Test", charge_point_model="Billing"))
            else:
                await cp.call(call201.BootNotification(
                    charging_station={"vendorName": "Test", "model": "Billing"}, reason="PowerUp"))
            yield cp
        finally:
            task.cancel()


class Session:
    """Drives one transaction on a station of either version with chosen timestamps."""

    def __init__(self, cp: Any, version: str, token: str, *, evse: int = 1, tx: str = "tx-1") -> None:
        self.cp, self.version, self.token, self.evse, self.tx = cp, version, token, evse, tx
        self.seq = 0
        self.transaction_id: Any = None

    async def start(self, at: datetime, meter_wh: float | None) -> None:
        if self.version == "1.6":
            res = await self.cp.call(call16.StartTransaction(
                connector_id=self.evse, id_tag=self.token, meter_start=int(meter_wh or 0), timestamp=iso(at)))
            self.transaction_id = res.transaction_id
            return
        self.transaction_id = self.tx
        await self.cp.call(call201.TransactionEvent(
            event_type="Started", timestamp=iso(at), trigger_reason="Authorized", seq_no=self._seq(),
            transaction_info={"transactionId": self.tx, "chargingState": "Charging"},
            id_token={"idToken": self.token, "type": "ISO14443"}, evse={"id": self.evse, "connectorId": 1},
            meter_value=[_mv(at, meter_wh, "Transaction.Begin")] if meter_wh is not None else None))

    async def meter(self, at: datetime, wh: float) -> None:
        if self.version == "1.6":
            await self.cp.call(call16.MeterValues(connector_id=self.evse, transaction_id=self.transaction_id,
                                                  meter_value=[{"timestamp": iso(at), "sampledValue": [
                                                      {"value": str(wh), "measurand": ENERGY, "unit": "Wh"}]}]))
        else:
            await self.cp.call(call201.TransactionEvent(
                event_type="Updated", timestamp=iso(at), trigger_reason="MeterValuePeriodic", seq_no=self._seq(),
                transaction_info={"transactionId": self.tx}, meter_value=[_mv(at, wh, "Sample.Periodic")]))

    async def stop(self, at: datetime, meter_wh: float | None) -> None:
        if self.version == "1.6":
            await self.cp.call(call16.StopTransaction(transaction_id=self.transaction_id,
                                                      meter_stop=int(meter_wh or 0), timestamp=iso(at)))
            return
        await self.cp.call(call201.TransactionEvent(
            event_type="Ended", timestamp=iso(at), trigger_reason="StopAuthorized", seq_no=self._seq(),
            transaction_info={"transactionId": self.tx, "stoppedReason": "Local"},
            meter_value=[_mv(at, meter_wh, "Transaction.End")] if meter_wh is not None else None))

    def _seq(self) -> int:
        self.seq += 1
        return self.seq - 1


def _mv(at: datetime, wh: float, context: str) -> dict[str, Any]:
    return {"timestamp": iso(at), "sampledValue": [{"value": wh, "measurand": ENERGY, "context": context,
                                                    "unitOfMeasure": {"unit": "Wh"}}]}


async def session_id_of(srv: Any, station_id: str) -> int:
    items = (await srv.api.get("/sessions", params={"station": station_id})).json()["items"]
    return items[0]["id"]


async def settled(srv: Any, session_id: int, timeout: float = 10.0) -> dict[str, Any]:
    """The settlement of a session, waiting for the core's settlement task."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        r = await srv.api.get(f"/billing/settlements/{session_id}")
        if r.status_code == 200:
            return r.json()
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"session {session_id} was not settled: {r.text}")
        await asyncio.sleep(0.05)


async def create(srv: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await srv.api.post(path, json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def default_tariff(srv: Any, tariff: dict[str, Any] | None = None) -> dict[str, Any]:
    """The flat-and-energy tariff assigned to everyone everywhere."""
    t = await create(srv, "/billing/tariffs", tariff or FLAT_AND_ENERGY)
    await create(srv, "/billing/assignments", {"tariff": t["id"]})
    return t


def closed_day() -> dict[str, str]:
    """A statement period that has ended: the last 24 hours up to now."""
    return {"period_start": minutes_ago(24 * 60).isoformat(), "period_end": minutes_ago(0).isoformat()}
