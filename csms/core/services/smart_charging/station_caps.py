"""What a station allows in its charging profiles (rate unit, stack level, periods), read from
the configuration keys (1.6) or device model (2.0.1) stored for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from csms.core.ocpp.validation import V16
from csms.core.tables import ConfigurationKey, DeviceVariable, Station


@dataclass
class StationCaps:
    """What a station told about its smart charging (configuration keys / device model)."""

    unit: str = "A"
    max_stack_level: int | None = None
    max_periods: int | None = None


async def read_station_caps(station_id: str) -> StationCaps:
    """Rate unit, stack level and periods the station allows, from stored configuration."""
    caps = StationCaps()
    row = await Station.select(Station.id, Station.ocpp_version).where(Station.station_id == station_id).first()
    if row is not None and row["ocpp_version"] == V16:
        keys = {k["key"]: k["value"] for k in await ConfigurationKey.select(
            ConfigurationKey.key, ConfigurationKey.value).where(ConfigurationKey.station == row["id"])}
        units = keys.get("ChargingScheduleAllowedChargingRateUnit")
        if units and "current" not in units.lower() and "power" in units.lower():
            caps.unit = "W"
        caps.max_stack_level = _int_or_none(keys.get("ChargeProfileMaxStackLevel"))
        caps.max_periods = _int_or_none(keys.get("ChargingScheduleMaxPeriods"))
    elif row is not None:
        variables = {r["variable"]: r["value"] for r in await DeviceVariable.select(
            DeviceVariable.variable, DeviceVariable.value).where(
            (DeviceVariable.station == row["id"]) & (DeviceVariable.component == "SmartChargingCtrlr")
            & (DeviceVariable.attribute_type == "Actual"))}
        units = variables.get("RateUnit")
        if units and "A" not in [u.strip() for u in units.split(",")] and "W" in units:
            caps.unit = "W"
        caps.max_stack_level = _int_or_none(variables.get("ProfileStackLevel"))
        caps.max_periods = _int_or_none(variables.get("PeriodsPerSchedule"))
    return caps


def _int_or_none(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None

