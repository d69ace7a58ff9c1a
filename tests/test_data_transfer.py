"""DataTransfer both ways (OCPP 2.0.1 P01/P02, 1.6 DataTransfer CS→CP and CP→CS): a plugin
answers the station's DataTransfer of its vendor through the ``data_transfer`` hook (first answer
wins; without one UnknownVendorId; a plugin that raises is skipped, a malformed answer is
Rejected; the event is stored either way), and ``POST /stations/{id}/data-transfer`` sends one,
to ``ocpp-rpc`` strict stations that check every frame (answers included) against the schemas."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from csms.plugin_api import hookimpl
from tests.test_final_cost import register  # noqa: F401 (fixture)
from tests.test_ocpp_21 import events
from tests.test_ocpp_rpc_strict import Commands, create_token, node_station, strict_station  # noqa: F401 (fixture)

VENDOR = "org.csms.strict"  # the strict station's vendor id (tests/node/strict_station.mjs)


class VendorPlugin:
    """Knows the strict station's vendor; ``com.boom`` makes it raise, ``com.odd`` answer nonsense."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None, Any, str]] = []

    @hookimpl
    def data_transfer(self, station_id, vendor_id, message_id, data, ocpp_version):
        self.asked.append((vendor_id, message_id, data, ocpp_version))
        if vendor_id == "com.boom":
            raise RuntimeError("the vendor's backend is down")
        if vendor_id == "com.odd":
            return {"status": "Maybe"}
        if vendor_id != VENDOR:
            return None
        if message_id != "hello":
            return "UnknownMessageId"

        async def answer() -> dict[str, Any]:
            return {"status": "Accepted", "data": {"greeting": "welcome", "echo": data}}

        return answer()


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_strict_station_data_transfer_both_ways(server, node_station, register, protocol):
    plugin = register(VendorPlugin())
    sid, tag = f"DT{protocol[4:].replace('.', '')}", f"DT-{protocol}"
    v16 = protocol == "ocpp1.6"
    await create_token(server, tag)
    async with strict_station(node_station, server, sid, protocol, token=tag, linger=60) as st:
        await st.wait_event("lingering", timeout=60)
        # the walk's DataTransfer to the CSMS, answered by the plugin (and checked by the station)
        (answer,) = [e for e in st.find_all(lambda e: e.get("event") == "answer" and e["action"] == "DataTransfer")]
        sent = {"text": "strict station"} if not v16 else "strict station"
        assert plugin.asked == [(VENDOR, "hello", sent, protocol[4:])]
        expected = {"greeting": "welcome", "echo": sent}
        assert answer["payload"] == {"status": "Accepted", "data": json.dumps(expected) if v16 else expected}

        # to the station: its answer and data come back
        cmd = Commands(server, st, sid)
        data = await cmd.send("POST", "/data-transfer", {"vendor_id": VENDOR, "message_id": "echo",
                                                         "data": {"n": 1}}, action="DataTransfer", status="Accepted")
        call = st.find(lambda e: e.get("event") == "call" and e["action"] == "DataTransfer")
        assert call["params"]["data"] == ('{"n": 1}' if v16 else {"n": 1})  # 1.6 takes text
        assert data["data"] == call["params"]["data"]
        await cmd.send("POST", "/data-transfer", {"vendor_id": "com.other"}, action="DataTransfer",
                       status="UnknownVendorId")
        await cmd.send("POST", "/data-transfer", {"vendor_id": VENDOR, "message_id": "nope"}, action="DataTransfer",
                       status="UnknownMessageId")
        for body in ({}, {"vendor_id": ""}, {"vendor_id": "v" * 256}, {"vendor_id": VENDOR, "message_id": "m" * 51},
                     {"vendor_id": VENDOR, "extra": 1}):
            await cmd.refused("POST", "/data-transfer", body, http=400)
        st.assert_clean_exit(await st.quit())
    stored = await events(server, sid, "data_transfer")
    assert [e["kind"] for e in stored] == [VENDOR]


async def test_a_failing_or_odd_plugin_still_gets_the_station_an_answer(server, register):
    plugin = register(VendorPlugin())
    async with websockets.connect(server.ws_url("DTRAW"), subprotocols=["ocpp2.0.1"]) as ws:

        async def rpc(action: str, payload: dict[str, Any]) -> list[Any]:
            await ws.send(json.dumps([2, f"m-{action}-{len(plugin.asked)}", action, payload]))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if frame[0] != 2:
                    return frame
                await ws.send(json.dumps([4, frame[1], "NotImplemented", "raw test station", {}]))

        boot = await rpc("BootNotification", {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}})
        assert boot[2]["status"] == "Accepted"
        assert (await rpc("DataTransfer", {"vendorId": "com.boom", "messageId": "x"}))[2] == {"status": "UnknownVendorId"}
        assert (await rpc("DataTransfer", {"vendorId": "com.odd"}))[2] == {"status": "Rejected"}
        assert (await rpc("DataTransfer", {"vendorId": "com.nobody", "data": [1, 2]}))[2] == {"status": "UnknownVendorId"}
    assert [a[0] for a in plugin.asked] == ["com.boom", "com.odd", "com.nobody"]
    stored = await events(server, "DTRAW", "data_transfer")
    assert sorted(e["kind"] for e in stored) == ["com.boom", "com.nobody", "com.odd"]
