"""Stations for the stationops tests, built on the ``ocpp`` library's ChargePoint.

They behave like real stations where it matters here: an update makes them download the image
over HTTP from the URL they were given, report each step, then reboot with the new version;
a diagnostics request makes them upload a file over HTTP to the URL they were given. They can
be told to fail an update step (``fail_with``) a number of times.
"""

from __future__ import annotations

import asyncio
import hashlib
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any, AsyncIterator

import httpx
import websockets
from websockets.typing import Subprotocol
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201


def now_iso() -> str:
    dt = datetime.now(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class Behaviour:
    """What a test station does; shared by both versions."""

    version: str
    firmware_version: str
    received: list[tuple[str, dict[str, Any]]]
    fail_with: str | None  # a FirmwareStatus to report instead of going on (e.g. "DownloadFailed")
    failures_left: int
    downloaded: list[str]  # sha256 of each image downloaded
    diagnostics_body: bytes
    next_version: str  # the version it boots with after an update
    id: str  # the station's identity (set by the ChargePoint it is mixed into)

    def setup(self, firmware_version: str) -> None:
        self.firmware_version = firmware_version
        self.next_version = firmware_version
        self.received = []
        self.fail_with = None
        self.failures_left = 0
        self.downloaded = []
        self.diagnostics_body = b"diagnostics of " + self.id.encode() + b"\n" * 3 + bytes(range(256))
        self._tasks: set[asyncio.Task[Any]] = set()
        self.statuses_sent: list[str] = []
        # 2.0.1 GetTransactionStatus: the transactions this station runs, and those it has queued messages of
        self.ongoing: set[str] = set()
        self.queued: set[str] = set()
        # ReserveNow / CancelReservation: the reservations held (id → request), the answer to give
        self.reservations: dict[int, dict[str, Any]] = {}
        self.reserve_answer = "Accepted"

    def reserve(self, reservation_id: int, request: dict[str, Any]) -> str:
        self.received.append(("ReserveNow", request))
        if self.reserve_answer == "Accepted":
            self.reservations[reservation_id] = request
        return self.reserve_answer

    def cancel_reservation(self, reservation_id: int) -> str:
        self.received.append(("CancelReservation", {"reservation_id": reservation_id}))
        return "Accepted" if self.reservations.pop(reservation_id, None) is not None else "Rejected"

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def boot(self, reason: str = "PowerUp") -> Any:
        raise NotImplementedError

    async def firmware_status(self, status: str, request_id: int | None, signed: bool) -> None:
        raise NotImplementedError

    async def run_update(self, location: str, request_id: int | None, signed: bool) -> None:
        await asyncio.sleep(0.05)
        failing = self.fail_with is not None and self.failures_left > 0
        if failing:
            self.failures_left -= 1
        await self.firmware_status("Downloading", request_id, signed)
        if failing and self.fail_with == "DownloadFailed":
            await self.firmware_status("DownloadFailed", request_id, signed)
            return
        async with httpx.AsyncClient() as client:
            response = await client.get(location)
        if response.status_code != 200:
            await self.firmware_status("DownloadFailed", request_id, signed)
            return
        self.downloaded.append(hashlib.sha256(response.content).hexdigest())
        await self.firmware_status("Downloaded", request_id, signed)
        if failing and self.fail_with is not None:
            await self.firmware_status(self.fail_with, request_id, signed)
            return
        await self.firmware_status("Installing", request_id, signed)
        await self.firmware_status("Installed", request_id, signed)
        self.firmware_version = self.next_version
        await asyncio.sleep(0.05)
        await self.boot("FirmwareUpdate")

    async def upload(self, location: str, file_name: str, *, multipart: bool) -> None:
        async with httpx.AsyncClient() as client:
            if multipart:
                response = await client.post(location, files={"file": (file_name, self.diagnostics_body, "text/plain")})
            else:
                response = await client.put(f"{location}/{file_name}", content=self.diagnostics_body,
                                            headers={"Content-Type": "application/octet-stream"})
        response.raise_for_status()


class Station16(Behaviour, ChargePoint16):
    version = "1.6"

    async def boot(self, reason: str = "PowerUp") -> Any:
        return await self.call(call16.BootNotification(charge_point_vendor="TestVendor", charge_point_model="T16",
                                                       firmware_version=self.firmware_version))

    async def firmware_status(self, status: str, request_id: int | None, signed: bool) -> None:
        self.statuses_sent.append(status)
        if signed:
            await self.call(call16.SignedFirmwareStatusNotification(status=status, request_id=request_id))
        else:
            await self.call(call16.FirmwareStatusNotification(status=status))

    @on(Action16.update_firmware)
    async def on_update_firmware(self, location, retrieve_date, **kwargs):
        self.received.append(("UpdateFirmware", {"location": location}))
        return result16.UpdateFirmware()

    @after(Action16.update_firmware)
    async def after_update_firmware(self, location, retrieve_date, **kwargs):
        self.spawn(self.run_update(location, None, False))

    @on(Action16.signed_update_firmware)
    async def on_signed_update_firmware(self, request_id, firmware, **kwargs):
        self.received.append(("SignedUpdateFirmware", {"request_id": request_id, "firmware": firmware}))
        return result16.SignedUpdateFirmware(status="Accepted")

    @after(Action16.signed_update_firmware)
    async def after_signed_update_firmware(self, request_id, firmware, **kwargs):
        self.spawn(self.run_update(firmware["location"], request_id, True))

    @on(Action16.get_diagnostics)
    async def on_get_diagnostics(self, location, **kwargs):
        self.received.append(("GetDiagnostics", {"location": location}))
        return result16.GetDiagnostics(file_name=f"diag-{self.id}.log")

    @after(Action16.get_diagnostics)
    async def after_get_diagnostics(self, location, **kwargs):
        async def steps() -> None:
            await self.call(call16.DiagnosticsStatusNotification(status="Uploading"))
            await self.upload(location, f"diag-{self.id}.log", multipart=True)
            await self.call(call16.DiagnosticsStatusNotification(status="Uploaded"))

        self.spawn(steps())

    @on(Action16.reserve_now)
    async def on_reserve_now(self, connector_id, expiry_date, id_tag, reservation_id, parent_id_tag=None, **kwargs):
        status = self.reserve(reservation_id, {"connector_id": connector_id, "expiry_date": expiry_date, "id_tag": id_tag,
                               "reservation_id": reservation_id, "parent_id_tag": parent_id_tag})
        return result16.ReserveNow(status=status)

    @on(Action16.cancel_reservation)
    async def on_cancel_reservation(self, reservation_id, **kwargs):
        return result16.CancelReservation(status=self.cancel_reservation(reservation_id))

    async def start_session(self, token: str, *, reservation_id: int | None = None) -> int:
        await self.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))
        result = await self.call(call16.StartTransaction(connector_id=1, id_tag=token, meter_start=1000,
                                                         timestamp=now_iso(), reservation_id=reservation_id))
        self.reservations.pop(reservation_id or 0, None)
        return result.transaction_id

    async def stop_session(self, transaction_id: int) -> None:
        await self.call(call16.StopTransaction(meter_stop=5000, timestamp=now_iso(), transaction_id=transaction_id))


