"""Variable monitoring and customer information over REST (OCPP 2.0.1; a 1.6 station answers
409 ``NotSupported``, as display messages do).

Monitoring: what the CSMS knows of the station's monitors and the latest event of each
component and variable, the station's events, set and clear monitors, ask for a monitoring
report, set the monitoring base and level. Customer information: ask the station to report
and/or clear what it holds about one customer; the data it sends back, assembled per request.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get, post

from csms.api.auth import caller, require
from csms.api.bounds import Int32
from csms.api.crud import jsonable, page_params
from csms.api.stations import run_command
from csms.core.runtime import get_core


class MonitorBody(msgspec.Struct, forbid_unknown_fields=True):
    component: str
    variable: str
    type: str  # UpperThreshold, LowerThreshold, Delta, Periodic, PeriodicClockAligned
    value: float  # the threshold, the change (Delta) or the interval in seconds (Periodic*)
    severity: int  # 0 (Danger) .. 9 (Debug)
    component_instance: str = ""
    variable_instance: str = ""
    evse_id: Int32 | None = None
    connector_id: Int32 | None = None
    transaction: bool = False  # only during a transaction
    monitor_id: Int32 | None = None  # replace the station's monitor of this id; none: a new one


class SetMonitorsBody(msgspec.Struct, forbid_unknown_fields=True):
    monitors: list[MonitorBody]


class ClearMonitorsBody(msgspec.Struct, forbid_unknown_fields=True):
    monitor_ids: list[Int32]


class ComponentVariableBody(msgspec.Struct, forbid_unknown_fields=True):
    component: str
    variable: str | None = None  # none: every variable of the component
    component_instance: str = ""
    variable_instance: str = ""
    evse_id: Int32 | None = None
    connector_id: Int32 | None = None


class MonitoringReportBody(msgspec.Struct, forbid_unknown_fields=True):
    criteria: list[str] | None = None  # ThresholdMonitoring, DeltaMonitoring, PeriodicMonitoring
    component_variables: list[ComponentVariableBody] | None = None


class MonitoringBaseBody(msgspec.Struct, forbid_unknown_fields=True):
    base: str  # All, FactoryDefault, HardWiredOnly


class MonitoringLevelBody(msgspec.Struct, forbid_unknown_fields=True):
    severity: int  # 0 (Danger) .. 9 (Debug): events of this severity and more severe are reported


class CertificateHashBody(msgspec.Struct, forbid_unknown_fields=True):
    hash_algorithm: str  # SHA256, SHA384, SHA512
    issuer_name_hash: str
    issuer_key_hash: str
    serial_number: str


class CustomerInformationBody(msgspec.Struct, forbid_unknown_fields=True):
    report: bool = True
    clear: bool = False
    id_token: str | None = None
    token_type: str = "ISO14443"
    customer_identifier: str | None = None
    customer_certificate: CertificateHashBody | None = None


def _rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [jsonable(r) for r in rows]


class MonitoringController(Controller):
    path = "/stations/{station_id:str}/monitoring"
    tags = ["stations"]
    opt = {"tenant": {"station_id": "station"}}

    @get("/", guards=[require("viewer")])
    async def monitoring(self, station_id: str) -> dict[str, Any]:
        """The station's monitors as the CSMS knows them (set through it, or reported in
        NotifyMonitoringReport) and the latest NotifyEvent of each component and variable."""
        listing = await run_command(get_core().monitoring.listing(station_id))
        return {**listing, "monitors": _rows(listing["monitors"]), "events": _rows(listing["events"])}

    @get("/events", guards=[require("viewer")])
    async def monitoring_events(self, station_id: str, limit: int = 100) -> dict[str, Any]:
        """The station's NotifyEvent events, newest first (trigger, value, severity of the monitor)."""
        limit, _ = page_params(limit, 0)

        async def events() -> dict[str, Any]:
            return {"items": _rows(await get_core().monitoring.events(station_id, limit=limit))}

        return await run_command(events())

    @post("/", guards=[require("operator")])
    async def set_monitors(self, request: Request, station_id: str, data: SetMonitorsBody) -> dict[str, Any]:
        """SetVariableMonitoring; the station's SetMonitoringResult of each monitor (``words``:
        its status in words). Accepted monitors are stored with the id the station gave them."""
        return await run_command(get_core().monitoring.set(
            station_id, monitors=[msgspec.structs.asdict(m) for m in data.monitors], by=caller(request)))

    @post("/clear", guards=[require("operator")])
    async def clear_monitors(self, request: Request, station_id: str, data: ClearMonitorsBody) -> dict[str, Any]:
        """ClearVariableMonitoring; the station's ClearMonitoringResult of each id."""
        return await run_command(get_core().monitoring.clear(station_id, monitor_ids=data.monitor_ids,
                                                             by=caller(request)))

    @post("/report", guards=[require("operator")])
    async def monitoring_report(self, request: Request, station_id: str,
                                data: MonitoringReportBody) -> dict[str, Any]:
        """GetMonitoringReport; the monitors arrive in NotifyMonitoringReport parts right after
        the answer. Without criteria and components the report replaces the stored monitors."""
        return await run_command(get_core().monitoring.request_report(
            station_id, criteria=data.criteria,
            component_variables=[msgspec.structs.asdict(cv) for cv in data.component_variables or ()],
            by=caller(request)))

    @post("/base", guards=[require("operator")])
    async def monitoring_base(self, request: Request, station_id: str, data: MonitoringBaseBody) -> dict[str, Any]:
        """SetMonitoringBase (All, FactoryDefault, HardWiredOnly); the station's answer."""
        return await run_command(get_core().monitoring.set_base(station_id, base=data.base, by=caller(request)))

    @post("/level", guards=[require("operator")])
    async def monitoring_level(self, request: Request, station_id: str, data: MonitoringLevelBody) -> dict[str, Any]:
        """SetMonitoringLevel; the station's answer."""
        return await run_command(get_core().monitoring.set_level(station_id, severity=data.severity,
                                                                 by=caller(request)))


