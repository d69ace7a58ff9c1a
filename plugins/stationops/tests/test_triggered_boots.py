"""A BootNotification the CSMS asked for (TriggerMessage) is no reboot: it does not count towards
"booted N times in M minutes"."""

from __future__ import annotations

import asyncio
import json

import websockets

from csms.plugin_api import utcnow
from plugins.stationops.alerts import _repeated_reboots

BOOT201 = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "Acme"}}
RULE = {"kind": "repeated_reboots", "minutes": 60.0, "occurrences": 2, "station_id": "", "site": None}


async def rpc(ws, frame) -> list:
    await ws.send(json.dumps(frame))
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def triggered_boot(server, ws, station_id: str, uid: str) -> None:
    trigger = asyncio.create_task(server.core.operations.trigger(station_id, message="BootNotification"))
    call = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert call[2] == "TriggerMessage" and call[3]["requestedMessage"] == "BootNotification"
    await ws.send(json.dumps([3, call[1], {"status": "Accepted"}]))
    await trigger
    await rpc(ws, [2, uid, "BootNotification", {**BOOT201, "reason": "Triggered"}])


async def test_triggered_boots_do_not_count_as_reboots(server):
    async with websockets.connect(server.ws_url("TRIG1"), subprotocols=["ocpp2.0.1"]) as ws:
        await rpc(ws, [2, "own-1", "BootNotification", BOOT201])
        for n in range(3):
            await triggered_boot(server, ws, "TRIG1", f"asked-{n}")
        await server.core.writer.flush()
        assert await _repeated_reboots(RULE, utcnow()) == []  # one boot of its own, three asked for
        await rpc(ws, [2, "own-2", "BootNotification", BOOT201])
        await server.core.writer.flush()
        conditions = await _repeated_reboots(RULE, utcnow())
    assert [(c.station_id, c.details) for c in conditions] == [("TRIG1", {"boots": 2})]
    assert conditions[0].summary == "TRIG1 booted 2 times in 60 min"
