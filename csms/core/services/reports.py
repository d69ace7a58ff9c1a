"""Everything a station reports that is not a session: firmware and log status, security
events, device-model reports, monitoring, charging limits and needs, displays, certificates."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from csms.core import events as ev
from csms.core.tables import ChargingProfile, ConfigurationKey, DeviceVariable, Station
from csms.core.timeutil import utcnow

if TYPE_CHECKING:
    from collections.abc import Callable

    from piccolo.columns import Column

    from csms.core.services.stations import StationService, StationState
    from csms.db import BatchWriter, Statement

log = logging.getLogger("csms.reports")

_INSERT_VARIABLE = (
    "INSERT INTO device_variable (station, component, component_instance, evse_id, connector_id, variable, "
    "variable_instance, attribute_type, value, mutability, data_type, unit, min_limit, max_limit, values_list, "
    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE_VARIABLE = (
    "UPDATE device_variable SET value = ?, mutability = ?, data_type = ?, unit = ?, min_limit = ?, max_limit = ?, "
    "values_list = ?, updated_at = ? WHERE id = ?"
)


def variable_key(component: dict[str, Any], variable: dict[str, Any], attribute_type: str) -> tuple:
    evse = component.get("evse") or {}
    return (component.get("name", ""), component.get("instance", ""), evse.get("id"), evse.get("connectorId"),
            variable.get("name", ""), variable.get("instance", ""), attribute_type or "Actual")


class ReportService:
    def __init__(self, events: ev.EventDispatcher, writer: Callable[[], BatchWriter], stations: StationService) -> None:
        self.events = events
        self.writer = writer  # the running core's batched writer (it exists once the core started)
        self.stations = stations

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def emit(self, station_id: str, category: str, kind: str, details: dict[str, Any]) -> None:
        self.events.emit(ev.StationReported(station_id, category=category, kind=kind, details=details))

    async def record(self, state: StationState, category: str, kind: str, *, summary: str = "",
                     details: dict[str, Any] | None = None, evse_id: int | None = None,
                     connector_id: int | None = None, severity: int | None = None,
                     timestamp: datetime | None = None) -> None:
        """Store a report in the station event log (committed before the answer) and emit it."""
        fut = self.stations.record(state.station_id, category, kind, evse_id=evse_id, connector_id=connector_id,
                                   severity=severity, summary=summary, details=details, timestamp=timestamp,
                                   wait=True)
        assert fut is not None  # wait=True always gives a commit future
        await fut
        self.emit(state.station_id, category, kind, details or {})

    async def firmware_status(self, state: StationState, status: str, *, request_id: int | None = None,
                              signed: bool = False) -> None:
        await Station.update({Station.firmware_status: status, Station.firmware_status_at: utcnow()}).where(
            Station.id == state.pk)
        await self.record(state, "firmware", status, summary=f"firmware {status}",
                          details={"request_id": request_id, "signed": signed})

    async def log_status(self, state: StationState, status: str, *, request_id: int | None = None,
                         kind: str = "log") -> None:
        await Station.update({Station.log_status: status, Station.log_status_at: utcnow()}).where(
            Station.id == state.pk)
        await self.record(state, kind, status, summary=f"{kind} upload {status}", details={"request_id": request_id})

    async def device_report(self, state: StationState, report_data: list[dict[str, Any]]) -> int:
        """Upsert 2.0.1 device-model variables from NotifyReport (or GetVariables answers)."""
        existing = {
            (r["component"], r["component_instance"], r["evse_id"], r["connector_id"], r["variable"],
             r["variable_instance"], r["attribute_type"]): r["id"]
            for r in await DeviceVariable.select(
                DeviceVariable.id, DeviceVariable.component, DeviceVariable.component_instance, DeviceVariable.evse_id,
                DeviceVariable.connector_id, DeviceVariable.variable, DeviceVariable.variable_instance,
                DeviceVariable.attribute_type,
            ).where(DeviceVariable.station == state.pk)
        }
        now = utcnow()
        statements: list[Statement] = []
        count = 0
        for item in report_data:
            component, variable = item.get("component", {}), item.get("variable", {})
            chars = item.get("variableCharacteristics") or {}
            for attr in item.get("variableAttribute") or [{}]:
                key = variable_key(component, variable, attr.get("type", "Actual"))
                common = (attr.get("value"), attr.get("mutability", ""), chars.get("dataType", ""),
                          chars.get("unit", ""), chars.get("minLimit"), chars.get("maxLimit"),
                          chars.get("valuesList", ""), now)
                if key in existing:
                    statements.append((_UPDATE_VARIABLE, (*common, existing[key])))
                else:
                    statements.append((_INSERT_VARIABLE, (state.pk, *key, *common)))
                    existing[key] = -1
                count += 1
        await self.writer().submit(statements)
        return count

    async def set_variable_value(self, state: StationState, component: dict[str, Any], variable: dict[str, Any],
                                 attribute_type: str, value: str | None) -> None:
        await self.device_report(state, [{"component": component, "variable": variable,
                                          "variableAttribute": [{"type": attribute_type, "value": value}]}])

    async def configuration(self, state: StationState, keys: list[dict[str, Any]], *, replace: bool = False) -> None:
        """Store 1.6 configuration keys (from a GetConfiguration answer or a ChangeConfiguration)."""
        now = utcnow()
        existing = {r["key"]: r["id"] for r in await ConfigurationKey.select(ConfigurationKey.id, ConfigurationKey.key)
                    .where(ConfigurationKey.station == state.pk)}
        for k in keys:
            name = k["key"]
            values: dict[Column | str, Any] = {ConfigurationKey.value: k.get("value"),
                                               ConfigurationKey.updated_at: now}
            if "readonly" in k:
                values[ConfigurationKey.readonly] = bool(k["readonly"])
            if name in existing:
                await ConfigurationKey.update(values).where(ConfigurationKey.id == existing[name])
            else:
                await ConfigurationKey(station=state.pk, key=name, value=k.get("value"),
                                       readonly=bool(k.get("readonly", False)), updated_at=now).save()

    async def charging_profiles(self, state: StationState, *, evse_id: int, profiles: list[dict[str, Any]],
                                limit_source: str) -> None:
        """Store the charging profiles a station reports it holds (2.0.1 ReportChargingProfiles:
        ``source`` "station", the charging limit source as their status). A profile reported
        again at the same EVSE replaces the one stored."""
        for profile in profiles:
            await ChargingProfile.delete().where(
                (ChargingProfile.station == state.pk) & (ChargingProfile.source == "station")
                & (ChargingProfile.evse_id == evse_id) & (ChargingProfile.profile_id == profile["id"]))
            await ChargingProfile(
                station=state.pk, evse_id=evse_id, profile_id=profile["id"],
                stack_level=profile["stackLevel"], purpose=profile["chargingProfilePurpose"],
                kind=profile["chargingProfileKind"], transaction_id=profile.get("transactionId"), payload=profile,
                source="station", status=limit_source,
            ).save()
