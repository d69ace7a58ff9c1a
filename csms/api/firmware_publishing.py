"""A local controller's firmware publishing over REST (OCPP 2.0.1 L03/L04; a 1.6 station answers
409 ``NotSupported``). The controller's PublishFirmwareStatusNotifications are in its event log
(``GET /stations/{id}/events?category=firmware_publish``)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, post

from csms.api.auth import caller, require
from csms.api.bounds import Int32
from csms.api.stations import run_command
from csms.core.runtime import get_core
from csms.core.services import firmware_publishing


class PublishBody(msgspec.Struct, forbid_unknown_fields=True):
    location: str  # where the controller downloads the firmware from
    checksum: str  # the file's MD5, 32 hexadecimal digits
    retries: Int32 | None = None  # download attempts (the controller's default when absent)
    retry_interval_s: Int32 | None = None  # seconds between them


class UnpublishBody(msgspec.Struct, forbid_unknown_fields=True):
    checksum: str


class FirmwarePublishingController(Controller):
    path = "/stations/{station_id:str}/firmware"
    tags = ["stations"]
    opt = {"tenant": {"station_id": "station"}}

    @post("/publish", guards=[require("operator")])
    async def publish_firmware(self, request: Request, station_id: str, data: PublishBody) -> dict[str, Any]:
        """PublishFirmware to a local controller; its answer and the ``request_id`` its
        PublishFirmwareStatusNotifications carry."""
        return await run_command(firmware_publishing.publish(
            get_core().commands, station_id, location=data.location, checksum=data.checksum, retries=data.retries,
            retry_interval_s=data.retry_interval_s, by=caller(request)))

    @post("/unpublish", guards=[require("operator")])
    async def unpublish_firmware(self, request: Request, station_id: str, data: UnpublishBody) -> dict[str, Any]:
        """UnpublishFirmware; the controller's answer (Unpublished, NoFirmware, DownloadOngoing)."""
        return await run_command(firmware_publishing.unpublish(get_core().commands, station_id,
                                                               checksum=data.checksum, by=caller(request)))
