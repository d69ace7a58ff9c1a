"""The station page of an OCPP 2.1 station: its version is shown, and its actions (the 2.0.1
ones, which 2.1 keeps) reach it as 2.1 frames, checked by the ``ocpp`` library's ``ocpp.v21``
ChargePoint against the 2.1 schemas."""

from __future__ import annotations

import asyncio
from typing import Any

import websockets
from ocpp.routing import on
from ocpp.v21 import ChargePoint, call, call_result
from ocpp.v21.enums import Action
from playwright.async_api import expect

from tests.admin.conftest import screenshot


class Station21(ChargePoint):
    asked: list[tuple[str, dict[str, Any]]]

    @on(Action.reset)
    async def on_reset(self, type, **kwargs):
        self.asked.append(("Reset", {"type": type, **kwargs}))
        return call_result.Reset(status="Accepted")

    @on(Action.trigger_message)
    async def on_trigger_message(self, requested_message, **kwargs):
        self.asked.append(("TriggerMessage", {"requested_message": requested_message, **kwargs}))
        return call_result.TriggerMessage(status="Accepted")


async def test_station_page_of_a_21_station(page_as, server):
    page = await page_as("operator")
    async with websockets.connect(server.ws_url("ADM21"), subprotocols=["ocpp2.1"]) as ws:
        cp = Station21("ADM21", ws)
        cp.asked = []
        task = asyncio.create_task(cp.start())
        try:
            await cp.call(call.BootNotification(charging_station={"vendor_name": "Acme", "model": "V2X-21"},
                                                reason="PowerUp"))
            await page.goto("/admin/stations/ADM21")
            await expect(page.locator("main")).to_contain_text("OCPP 2.1")
            result = page.locator("#action-result .outcome")

            trigger = page.locator("details", has_text="Trigger message")
            await trigger.locator("summary").click()
            await trigger.get_by_label("Message").select_option("TransactionEvent")
            await trigger.get_by_label("EVSE (optional)").fill("1")
            await trigger.get_by_role("button", name="Trigger").click()
            await expect(result).to_have_attribute("data-outcome", "ok")

            reset = page.locator("details", has_text="Reset")
            await reset.locator("summary").click()
            page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
            await reset.get_by_role("button", name="Reset station").click()
            await expect(result).to_contain_text("Reset: the station answered Accepted.")
            await screenshot(page, "station-ocpp-21")
        finally:
            task.cancel()
    assert [a for a, _ in cp.asked] == ["TriggerMessage", "Reset"]
    assert cp.asked[0][1] == {"requested_message": "TransactionEvent", "evse": {"id": 1}}
    assert cp.asked[1][1] == {"type": "OnIdle"}  # the default kind, soft
