"""UTC time helpers: OCPP/OCPI form ``YYYY-MM-DDTHH:MM:SS.mmmZ`` out, ISO 8601 in."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def ocpp_ts(dt: datetime | None = None) -> str:
    """Format as ``2024-05-01T12:00:00.000Z`` (milliseconds, ``Z``); strict peers reject other forms."""
    dt = (dt or utcnow()).astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_ts(value: str | None) -> datetime | None:
    """Parse an ISO 8601 timestamp; naive values are taken as UTC."""
    if not value:
        return None
    dt = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
