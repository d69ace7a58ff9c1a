"""OCPP 2.1 periodic event streams: a station opens a stream for one of its variable monitors
(OpenPeriodicEventStream: the monitor, how often it sends), sends the monitored values in
NotifyPeriodicEventStream SENDs (a base time and ``{t, v}`` pairs, ``t`` seconds after it) and
closes it (ClosePeriodicEventStream). Each of these is stored in the station's event log
(category ``event_stream``; :mod:`csms.core.ocpp.v21`); this service reads the streams back out of
it — per stream the monitor's component and variable, its parameters, whether it is open, the
values received with their times — and asks the station which streams it has open
(GetPeriodicEventStream) or changes one's interval and value count (AdjustPeriodicEventStream).
What the station answers is recorded in the same log (kinds ``PeriodicEventStreams`` and
``AdjustPeriodicEventStream``), so the listing follows it. Earlier versions have no streams
(``NotSupported``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from csms.core.services.operations import OperationError, calls_with, feature_state, known_station
from csms.core.tables import StationEvent, VariableMonitor
from csms.core.timeutil import ocpp_ts, parse_ts
from csms.i18n import N_

if TYPE_CHECKING:
    from csms.core.services.commands import CommandService
    from csms.core.services.stations import StationService

CATEGORY = "event_stream"
HISTORY = 5000  # the newest stream events of a station read back per listing
MAX_VALUES = 100  # values kept per stream in a listing, the newest


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class EventStreamService:
    def __init__(self, commands: CommandService, stations: StationService) -> None:
        self.commands = commands
        self.stations = stations

    async def listing(self, station_id: str, *, values: int = 20) -> dict[str, Any]:
        """The station's streams, open ones first, newest first: ``id``, ``monitor`` (its id and,
        when the CSMS knows the monitor, component, EVSE and variable), ``interval`` and
        ``values`` (what it sends after), ``open``, ``opened_at`` / ``closed_at``, ``received``
        (values received), ``last`` (time and value) and ``series`` (up to ``values`` newest
        ``{"at", "value"}``, oldest first); ``supported`` as for the other 2.1 features."""
        row = await known_station(station_id)
        version = self.commands.version_of(station_id) or row["ocpp_version"] or None
        events = await StationEvent.select(StationEvent.kind, StationEvent.details, StationEvent.timestamp).where(
            (StationEvent.station_id == station_id) & (StationEvent.category == CATEGORY)).order_by(
            StationEvent.id, ascending=False).limit(HISTORY).output(load_json=True)
        streams: dict[int, dict[str, Any]] = {}
        reported: set[int] | None = None  # the streams open in the station's newest answer

        def stream(stream_id: int) -> dict[str, Any]:
            return streams.setdefault(stream_id, {
                "id": stream_id, "monitor": None, "interval": None, "values": None, "open": None,
                "opened_at": None, "closed_at": None, "received": 0, "last": None, "series": []})

        def params_of(s: dict[str, Any], params: dict[str, Any]) -> None:
            for key in ("interval", "values"):
                if s[key] is None:
                    s[key] = params.get(key)

        keep = max(0, min(values, MAX_VALUES))
        for e in events:  # newest first: the newest word on each thing is the one that counts
            d = e["details"] if isinstance(e["details"], dict) else {}
            kind = e["kind"]
            if kind == "OpenPeriodicEventStream":
                data = d.get("constantStreamData") or {}
                s = stream(data.get("id", -1))
                s["opened_at"] = s["opened_at"] or e["timestamp"]
                s["monitor"] = s["monitor"] or {"id": data.get("variableMonitoringId")}
                params_of(s, data.get("params") or {})
                if s["open"] is None:
                    s["open"] = reported is None or s["id"] in reported
            elif kind == "AdjustPeriodicEventStream" and d.get("status") == "Accepted":
                params_of(stream(d.get("id", -1)), d.get("params") or {})
            elif kind == "ClosePeriodicEventStream":
                s = stream(d.get("id", -1))
                if s["open"] is None:
                    s["open"], s["closed_at"] = False, e["timestamp"]
            elif kind == "PeriodicEventStreams" and reported is None:
                listed = [x for x in d.get("streams") or [] if isinstance(x, dict)]
                reported = {x.get("id", -1) for x in listed}
                for s in streams.values():  # heard of only after the answer, and not in it
                    if s["open"] is None:
                        s["open"] = s["id"] in reported
                for data in listed:
                    s = stream(data.get("id", -1))
                    s["monitor"] = s["monitor"] or {"id": data.get("variableMonitoringId")}
                    params_of(s, data.get("params") or {})
                    if s["open"] is None:
                        s["open"] = True
            elif kind == "NotifyPeriodicEventStream":
                s = stream(d.get("id", -1))
                base = parse_ts(d.get("basetime")) or e["timestamp"]
                data = d.get("data") or []
                s["received"] += len(data)
                for point in reversed(data):
                    at = ocpp_ts(base + timedelta(seconds=float(point.get("t") or 0)))
                    if s["last"] is None:
                        s["last"] = {"at": at, "value": point.get("v")}
                    if len(s["series"]) < keep:
                        s["series"].append({"at": at, "value": point.get("v")})
        for s in streams.values():
            # never opened nor closed in what is kept: open while it sends, unless the answer says not
            s["open"] = bool(s["open"]) if s["open"] is not None else reported is None or s["id"] in reported
            s["series"].reverse()
            for key in ("opened_at", "closed_at"):
                s[key] = ocpp_ts(s[key]) if s[key] is not None else None
        monitor_ids = [m for s in streams.values() if s["monitor"] and (m := _int(s["monitor"]["id"])) is not None]
        if monitor_ids:
            known = {m["monitor_id"]: m for m in await VariableMonitor.select(
                VariableMonitor.monitor_id, VariableMonitor.component, VariableMonitor.evse_id,
                VariableMonitor.variable, VariableMonitor.type).where(
                (VariableMonitor.station == row["id"]) & VariableMonitor.monitor_id.is_in(monitor_ids))}
            for s in streams.values():
                found = known.get(_int((s["monitor"] or {}).get("id")))
                if found is not None:
                    s["monitor"] = {"id": found["monitor_id"], "component": found["component"],
                                    "evse_id": found["evse_id"], "variable": found["variable"], "type": found["type"]}
        items = sorted(streams.values(), key=lambda s: (not s["open"], -s["id"]))
        return {"station_id": station_id, "ocpp_version": version,
                "supported": feature_state(version, "supports_event_streams"), "streams": items}

    async def refresh(self, station_id: str, *, by: str = "") -> dict[str, Any]:
        """GetPeriodicEventStream: the streams the station has open, recorded (the listing
        follows the newest answer); the station's answer."""
        calls = await calls_with(self.commands, station_id, "supports_event_streams",
                                 "periodic event streams (OCPP 2.1 has)")
        call = calls.get_event_streams()
        outcome = call.outcome(await self.commands.send(station_id, call.action, call.payload, requested_by=by))
        await self._record(station_id, "PeriodicEventStreams", f"{len(outcome['streams'])} streams open",
                           {"streams": outcome["streams"]})
        return outcome

    async def adjust(self, station_id: str, stream_id: int, *, interval: int | None = None,
                     values: int | None = None, by: str = "") -> dict[str, Any]:
        """AdjustPeriodicEventStream of stream ``stream_id``: send every ``interval`` seconds
        and/or after ``values`` values (at least one, each 0 or more); the station's answer,
        recorded."""
        if interval is None and values is None:
            raise OperationError(N_("give interval and/or values"))
        if any(v is not None and v < 0 for v in (interval, values)) or stream_id < 0:
            raise OperationError(N_("stream id, interval and values are whole numbers from 0"))
        calls = await calls_with(self.commands, station_id, "supports_event_streams",
                                 "periodic event streams (OCPP 2.1 has)")
        call = calls.adjust_event_stream(stream_id=stream_id, interval=interval, values=values)
        outcome = call.outcome(await self.commands.send(station_id, call.action, call.payload, requested_by=by))
        await self._record(station_id, "AdjustPeriodicEventStream", f"stream {stream_id} adjusted: {outcome['status']}",
                           {"id": stream_id, "params": call.payload["params"], "status": outcome["status"]})
        return outcome

    async def _record(self, station_id: str, kind: str, summary: str, details: dict[str, Any]) -> None:
        committed = self.stations.record(station_id, CATEGORY, kind, summary=summary, details=details, wait=True)
        assert committed is not None  # wait=True always gives a commit future
        await committed
