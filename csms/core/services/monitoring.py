"""Variable monitoring (OCPP 2.0.1 functional block N; OCPP 1.6 has none): monitors on a
station's device-model variables set and cleared through the CSMS (SetVariableMonitoring,
ClearVariableMonitoring), the station's monitors asked for (GetMonitoringReport, assembled from
its NotifyMonitoringReport parts), its monitoring base and level, and the events its monitors
raise (NotifyEvent, kept in the station event log), latest per component and variable.

What the CSMS knows of the monitors is in ``variable_monitor``: a monitor the station accepted
from SetVariableMonitoring, and every monitor it reports. A report of all monitors (no criteria,
no component) replaces the list: the request is logged (category ``monitoring_request``) before
it is sent; when its last part (no ``tbc``) arrives, what the station did not report in it is
forgotten, and an ``EmptyResultSet`` answer empties the list. No state is held in memory, so a
report reaching another node works the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csms.core.ocpp.outbound import StationCalls
from csms.core.ocpp.outbound.calls import new_request_id
from csms.core.ocpp.validation import OcppError
from csms.core.services import per_message
from csms.core.services.operations import OperationError, feature_state, known_station, live_calls_with
from csms.core.tables import StationEvent, VariableMonitor
from csms.core.timeutil import utcnow
from csms.i18n import N_

if TYPE_CHECKING:
    from csms.core.services.commands import CommandService
    from csms.core.services.reports import ReportService
    from csms.core.services.stations import StationService, StationState

MONITOR_TYPES = ("UpperThreshold", "LowerThreshold", "Delta", "Periodic", "PeriodicClockAligned")
CRITERIA = ("ThresholdMonitoring", "DeltaMonitoring", "PeriodicMonitoring")
BASES = ("All", "FactoryDefault", "HardWiredOnly")
SEVERITIES = {0: "Danger", 1: "Hardware Failure", 2: "System Failure", 3: "Critical", 4: "Error", 5: "Alert",
              6: "Warning", 7: "Notice", 8: "Informational", 9: "Debug"}
NAME_LENGTH = 50  # ComponentType.name, VariableType.name and their instances
MAX_MONITOR_ID = 2**31 - 1
VALUE_LIMIT = 1e15  # beyond it no variable's value; keeps the number a plain JSON decimal

# The station's answers in words (SetMonitoringResult, ClearMonitoringResult and the others), in
# English (the REST API's ``words``); a page shows them translated (``gettext(words)``).
STATUS_WORDS = {
    "Accepted": N_("accepted"),
    "UnknownComponent": N_("the station has no such component"),
    "UnknownVariable": N_("the component has no such variable"),
    "UnsupportedMonitorType": N_("the variable does not support this monitor type"),
    "Rejected": N_("rejected by the station"),
    "Duplicate": N_("the station already has this monitor"),
    "NotFound": N_("the station has no monitor with this id"),
    "NotSupported": N_("the station does not support this"),
    "EmptyResultSet": N_("the station has no monitors matching the request"),
}


def in_words(status: str) -> str:
    return STATUS_WORDS.get(status, status)


def _name(value: Any, what: str, *, required: bool = True) -> str:
    text = (value or "").strip() if isinstance(value, str) or value is None else None
    if text is None:
        raise OperationError(N_("%(name)s must be text"), name=what)
    if required and not text:
        raise OperationError(N_("%(name)s is required"), name=what)
    if len(text) > NAME_LENGTH:
        raise OperationError(N_("%(name)s is at most %(maximum)s characters"), name=what, maximum=NAME_LENGTH)
    return text


def component_variable(*, component: str, variable: str | None, component_instance: str = "",
                       variable_instance: str = "", evse_id: int | None = None,
                       connector_id: int | None = None) -> dict[str, Any]:
    """A 2.0.1 ComponentVariableType (``variable`` None: the whole component)."""
    comp: dict[str, Any] = {"name": _name(component, "component")}
    if component_instance:
        comp["instance"] = _name(component_instance, "component_instance")
    if connector_id is not None and evse_id is None:
        raise OperationError(N_("connector_id needs an evse_id"))
    if evse_id is not None:
        if evse_id < 0:
            raise OperationError(N_("evse_id must be 0 or more"))
        comp["evse"] = {"id": evse_id, **({"connectorId": connector_id} if connector_id is not None else {})}
        if connector_id is not None and connector_id < 0:
            raise OperationError(N_("connector_id must be 0 or more"))
    result: dict[str, Any] = {"component": comp}
    if variable is not None:
        var: dict[str, Any] = {"name": _name(variable, "variable")}
        if variable_instance:
            var["instance"] = _name(variable_instance, "variable_instance")
        result["variable"] = var
    return result


def monitor_data(*, component: str, variable: str, type: str, value: float, severity: int,
                 component_instance: str = "", variable_instance: str = "", evse_id: int | None = None,
                 connector_id: int | None = None, transaction: bool = False,
                 monitor_id: int | None = None) -> dict[str, Any]:
    """A 2.0.1 SetMonitoringDataType; ``OperationError`` for what the schema or the station would
    refuse (a ``monitor_id`` replaces the station's monitor of that id)."""
    if type not in MONITOR_TYPES:
        raise OperationError(N_("type must be one of %(types)s, not %(type)s"), types=", ".join(MONITOR_TYPES),
                             type=repr(type))
    if isinstance(severity, bool) or not isinstance(severity, int) or severity not in SEVERITIES:
        raise OperationError(N_("severity must be a whole number from 0 (Danger) to 9 (Debug), not %(severity)s"),
                             severity=repr(severity))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not abs(value) < VALUE_LIMIT:
        raise OperationError(N_("value must be a number, not %(value)s"), value=repr(value))
    if type in ("Delta", "Periodic", "PeriodicClockAligned") and value <= 0:
        if type == "Delta":
            raise OperationError(N_("value of a Delta monitor is the change that raises an event and must be more than 0"))
        raise OperationError(N_("value of a %(type)s monitor is the interval in seconds and must be more than 0"), type=type)
    if monitor_id is not None and not 0 <= monitor_id <= MAX_MONITOR_ID:
        raise OperationError(N_("monitor_id must be between 0 and %(maximum)s"), maximum=MAX_MONITOR_ID)
    data: dict[str, Any] = {"value": value, "type": type, "severity": severity, **component_variable(
        component=component, variable=variable, component_instance=component_instance,
        variable_instance=variable_instance, evse_id=evse_id, connector_id=connector_id)}
    if transaction:
        data["transaction"] = True
    if monitor_id is not None:
        data["id"] = monitor_id
    return data


def _key(component: dict[str, Any], variable: dict[str, Any]) -> dict[str, Any]:
    evse = component.get("evse") or {}
    return {"component": component.get("name", ""), "component_instance": component.get("instance", ""),
            "evse_id": evse.get("id"), "connector_id": evse.get("connectorId"),
            "variable": variable.get("name", ""), "variable_instance": variable.get("instance", "")}


FULL_REPORT = "monitoring_request"  # the station event log's category of a full report asked for


class MonitoringService:
    def __init__(self, commands: CommandService, stations: StationService,
                 reports: ReportService | None = None) -> None:
        self.commands = commands
        self.stations = stations
        self.reports = reports  # where the limits read from a station are stored

    async def _connected(self, station_id: str) -> tuple[int, StationCalls]:
        """The station's pk and adapter when it is connected with a version that has monitoring
        (2.0.1); 1.6 is ``NotSupported``."""
        row = await known_station(station_id)
        return row["id"], live_calls_with(self.commands, station_id, "supports_monitoring",
                                          "variable monitoring (OCPP 2.0.1 has)")

    async def listing(self, station_id: str) -> dict[str, Any]:
        """The station's monitors as the CSMS knows them, and the latest event of each component
        and variable; ``supported`` False for a 1.6 station (None while its version is not known)."""
        row = await known_station(station_id)
        version = self.commands.version_of(station_id) or row["ocpp_version"] or None
        monitors = await VariableMonitor.select(*VariableMonitor.all_columns(exclude=[VariableMonitor.station])).where(
            VariableMonitor.station == row["id"]).order_by(VariableMonitor.component).order_by(
            VariableMonitor.variable).order_by(VariableMonitor.monitor_id)
        for monitor in monitors:
            monitor["severity_name"] = SEVERITIES.get(monitor["severity"], "")
        return {"station_id": station_id, "ocpp_version": version,
                "supported": feature_state(version, "supports_monitoring"),
                "monitors": monitors, "events": await self.latest_events(station_id, monitors=monitors)}

    async def events(self, station_id: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """The station's NotifyEvent events, newest first."""
        await known_station(station_id)
        rows = await StationEvent.select().where(
            (StationEvent.station_id == station_id) & (StationEvent.category == "event")).order_by(
            StationEvent.timestamp, ascending=False).order_by(StationEvent.id, ascending=False).limit(
            limit).output(load_json=True)
        severities = await self._severities(station_id)
        return [self._event(r, severities) for r in rows]

    async def latest_events(self, station_id: str, *, monitors: list[dict[str, Any]] | None = None,
                            scan: int = 1000) -> list[dict[str, Any]]:
        """The latest event of each component and variable among the station's newest ``scan``
        events, by component and variable."""
        rows = await StationEvent.select().where(
            (StationEvent.station_id == station_id) & (StationEvent.category == "event")).order_by(
            StationEvent.timestamp, ascending=False).order_by(StationEvent.id, ascending=False).limit(
            scan).output(load_json=True)
        severities = await self._severities(station_id) if monitors is None else {
            m["monitor_id"]: m["severity"] for m in monitors}
        latest: dict[tuple, dict[str, Any]] = {}
        for r in rows:
            event = self._event(r, severities)
            key = tuple(event[k] for k in ("component", "component_instance", "evse_id", "connector_id",
                                           "variable", "variable_instance"))
            latest.setdefault(key, event)
        return sorted(latest.values(), key=lambda e: (e["component"], e["component_instance"], e["evse_id"] or 0,
                                                      e["connector_id"] or 0, e["variable"], e["variable_instance"]))

    async def _severities(self, station_id: str) -> dict[int, int]:
        return {r["monitor_id"]: r["severity"] for r in await VariableMonitor.select(
            VariableMonitor.monitor_id, VariableMonitor.severity).where(
            VariableMonitor.station.station_id == station_id)}

    @staticmethod
    def _event(row: dict[str, Any], severities: dict[int, int]) -> dict[str, Any]:
        """A NotifyEvent EventDataType as stored, flattened; its severity is its monitor's
        (None for a hard-wired event or a monitor not known)."""
        item = row["details"] or {}
        monitor_id = item.get("variableMonitoringId")
        severity = row["severity"] if row["severity"] is not None else (
            severities.get(monitor_id) if isinstance(monitor_id, int) else None)
        return {**_key(item.get("component") or {}, item.get("variable") or {}),
                "event_id": item.get("eventId"), "timestamp": row["timestamp"], "trigger": item.get("trigger", ""),
                "actual_value": item.get("actualValue", ""), "cleared": bool(item.get("cleared", False)),
                "tech_code": item.get("techCode"), "tech_info": item.get("techInfo"),
                "notification_type": item.get("eventNotificationType", ""), "monitor_id": monitor_id,
                "severity": severity, "severity_name": SEVERITIES.get(severity, "") if severity is not None else "",
                "transaction_id": item.get("transactionId")}

    async def _upsert(self, station_pk: int, component: dict[str, Any], variable: dict[str, Any],
                      monitor: dict[str, Any], *, source: str, reported_in: int | None = None) -> None:
        values = {VariableMonitor.type: monitor["type"], VariableMonitor.value: float(monitor["value"]),
                  VariableMonitor.severity: monitor["severity"],
                  VariableMonitor.transaction: bool(monitor.get("transaction", False)),
                  VariableMonitor.reported_in: reported_in, VariableMonitor.updated_at: utcnow(),
                  **{getattr(VariableMonitor, k): v for k, v in _key(component, variable).items()}}
        where = (VariableMonitor.station == station_pk) & (VariableMonitor.monitor_id == monitor["id"])
        if await VariableMonitor.exists().where(where):
            await VariableMonitor.update(values).where(where)
        else:
            await VariableMonitor.insert(VariableMonitor(station=station_pk, monitor_id=monitor["id"], source=source,
                                                         **{c._meta.name: v for c, v in values.items()}))

    async def set(self, station_id: str, *, monitors: list[dict[str, Any]], by: str = "") -> dict[str, Any]:
        """SetVariableMonitoring of ``monitors`` (keyword arguments of :func:`monitor_data`, all
        checked before anything is sent); the monitors the station accepted are stored. The
        outcome's ``results`` has the station's SetMonitoringResult of each, with ``words``."""
        if not monitors:
            raise OperationError(N_("give at least one monitor"))
        data = []
        for n, monitor in enumerate(monitors):
            try:
                data.append(monitor_data(**monitor))
            except OperationError as exc:
                if len(monitors) == 1:
                    raise
                raise OperationError(N_("monitor %(number)s: %(problem)s"), number=n + 1, problem=exc) from None
            except TypeError as exc:
                raise OperationError(N_("monitor %(number)s: %(problem)s"), number=n + 1, problem=str(exc)) from None
        pk, calls = await self._connected(station_id)
        limits = await self._limits(station_id, pk, calls, "SetVariableMonitoring", len(data), by)
        chunks = per_message.split(data, limits, lambda chunk: ("SetVariableMonitoring", {"setMonitoringData": chunk}))
        outcome: dict[str, Any] = {}
        results: list[dict[str, Any]] = []
        pairs: list[tuple[dict[str, Any] | None, dict[str, Any]]] = []
        for chunk in chunks:  # no more monitors per message than the station takes (N04.FR.08)
            call = calls.set_monitors(monitors=chunk)
            outcome = call.outcome(await self.commands.send(station_id, call.action, call.payload, requested_by=by))
            for n, result in enumerate(outcome["results"]):
                # the results answer the monitors in order; a station that reorders them is matched
                sent = chunk[n] if len(outcome["results"]) == len(chunk) else next(
                    (d for d in chunk if d["component"] == result["component"]
                     and d["variable"] == result["variable"] and d["type"] == result["type"]), None)
                pairs.append((sent, result))
            results += outcome["results"]
        # with the status in words, the station's answer (``response``, the last message's) left as it came
        outcome["results"] = [{**r, "words": in_words(r.get("status", ""))} for r in results]
        outcome["messages"] = len(chunks)
        for sent, result in pairs:
            if result.get("status") == "Accepted" and result.get("id") is not None:
                await self._upsert(pk, result["component"], result["variable"], {
                    "id": result["id"], "type": result["type"], "severity": result["severity"],
                    "value": sent["value"] if sent else 0, "transaction": sent.get("transaction") if sent else False},
                    source="csms")
        return outcome

    async def clear(self, station_id: str, *, monitor_ids: list[int], by: str = "") -> dict[str, Any]:
        """ClearVariableMonitoring; a monitor the station cleared or does not know is forgotten."""
        if not monitor_ids:
            raise OperationError(N_("give at least one monitor id"))
        if any(not 0 <= i <= MAX_MONITOR_ID for i in monitor_ids):
            raise OperationError(N_("monitor ids are between 0 and %(maximum)s"), maximum=MAX_MONITOR_ID)
        pk, calls = await self._connected(station_id)
        ids = list(dict.fromkeys(monitor_ids))
        limits = await self._limits(station_id, pk, calls, "ClearVariableMonitoring", len(ids), by)
        chunks = per_message.split(ids, limits, lambda chunk: ("ClearVariableMonitoring", {"id": chunk}))
        outcome: dict[str, Any] = {}
        results: list[dict[str, Any]] = []
        for chunk in chunks:  # no more ids per message than the station takes (N06)
            call = calls.clear_monitors(monitor_ids=chunk)
            outcome = call.outcome(await self.commands.send(station_id, call.action, call.payload, requested_by=by))
            results += outcome["results"]
        outcome["results"] = [{**r, "words": in_words(r.get("status", ""))} for r in results]
        outcome["messages"] = len(chunks)
        gone = [r["id"] for r in outcome["results"] if r.get("status") in ("Accepted", "NotFound")]
        if gone:
            await VariableMonitor.delete().where((VariableMonitor.station == pk)
                                                 & VariableMonitor.monitor_id.is_in(gone))
        return outcome

    async def _limits(self, station_id: str, pk: int, calls: StationCalls, message: str, count: int,
                      by: str) -> per_message.Limits:
        """MonitoringCtrlr.ItemsPerMessage and BytesPerMessage[``message``]: from the variables
        the station reported, else ItemsPerMessage asked with GetVariables (when ``count`` items
        may need more than one message); None for what it does not say (no limit then)."""
        limits = await per_message.stored_limits(pk, "MonitoringCtrlr", message)
        if limits.items is not None or count < 2:
            return limits
        call = calls.monitoring_items_per_message(message=message)
        try:
            response = await self.commands.send(station_id, call.action, call.payload, requested_by=by)
        except OcppError:  # a station without the variable may answer with a CALLERROR
            return limits
        state = await self.stations.state(station_id)
        if state is not None and self.reports is not None:  # stored: the station is asked once
            await call.record(self.reports, state, response)
        return per_message.Limits(call.outcome(response)["per_message"], limits.bytes)

    async def request_report(self, station_id: str, *, criteria: list[str] | None = None,
                             component_variables: list[dict[str, Any]] | None = None,
                             by: str = "") -> dict[str, Any]:
        """GetMonitoringReport; the monitors come in NotifyMonitoringReport parts. Without
        ``criteria`` and ``component_variables`` the report replaces the stored monitors.
        ``component_variables``: keyword arguments of :func:`component_variable`."""
        unknown = sorted(set(criteria or ()) - set(CRITERIA))
        if unknown:
            raise OperationError(N_("criteria are %(criteria)s, not %(unknown)s"), criteria=", ".join(CRITERIA),
                                 unknown=", ".join(unknown))
        try:
            selection = [component_variable(**cv) for cv in component_variables or ()]
        except TypeError as exc:
            raise OperationError(N_("component_variables: %(problem)s"), problem=str(exc)) from None
        pk, calls = await self._connected(station_id)
        request_id = new_request_id()
        call = calls.get_monitoring_report(request_id=request_id,
                                           criteria=list(dict.fromkeys(criteria)) if criteria else None,
                                           component_variables=selection or None)
        full = not criteria and not selection
        if full:  # logged before the parts can come: the last one replaces the stored monitors
            done = self.stations.record(station_id, FULL_REPORT, str(request_id), summary="GetMonitoringReport of all",
                                        details={"request_id": request_id, "by": by}, wait=True)
            assert done is not None  # wait=True always gives a commit future
            await done
        outcome = call.outcome(await self.commands.send(station_id, call.action, call.payload, requested_by=by))
        outcome["words"] = in_words(outcome["status"])
        if full and outcome["status"] == "EmptyResultSet":
            await VariableMonitor.delete().where(VariableMonitor.station == pk)
        return outcome

    async def set_base(self, station_id: str, *, base: str, by: str = "") -> dict[str, Any]:
        """SetMonitoringBase: ``All`` (the factory and preconfigured monitors back),
        ``FactoryDefault`` or ``HardWiredOnly`` (custom monitors removed). The stored monitors
        are kept until the next report, which shows what the station has now."""
        if base not in BASES:
            raise OperationError(N_("base must be one of %(bases)s, not %(base)s"), bases=", ".join(BASES), base=repr(base))
        _, calls = await self._connected(station_id)
        call = calls.set_monitoring_base(base=base)
        outcome = call.outcome(await self.commands.send(station_id, call.action, call.payload, requested_by=by))
        return {**outcome, "words": in_words(outcome["status"])}

    async def set_level(self, station_id: str, *, severity: int, by: str = "") -> dict[str, Any]:
        """SetMonitoringLevel: the station reports only events of ``severity`` or more severe (lower)."""
        if isinstance(severity, bool) or not isinstance(severity, int) or severity not in SEVERITIES:
            raise OperationError(N_("severity must be a whole number from 0 (Danger) to 9 (Debug), not %(severity)s"),
                                 severity=repr(severity))
        _, calls = await self._connected(station_id)
        call = calls.set_monitoring_level(severity=severity)
        outcome = call.outcome(await self.commands.send(station_id, call.action, call.payload, requested_by=by))
        return {**outcome, "words": in_words(outcome["status"])}

    async def report(self, state: StationState, *, request_id: int, monitors: list[dict[str, Any]],
                     last: bool) -> int:
        """One NotifyMonitoringReport part: each monitor stored (one the CSMS set keeps its
        source); the ``last`` part of a full report forgets the monitors it did not report.
        The number of monitors in the part."""
        count = 0
        for item in monitors:
            for monitor in item.get("variableMonitoring") or []:
                await self._upsert(state.pk, item["component"], item["variable"], monitor, source="station",
                                   reported_in=request_id)
                count += 1
        if last and await StationEvent.exists().where(
                (StationEvent.station_id == state.station_id) & (StationEvent.category == FULL_REPORT)
                & (StationEvent.kind == str(request_id))):
            await VariableMonitor.delete().where((VariableMonitor.station == state.pk) & (
                VariableMonitor.reported_in.is_null() | (VariableMonitor.reported_in != request_id)))
        return count