class Station201(Behaviour, ChargePoint201):
    version = "2.0.1"

    async def boot(self, reason: str = "PowerUp") -> Any:
        return await self.call(call201.BootNotification(
            charging_station={"vendorName": "TestVendor", "model": "T201", "firmwareVersion": self.firmware_version},
            reason=reason))

    async def firmware_status(self, status: str, request_id: int | None, signed: bool) -> None:
        self.statuses_sent.append(status)
        await self.call(call201.FirmwareStatusNotification(status=status, request_id=request_id))

    @on(Action201.update_firmware)
    async def on_update_firmware(self, request_id, firmware, **kwargs):
        self.received.append(("UpdateFirmware", {"request_id": request_id, "firmware": firmware}))
        return result201.UpdateFirmware(status="Accepted")

    @after(Action201.update_firmware)
    async def after_update_firmware(self, request_id, firmware, **kwargs):
        self.spawn(self.run_update(firmware["location"], request_id, "signature" in firmware))

    @on(Action201.get_log)
    async def on_get_log(self, log, log_type, request_id, **kwargs):
        self.received.append(("GetLog", {"log": log, "request_id": request_id}))
        return result201.GetLog(status="Accepted", filename=f"log-{self.id}.txt")

    @after(Action201.get_log)
    async def after_get_log(self, log, log_type, request_id, **kwargs):
        async def steps() -> None:
            await self.call(call201.LogStatusNotification(status="Uploading", request_id=request_id))
            await self.upload(log["remote_location"], f"log-{self.id}.txt", multipart=False)
            await self.call(call201.LogStatusNotification(status="Uploaded", request_id=request_id))

        self.spawn(steps())

    @on(Action201.get_transaction_status)
    async def on_get_transaction_status(self, transaction_id=None, **kwargs):
        self.received.append(("GetTransactionStatus", {"transaction_id": transaction_id}))
        if transaction_id is None:
            return result201.GetTransactionStatus(messages_in_queue=bool(self.queued))
        return result201.GetTransactionStatus(messages_in_queue=transaction_id in self.queued,
                                              ongoing_indicator=transaction_id in self.ongoing)

    @on(Action201.reserve_now)
    async def on_reserve_now(self, id, expiry_date_time, id_token, **kwargs):
        return result201.ReserveNow(status=self.reserve(id, {"id": id, "expiry_date_time": expiry_date_time,
                                                             "id_token": id_token, **kwargs}))

    @on(Action201.cancel_reservation)
    async def on_cancel_reservation(self, reservation_id, **kwargs):
        return result201.CancelReservation(status=self.cancel_reservation(reservation_id))

    async def reservation_status(self, reservation_id: int, status: str) -> None:
        """ReservationStatusUpdate (``Expired`` or ``Removed``): the station let the reservation go."""
        self.reservations.pop(reservation_id, None)
        await self.call(call201.ReservationStatusUpdate(reservation_id=reservation_id,
                                                        reservation_update_status=status))

    async def start_session(self, token: str, *, reservation_id: int | None = None,
                            transaction_id: str | None = None) -> str:
        tx = transaction_id or f"tx-{self.id}"
        self.ongoing.add(tx)
        await self.call(call201.TransactionEvent(
            event_type="Started", timestamp=now_iso(), trigger_reason="Authorized", seq_no=0,
            transaction_info={"transactionId": tx}, id_token={"idToken": token, "type": "ISO14443"},
            evse={"id": 1, "connectorId": 1}, reservation_id=reservation_id))
        self.reservations.pop(reservation_id or 0, None)
        return tx

    async def stop_session(self, transaction_id: str) -> None:
        self.ongoing.discard(transaction_id)
        await self.call(call201.TransactionEvent(
            event_type="Ended", timestamp=now_iso(), trigger_reason="StopAuthorized", seq_no=1,
            transaction_info={"transactionId": transaction_id, "stoppedReason": "Local"}))


@asynccontextmanager
async def station(srv: Any, station_id: str, version: str, *, firmware: str = "1.0",
                  boot: bool = True, cls: type | None = None) -> AsyncIterator[Any]:
    """A test station of ``version`` with its receive loop running, booted unless ``boot`` is
    false; ``cls``: a subclass of :class:`Station16` / :class:`Station201` that answers more."""
    subprotocol = Subprotocol("ocpp1.6" if version == "1.6" else "ocpp2.0.1")
    async with websockets.connect(srv.ws_url(station_id), subprotocols=[subprotocol]) as ws:
        cp: Any = (cls or (Station16 if version == "1.6" else Station201))(station_id, ws)
        cp.setup(firmware)
        task = asyncio.create_task(cp.start())
        try:
            if boot:
                await cp.boot()
            yield cp
        finally:
            task.cancel()