class StreamAdjustBody(msgspec.Struct, forbid_unknown_fields=True):
    interval: Int32 | None = None  # seconds between sends
    values: Int32 | None = None  # values per send


class EventStreamController(Controller):
    """OCPP 2.1 periodic event streams (a 1.6 or 2.0.1 station: 409 ``NotSupported``)."""

    path = "/stations/{station_id:str}/event-streams"
    tags = ["stations"]
    opt = {"tenant": {"station_id": "station"}}

    @get("/", guards=[require("viewer")])
    async def event_streams(self, station_id: str, values: int = 20) -> dict[str, Any]:
        """The station's streams (open first): the monitor with its component and variable, the
        interval and value count, open or closed, the values received (``last``, and the newest
        ``values`` in ``series``, at most 100)."""
        return await run_command(get_core().event_streams.listing(station_id, values=values))

    @post("/refresh", guards=[require("operator")])
    async def refresh_event_streams(self, request: Request, station_id: str) -> dict[str, Any]:
        """GetPeriodicEventStream: the streams the station has open (the listing follows it)."""
        return await run_command(get_core().event_streams.refresh(station_id, by=caller(request)))

    @post("/{stream_id:int}/adjust", guards=[require("operator")])
    async def adjust_event_stream(self, request: Request, station_id: str, stream_id: int,
                                  data: StreamAdjustBody) -> dict[str, Any]:
        """AdjustPeriodicEventStream: a new ``interval`` and/or ``values``; the station's answer."""
        return await run_command(get_core().event_streams.adjust(
            station_id, stream_id, interval=data.interval, values=data.values, by=caller(request)))


class CustomerInformationController(Controller):
    path = "/stations/{station_id:str}/customer-information"
    tags = ["stations"]
    opt = {"tenant": {"station_id": "station"}}

    @get("/", guards=[require("viewer")])
    async def customer_information_requests(self, station_id: str, request_id: int | None = None,
                                            limit: int = 20) -> dict[str, Any]:
        """The newest requests (or the one ``request_id``), each with its state (waiting,
        receiving, complete, refused) and the data the station sent so far
        (NotifyCustomerInformation parts in seqNo order; ``complete`` once every part came)."""
        limit, _ = page_params(limit, 0)

        async def listing() -> dict[str, Any]:
            service = get_core().customer_information
            if request_id is not None:
                found = await service.result(station_id, request_id)
                return {"items": [jsonable(found)] if found else []}
            return {"items": _rows(await service.listing(station_id, limit=limit))}

        return await run_command(listing())

    @post("/", guards=[require("operator")])
    async def customer_information(self, request: Request, station_id: str,
                                   data: CustomerInformationBody) -> dict[str, Any]:
        """CustomerInformation about one customer, named by exactly one of ``id_token``,
        ``customer_identifier``, ``customer_certificate``; the station's answer and the
        ``request_id`` its data comes under."""
        body = msgspec.structs.asdict(data)
        if data.customer_certificate is not None:
            body["customer_certificate"] = msgspec.structs.asdict(data.customer_certificate)
        return await run_command(get_core().customer_information.request(station_id, by=caller(request), **body))
