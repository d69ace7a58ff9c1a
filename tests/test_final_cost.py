"""OCPP 2.0.1 I02: the answer to a transaction's ``Ended`` event carries its final cost
(``totalCost``, incl. VAT) from the ``price_session`` hook, bounded in time; without pricing, or
when pricing is slow or fails, the station is answered without it."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any, AsyncIterator

import pytest
import websockets
from ocpp.routing import on
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import call as call201

from csms.plugin_api import SessionCost, hookimpl
from csms.testing import pm, running_server
from csms.testing.stations import Station16, now_iso, station
from tests.test_ocpp_rpc_strict import create_token, node_station, strict_station  # noqa: F401 (fixture)


class FlatPricing:
    """A throwaway pricing plugin: 0.40 per kWh plus 21 % VAT."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    @hookimpl(tryfirst=True)
    def price_session(self, session, final):
        self.calls.append((session["state"], final))
        kwh = Decimal(str(session["energy_wh"] or 0)) / 1000
        net = (kwh * Decimal("0.40")).quantize(Decimal("0.01"))
        return SessionCost("EUR", net, (net * Decimal("1.21")).quantize(Decimal("0.01")), final=final)


class SlowPricing:
    @hookimpl(tryfirst=True)
    def price_session(self, session, final):
        async def price():
            await asyncio.sleep(30)
            return SessionCost("EUR", Decimal("1"), Decimal("1.21"), final=final)

        return price


class BrokenPricing:
    @hookimpl(tryfirst=True)
    def price_session(self, session, final):
        raise RuntimeError("tariff database down")


@pytest.fixture
def register():
    names: list[str] = []

    def add(plugin):
        name = f"test-pricing-{len(names)}"
        pm.register(plugin, name=name)
        names.append(name)
        return plugin

    yield add
    for name in names:
        pm.unregister(name=name)


async def run_session(cp, tx: str):
    """Started at 10 kWh, Updated, Ended at 20 kWh; the answers to Updated and Ended."""
    await cp.call(call201.TransactionEvent(
        event_type="Started", timestamp=now_iso(), trigger_reason="Authorized", seq_no=0,
        transaction_info={"transactionId": tx, "chargingState": "Charging"},
        evse={"id": 1, "connectorId": 1},
        meter_value=[{"timestamp": now_iso(), "sampledValue": [{"value": 10000.0}]}]))
    updated = await cp.call(call201.TransactionEvent(
        event_type="Updated", timestamp=now_iso(), trigger_reason="MeterValuePeriodic", seq_no=1,
        transaction_info={"transactionId": tx, "chargingState": "Charging"},
        meter_value=[{"timestamp": now_iso(), "sampledValue": [{"value": 15000.0}]}]))
    ended = await cp.call(call201.TransactionEvent(
        event_type="Ended", timestamp=now_iso(), trigger_reason="EVDeparted", seq_no=2,
        transaction_info={"transactionId": tx, "stoppedReason": "EVDisconnected"},
        meter_value=[{"timestamp": now_iso(), "sampledValue": [{"value": 20000.0}]}]))
    return updated, ended


async def test_ended_answer_carries_the_final_cost(server, register):
    pricing = register(FlatPricing())
    async with station(server, "COST1", "2.0.1") as cp:
        updated, ended = await run_session(cp, "tx-cost-1")
        assert updated.total_cost is None  # the running cost is CostUpdated's, not the Updated answer's
        assert ended.total_cost == 4.84  # 10 kWh x 0.40 + 21 % VAT
        # a replayed Ended is answered the same way
        again = await cp.call(call201.TransactionEvent(
            event_type="Ended", timestamp=now_iso(), trigger_reason="EVDeparted", seq_no=2,
            transaction_info={"transactionId": "tx-cost-1", "stoppedReason": "EVDisconnected"}))
        assert again.total_cost == 4.84
    assert ("completed", True) in pricing.calls
    assert ("active", False) not in pricing.calls  # no pricing on the hot path


async def test_no_pricing_no_total_cost(server):
    async with station(server, "COST2", "2.0.1") as cp:
        _, ended = await run_session(cp, "tx-cost-2")
        assert ended.total_cost is None


@pytest.mark.parametrize("plugin", [SlowPricing, BrokenPricing])
async def test_slow_or_failing_pricing_answers_without_total_cost(tmp_path, register, plugin):
    register(plugin())
    async with running_server(tmp_path, unknown_stations="accept", final_cost_timeout=0.5) as srv:
        async with station(srv, "COST3", "2.0.1") as cp:
            started = time.monotonic()
            _, ended = await run_session(cp, "tx-cost-3")
            assert time.monotonic() - started < 10  # well under the 30 s the slow pricing takes
            assert ended.total_cost is None
        sessions = (await srv.api.get("/sessions", params={"station": "COST3"})).json()["items"]
        assert [s["state"] for s in sessions] == ["completed"]


