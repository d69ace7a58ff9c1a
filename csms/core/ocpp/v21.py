"""OCPP 2.1 adapter: the 2.0.1 adapter's handlers (2.1 keeps those messages, with optional
additions this CSMS does not need), validated against the 2.1 schemas, plus what 2.1 adds that
the CSMS takes part in: periodic event streams (OpenPeriodicEventStream, ClosePeriodicEventStream
and the NotifyPeriodicEventStream SEND) and OCPP-J 2.1's SEND and CALLRESULTERROR frames
(:class:`~csms.core.ocpp.connection.StationConnection`)."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v21.enums import Action

from csms.core.ocpp.v201 import StationConnection201
from csms.core.ocpp.validation import V21
from csms.core.timeutil import parse_ts

# Station-to-CSMS messages new in 2.1 that this CSMS does not handle: answered NotImplemented.
NOT_IMPLEMENTED = frozenset({
    "BatterySwap", "GetCertificateChainStatus", "NotifyDERAlarm", "NotifyDERStartStop", "NotifyPriorityCharging",
    "NotifySettlement", "PullDynamicScheduleUpdate", "ReportDERControl", "VatNumberValidation",
})


class StationConnection21(StationConnection201):
    version = V21
    subprotocol = "ocpp2.1"
    not_implemented = NOT_IMPLEMENTED
    rpc_2_1 = True

    @on(Action.open_periodic_event_stream)
    async def on_open_periodic_event_stream(self, p: dict[str, Any]) -> dict[str, Any]:
        stream = p["constantStreamData"]
        params = stream["params"]
        await self.core.reports.record(
            self.state, "event_stream", "OpenPeriodicEventStream",
            summary=f"stream {stream['id']} of monitor {stream['variableMonitoringId']} opened "
                    f"(interval {params.get('interval', 0)} s, {params.get('values', 0)} values)",
            details=p)
        return {"status": "Accepted"}

    @on(Action.close_periodic_event_stream)
    async def on_close_periodic_event_stream(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.core.reports.record(self.state, "event_stream", "ClosePeriodicEventStream",
                                       summary=f"stream {p['id']} closed", details=p)
        return {}

    @on("NotifyPeriodicEventStream")
    async def on_notify_periodic_event_stream(self, p: dict[str, Any]) -> dict[str, Any]:
        """A SEND: stored as an event of the stream, never answered."""
        await self.core.reports.record(
            self.state, "event_stream", "NotifyPeriodicEventStream",
            summary=f"stream {p['id']}: {len(p['data'])} values, {p['pending']} pending",
            details=p, timestamp=parse_ts(p["basetime"]))
        return {}
