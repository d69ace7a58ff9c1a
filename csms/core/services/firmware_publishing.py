"""Firmware published by a local controller (OCPP 2.0.1 L03/L04, 2.1 the same): the controller
downloads the firmware once and serves it to the stations behind it, so that their own
UpdateFirmware can point at it.

``publish`` sends ``PublishFirmware`` (the file's location and MD5 checksum); the controller
tells how it goes in ``PublishFirmwareStatusNotification``s, stored in its event log (category
``firmware_publish``; when ``Published`` with the locations it serves the file at).
``unpublish`` sends ``UnpublishFirmware``. OCPP 1.6 has neither (``NotSupported``)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from csms.core.ocpp.outbound import calls_for
from csms.core.ocpp.outbound.calls import OperationError, StationCalls
from csms.core.services.commands import UnknownStation
from csms.core.services.operations import NotSupported
from csms.core.tables import Station
from csms.i18n import N_

if TYPE_CHECKING:
    from csms.core.services.commands import CommandService

MD5_HEX = re.compile(r"[0-9a-fA-F]{32}")
MAX_LOCATION = 512  # PublishFirmwareRequest.location


def _checksum(checksum: str) -> str:
    if not MD5_HEX.fullmatch(checksum):
        raise OperationError(N_("checksum must be the file's MD5 as 32 hexadecimal digits"))
    return checksum.lower()


async def _connected_calls(commands: CommandService, station_id: str) -> StationCalls:
    if not await Station.exists().where(Station.station_id == station_id):
        raise UnknownStation(station_id)
    return calls_for(commands.live_version(station_id))


async def publish(commands: CommandService, station_id: str, *, location: str, checksum: str,
                  retries: int | None = None, retry_interval_s: int | None = None, by: str = "") -> dict[str, Any]:
    """PublishFirmware; the controller's answer with the ``request_id`` of its notifications."""
    if not location.strip() or len(location) > MAX_LOCATION:
        raise OperationError(N_("location must be 1 to %(maximum)s characters"), maximum=MAX_LOCATION)
    for name, value in (("retries", retries), ("retry_interval_s", retry_interval_s)):
        if value is not None and value < 0:
            raise OperationError(N_("%(name)s must be 0 or more"), name=name)
    checksum = _checksum(checksum)
    calls = await _connected_calls(commands, station_id)
    try:
        call = calls.publish_firmware(location=location, checksum=checksum, retries=retries,
                                      retry_interval_s=retry_interval_s)
    except OperationError as exc:  # the version has no such call
        raise NotSupported(str(exc)) from None
    return call.outcome(await commands.send(station_id, call.action, call.payload, requested_by=by))


async def unpublish(commands: CommandService, station_id: str, *, checksum: str, by: str = "") -> dict[str, Any]:
    """UnpublishFirmware; the controller's answer (``Unpublished``, ``NoFirmware`` or
    ``DownloadOngoing``)."""
    checksum = _checksum(checksum)
    calls = await _connected_calls(commands, station_id)
    try:
        call = calls.unpublish_firmware(checksum=checksum)
    except OperationError as exc:
        raise NotSupported(str(exc)) from None
    return call.outcome(await commands.send(station_id, call.action, call.payload, requested_by=by))
