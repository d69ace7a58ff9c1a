"""What a station allows in its charging profiles (rate unit, stack level, periods), read by the
adapter of its protocol version from the configuration stored for it (1.6 configuration keys,
2.0.1 device model)."""

from __future__ import annotations

from csms.core.ocpp.outbound import calls_or_newest
from csms.core.ocpp.outbound.calls import StationCaps
from csms.core.tables import Station

__all__ = ["StationCaps", "read_station_caps"]


async def read_station_caps(station_id: str) -> StationCaps:
    """Rate unit, stack level and periods the station allows, from stored configuration (its
    stored version; a version not known is read as the newest one)."""
    row = await Station.select(Station.id, Station.ocpp_version).where(Station.station_id == station_id).first()
    if row is None:
        return StationCaps()
    return await calls_or_newest(row["ocpp_version"]).station_caps(row["id"])
