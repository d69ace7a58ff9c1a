"""L01/L02 Secure firmware update over REST: the install time (OCTT TC_L_02 via tzi-OCTT)."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from csms.testing.stations import Station201, station


class Updater(Station201):
    received: list[dict[str, Any]]

    @on(Action.update_firmware)
    async def on_update_firmware(self, request_id, firmware, **kwargs):
        self.received.append(firmware)
        return call_result.UpdateFirmware(status="Accepted")


async def test_firmware_update_with_an_install_time(server):
    """``install_at`` goes out as firmware.installDateTime (the station downloads at
    ``retrieve_at`` and installs later, L01 InstallScheduled); without it none is sent; an install
    time before the download is a 400 and nothing is sent."""
    async with station(server, "FW-L02", "2.0.1", cls=Updater) as cp:
        cp.received = []
        body = {"location": "https://fw.example.org/v3.bin", "retrieve_at": "2030-01-01T10:00:00Z",
                "signing_certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
                "signature": "c2lnbmF0dXJl"}
        r = await server.api.post("/stations/FW-L02/firmware", json={**body, "install_at": "2030-01-01T12:00:00Z"})
        assert r.status_code == 201, r.text
        assert r.json()["request_id"] is not None
        assert cp.received[-1]["install_date_time"] == "2030-01-01T12:00:00.000Z"
        assert cp.received[-1]["retrieve_date_time"] == "2030-01-01T10:00:00.000Z"
        r = await server.api.post("/stations/FW-L02/firmware", json=body)
        assert r.status_code == 201 and "install_date_time" not in cp.received[-1]
        r = await server.api.post("/stations/FW-L02/firmware", json={**body, "install_at": "2030-01-01T09:00:00Z"})
        assert r.status_code == 400 and "install_at" in r.json()["detail"]
        assert len(cp.received) == 2
