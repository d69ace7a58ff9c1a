"""A small OCPP 2.0.1 station for the admin tests: the ``ocpp`` library's ChargePoint over
``websockets``. It accepts remote start/stop and then really charges: TransactionEvent
Started with meter values, a few Updated samples, and Ended when stopped."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any, AsyncIterator

import websockets
from ocpp.routing import after, on
from ocpp.v201 import ChargePoint, call, call_result


def now() -> str:
    t = datetime.now(timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


class SimStation(ChargePoint):
    """Answers what the admin sends; ``reset_answer`` sets its answer to Reset."""

    def __init__(self, station_id: str, ws: Any) -> None:
        super().__init__(station_id, ws, response_timeout=15)
        self.transaction_id: str | None = None
        self.evse_id = 1
        self.seq = 0
        self.meter_wh = 12_000.0
        self.reset_answer = "Accepted"
        self.charging: asyncio.Task[None] | None = None
        self.events: list[str] = []
        self.last_boot_status = ""

    # -- what the station says ------------------------------------------------------------------

    async def boot(self) -> str:
        answer = await self.call(call.BootNotification(
            charging_station={"vendor_name": "AdminTest", "model": "AT-22", "serial_number": "SN-1",
                              "firmware_version": "1.2.3"}, reason="PowerUp"))
        self.last_boot_status = answer.status
        return answer.status

    async def status(self, status: str, evse_id: int = 1) -> None:
        await self.call(call.StatusNotification(timestamp=now(), connector_status=status, evse_id=evse_id,
                                                connector_id=1))

    def _meter(self, power_w: float) -> list[dict[str, Any]]:
        amps = power_w / 3 / 230
        return [{"timestamp": now(), "sampled_value": [
            {"value": self.meter_wh, "measurand": "Energy.Active.Import.Register", "unit_of_measure": {"unit": "Wh"}},
            {"value": power_w, "measurand": "Power.Active.Import", "unit_of_measure": {"unit": "W"}},
            *[{"value": round(amps, 2), "measurand": "Current.Import", "phase": p, "unit_of_measure": {"unit": "A"}}
              for p in ("L1", "L2", "L3")],
        ]}]

    async def _transaction_event(self, event_type: str, trigger: str, power_w: float, **extra: Any) -> None:
        self.seq += 1
        info = {"transaction_id": self.transaction_id, "charging_state": "Charging" if power_w else "EVConnected",
                **extra.pop("info", {})}
        await self.call(call.TransactionEvent(event_type=event_type, timestamp=now(), trigger_reason=trigger,
                                              seq_no=self.seq, transaction_info=info, meter_value=self._meter(power_w),
                                              **extra))
        self.events.append(event_type)

    async def _charge(self) -> None:
        try:
            for _ in range(3):
                await asyncio.sleep(0.4)
                self.meter_wh += 150
                await self._transaction_event("Updated", "MeterValuePeriodic", 11_000.0)
        except websockets.ConnectionClosed:  # unplugged from the CSMS while charging
            pass

    # -- what the CSMS asks ---------------------------------------------------------------------

    @on("RequestStartTransaction")
    async def on_request_start(self, id_token: dict, remote_start_id: int, evse_id: int | None = None, **_: Any):
        self.transaction_id = f"tx-{uuid.uuid4().hex[:8]}"
        self.evse_id = evse_id or 1
        return call_result.RequestStartTransaction(status="Accepted", transaction_id=self.transaction_id)

    @after("RequestStartTransaction")
    async def start_charging(self, id_token: dict, remote_start_id: int, evse_id: int | None = None, **_: Any):
        await self.status("Occupied", self.evse_id)
        await self._transaction_event("Started", "RemoteStart", 7_400.0, id_token=id_token,
                                      evse={"id": self.evse_id, "connector_id": 1},
                                      info={"remote_start_id": remote_start_id})
        self.charging = asyncio.create_task(self._charge())

    @on("RequestStopTransaction")
    async def on_request_stop(self, transaction_id: str, **_: Any):
        known = transaction_id == self.transaction_id
        return call_result.RequestStopTransaction(status="Accepted" if known else "Rejected")

    @after("RequestStopTransaction")
    async def stop_charging(self, transaction_id: str, **_: Any):
        if transaction_id != self.transaction_id:
            return
        if self.charging:
            await self.charging
        self.meter_wh += 50
        await self._transaction_event("Ended", "RemoteStop", 0.0, info={"stopped_reason": "Remote"})
        await self.status("Available", self.evse_id)
        self.transaction_id = None

    @on("Reset")
    async def on_reset(self, type: str, **_: Any):
        return call_result.Reset(status=self.reset_answer)

    @on("ClearCache")
    async def on_clear_cache(self, **_: Any):
        return call_result.ClearCache(status="Accepted")

    @on("TriggerMessage")
    async def on_trigger(self, requested_message: str, **_: Any):
        return call_result.TriggerMessage(status="Accepted")

    @after("TriggerMessage")
    async def triggered(self, requested_message: str, **_: Any):
        if requested_message == "BootNotification":
            await self.boot()

    @on("SetVariables")
    async def on_set_variables(self, set_variable_data: list, **_: Any):
        return call_result.SetVariables(set_variable_result=[
            {"attribute_status": "Accepted", "component": d["component"], "variable": d["variable"]}
            for d in set_variable_data])


@asynccontextmanager
async def online_station(ws_url: str, station_id: str, *, boot: bool = True,
                         status: str | None = "Available") -> AsyncIterator[SimStation]:
    """A connected, booted station with its receive loop running; disconnects on exit."""
    async with websockets.connect(ws_url, subprotocols=["ocpp2.0.1"]) as ws:
        station = SimStation(station_id, ws)
        task = asyncio.create_task(station.start())
        try:
            if boot:
                await station.boot()
            if status:
                await station.status(status)
            yield station
        finally:
            if station.charging is not None:
                station.charging.cancel()
            task.cancel()
