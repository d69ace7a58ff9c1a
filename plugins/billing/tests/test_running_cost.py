"""The running cost to OCPP 1.6 stations: with the core's ``running_cost_data_transfer`` on, the
billing plugin's cost updates reach a 1.6 station (the ``ocpp`` library's ChargePoint, which
checks the frame against the 1.6 schema) as California Pricing ``RunningCost`` DataTransfers
during the transaction; off (the default), a 1.6 station gets none.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, AsyncIterator

import pytest
import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16

from plugins.billing.tests.helpers import Session, default_tariff, minutes_ago


class CostDisplay16(ChargePoint16):
    """Keeps the California Pricing messages it is sent."""

    cost_messages: list[dict[str, Any]]

    @on(Action16.data_transfer)
    async def on_data_transfer(self, vendor_id, message_id=None, data=None, **kwargs):
        if vendor_id != "org.openchargealliance.costmsg":
            return result16.DataTransfer(status="UnknownVendorId")
        self.cost_messages.append({"message_id": message_id, "data": json.loads(data)})
        return result16.DataTransfer(status="Accepted")


@asynccontextmanager
async def cost_display(srv: Any, station_id: str) -> AsyncIterator[CostDisplay16]:
    async with websockets.connect(srv.ws_url(station_id), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        cp = CostDisplay16(station_id, ws)
        cp.cost_messages = []
        task = asyncio.create_task(cp.start())
        try:
            await cp.call(call16.BootNotification(charge_point_vendor="Test", charge_point_model="Billing"))
            yield cp
        finally:
            task.cancel()


@pytest.fixture
def cost_updates(monkeypatch):
    monkeypatch.setenv("CSMS_BILLING_COST_UPDATES", "1")
    monkeypatch.setenv("CSMS_BILLING_COST_UPDATE_INTERVAL", "0")


async def test_running_cost_data_transfer_to_16_stations(server, cost_updates, monkeypatch):
    await default_tariff(server)
    started = minutes_ago(30)
    async with cost_display(server, "CP-RC16") as cp:
        s = Session(cp, "1.6", "CARD-RC")
        await s.start(started, 1000)
        await s.meter(started + timedelta(minutes=5), 3000)
        await server.core.events.drain()
        await asyncio.sleep(0.3)
        assert cp.cost_messages == []  # off by default
        assert server.core.running_costs.sends_to("CP-RC16") is False

        # the option on (the running server's settings; CSMS_RUNNING_COST_DATA_TRANSFER=1 at start)
        monkeypatch.setattr(server.core.settings, "running_cost_data_transfer", True)
        await s.meter(started + timedelta(minutes=10), 6000)  # 5 kWh: 1.50 + 1.00 fee, 21 % VAT
        for _ in range(200):
            if any(m["data"]["meterValue"] == 6000 for m in cp.cost_messages):
                break
            await asyncio.sleep(0.05)
        (message,) = [m for m in cp.cost_messages if m["data"]["meterValue"] == 6000]
        assert message["message_id"] == "RunningCost"
        data = message["data"]
        assert (data["transactionId"], data["cost"], data["state"]) == (s.transaction_id, 3.03, "Charging")
        assert data["timestamp"].endswith("Z")
        assert data["chargingPrice"]["kWhPrice"] == pytest.approx(0.363, abs=0.001)
        assert data["chargingPrice"]["flatFee"] == pytest.approx(1.21, abs=0.001)
        await s.stop(started + timedelta(minutes=20), 11000)
        await server.core.events.drain()
        await asyncio.sleep(0.2)
        assert [m["message_id"] for m in cp.cost_messages] == ["RunningCost"]  # none after the transaction
