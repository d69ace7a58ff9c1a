"""A local controller's firmware publishing (OCPP 2.0.1 L03/L04) over REST, the controller being
the ``ocpp`` library's ChargePoint (which checks every frame we send against the schema)."""

from __future__ import annotations

import asyncio
from typing import Any

from ocpp.routing import after, on
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action

from csms.testing.stations import Station201, station
from tests.stations import connect

MD5 = "9e107d9d372bb6826bd81d3542a419d6"


class Controller(Station201):
    """Publishes what it is asked to and tells its progress; unpublishes what it published."""

    published: dict[str, str]

    @on(Action.publish_firmware)
    async def on_publish_firmware(self, location, checksum, request_id, **kwargs):
        self.published[checksum] = location
        return call_result.PublishFirmware(status="Accepted")

    @after(Action.publish_firmware)
    async def after_publish_firmware(self, location, checksum, request_id, **kwargs):
        await self.call(call.PublishFirmwareStatusNotification(status="Downloading", request_id=request_id))
        await self.call(call.PublishFirmwareStatusNotification(
            status="Published", request_id=request_id, location=["http://192.168.1.2/fw.bin"]))

    @on(Action.unpublish_firmware)
    async def on_unpublish_firmware(self, checksum, **kwargs):
        return call_result.UnpublishFirmware(status="Unpublished" if self.published.pop(checksum, None)
                                             else "NoFirmware")


async def test_publish_and_unpublish_firmware(server):
    api = server.api
    async with station(server, "LC1", "2.0.1", cls=Controller) as cp:
        cp.published = {}
        r = await api.post("/stations/LC1/firmware/publish", json={
            "location": "https://fw.example.org/v2.bin", "checksum": MD5.upper(), "retries": 3,
            "retry_interval_s": 60})
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "Accepted" and isinstance(r.json()["request_id"], int)
        assert cp.published == {MD5: "https://fw.example.org/v2.bin"}  # the checksum as OCPP writes it

        async def published() -> list[dict[str, Any]] | None:
            items = (await api.get("/stations/LC1/events", params={"category": "firmware_publish"})).json()["items"]
            return items if len(items) == 2 else None

        for _ in range(100):
            items = await published()
            if items:
                break
            await asyncio.sleep(0.05)
        assert sorted(e["kind"] for e in items) == ["Downloading", "Published"]

        for body, words in (({"location": "", "checksum": MD5}, "location"),
                            ({"location": "https://x", "checksum": "abc"}, "MD5"),
                            ({"location": "https://x", "checksum": MD5, "retries": -1}, "retries")):
            bad = await api.post("/stations/LC1/firmware/publish", json=body)
            assert bad.status_code == 400 and words in bad.json()["detail"], bad.text

        r = await api.post("/stations/LC1/firmware/unpublish", json={"checksum": MD5})
        assert r.status_code == 201 and r.json()["status"] == "Unpublished", r.text
        r = await api.post("/stations/LC1/firmware/unpublish", json={"checksum": MD5})
        assert r.json()["status"] == "NoFirmware"
        history = (await api.get("/stations/LC1/commands")).json()["items"]
        assert [h["action"] for h in history[:3]] == ["UnpublishFirmware", "UnpublishFirmware", "PublishFirmware"]
    await asyncio.sleep(0.2)
    offline = await api.post("/stations/LC1/firmware/unpublish", json={"checksum": MD5})
    assert offline.status_code == 409 and offline.json()["extra"]["error"] == "StationOffline"


async def test_a_16_station_has_no_firmware_publishing(server):
    async with connect(server.ws_url("LC16"), "LC16", version="1.6"):
        await asyncio.sleep(0.2)
        r = await server.api.post("/stations/LC16/firmware/publish",
                                  json={"location": "https://x/fw.bin", "checksum": MD5})
        assert r.status_code == 409 and r.json()["extra"]["error"] == "NotSupported", r.text
        assert "1.6" in r.json()["detail"]