async def test_strict_station_validates_total_cost(server, node_station, register):
    """The ocpp-rpc strict station checks the answer with totalCost against the official schema."""
    register(FlatPricing())
    await create_token(server, "COST4-TAG")
    async with strict_station(node_station, server, "COST4", "ocpp2.0.1", token="COST4-TAG") as st:
        await st.wait_event("walk_done", timeout=60)
        rc = await st.wait_exit(30)
        st.assert_clean_exit(rc)
    answers = st.find_all(lambda e: e.get("event") == "answer" and e["action"] == "TransactionEvent")
    (ended,) = [a for a in answers if a["params"]["eventType"] == "Ended"]
    (row,) = (await server.api.get("/sessions", params={"station": "COST4"})).json()["items"]
    net = (Decimal(str(row["energy_wh"])) / 1000 * Decimal("0.40")).quantize(Decimal("0.01"))
    assert ended["payload"]["totalCost"] == float((net * Decimal("1.21")).quantize(Decimal("0.01")))
    assert all("totalCost" not in a["payload"] for a in answers if a["params"]["eventType"] != "Ended")


async def test_strict_station_without_pricing_gets_no_total_cost(server, node_station):
    await create_token(server, "COST5-TAG")
    async with strict_station(node_station, server, "COST5", "ocpp2.0.1", token="COST5-TAG") as st:
        await st.wait_event("walk_done", timeout=60)
        st.assert_clean_exit(await st.wait_exit(30))
    answers = st.find_all(lambda e: e.get("event") == "answer" and e["action"] == "TransactionEvent")
    assert answers and all("totalCost" not in a["payload"] for a in answers)


# ---------------------------------------------------------------------------------------------
# OCPP 1.6: California Pricing FinalCost in a DataTransfer after StopTransaction (off by default)


class CostDisplay16(Station16):
    """A 1.6 station that takes California Pricing messages and keeps what it was sent."""

    def setup(self, firmware_version: str) -> None:
        super().setup(firmware_version)
        self.cost_messages: list[dict[str, Any]] = []

    @on(Action16.data_transfer)
    async def on_data_transfer(self, vendor_id, message_id=None, data=None, **kwargs):
        if vendor_id != "org.openchargealliance.costmsg":
            return result16.DataTransfer(status="UnknownVendorId")
        self.cost_messages.append({"message_id": message_id, "data": json.loads(data)})
        return result16.DataTransfer(status="Accepted")


@asynccontextmanager
async def cost_display_16(srv: Any, station_id: str) -> AsyncIterator[CostDisplay16]:
    async with websockets.connect(srv.ws_url(station_id), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        cp = CostDisplay16(station_id, ws)
        cp.setup("1.0")
        task = asyncio.create_task(cp.start())
        try:
            await cp.boot()
            yield cp
        finally:
            task.cancel()


async def wait_until(check: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{check} not met within {timeout} s")


async def test_ocpp16_final_cost_data_transfer(tmp_path, register):
    register(FlatPricing())
    async with running_server(tmp_path, unknown_stations="accept", final_cost_data_transfer=True) as srv:
        async with cost_display_16(srv, "COST16") as cp:
            tx = await cp.start_session("COST16-TAG")
            await cp.stop_session(tx)  # 1000 -> 5000 Wh: 4 kWh x 0.40 + 21 % VAT
            await wait_until(lambda: cp.cost_messages)
            assert cp.cost_messages == [{"message_id": "FinalCost", "data": {
                "transactionId": tx, "cost": 1.94, "priceText": "Total 1.94 EUR incl. VAT"}}]


async def test_ocpp16_no_final_cost_data_transfer_by_default(server, register):
    register(FlatPricing())
    async with cost_display_16(server, "COST16B") as cp:
        tx = await cp.start_session("COST16B-TAG")
        await cp.stop_session(tx)
        await server.core.events.drain()
        await asyncio.sleep(0.3)
        assert cp.cost_messages == []


async def test_strict_ocpp16_station_takes_the_final_cost_data_transfer(tmp_path, node_station, register):
    register(FlatPricing())
    async with running_server(tmp_path, unknown_stations="accept", final_cost_data_transfer=True) as srv:
        await create_token(srv, "COST6-TAG")
        async with strict_station(node_station, srv, "COST6", "ocpp1.6", token="COST6-TAG", linger=30) as st:
            stopped = await st.wait_event("tx_stopped", timeout=60)
            call = await st.wait_for(lambda e: e.get("event") == "call" and e["action"] == "DataTransfer",
                                     what="the FinalCost DataTransfer")
            st.assert_clean_exit(await st.quit())
    assert call["params"]["vendorId"] == "org.openchargealliance.costmsg"
    assert call["params"]["messageId"] == "FinalCost"
    data = json.loads(call["params"]["data"])
    net = (Decimal(stopped["energyWh"]) / 1000 * Decimal("0.40")).quantize(Decimal("0.01"))
    assert data["transactionId"] == stopped["transactionId"]
    assert data["cost"] == float((net * Decimal("1.21")).quantize(Decimal("0.01")))
