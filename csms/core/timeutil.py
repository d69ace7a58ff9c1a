"""UTC time helpers: OCPP/OCPI form ``YYYY-MM-DDTHH:MM:SS.mmmZ`` out, ISO 8601 in."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def ocpp_ts(dt: datetime | None = None) -> str:
    """Format as ``2024-05-01T12:00:00.000Z`` (milliseconds, ``Z``); strict peers reject other forms."""
    dt = (dt or utcnow()).astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class InvalidTimestamp(ValueError):
    """A timestamp that names no instant this system can store (out of range, no such day)."""


def parse_ts(value: str | None) -> datetime | None:
    """Parse an ISO 8601 timestamp into UTC; naive values are taken as UTC, a leap second as
    the end of the second before. Raises :class:`InvalidTimestamp` for what cannot be stored."""
    if not value:
        return None
    try:  # the common form, "...Z" or "+00:00", as it is (fromisoformat reads "Z" since 3.11)
        fast = datetime.fromisoformat(value)
    except ValueError:
        fast = None
    if fast is not None and fast.tzinfo is timezone.utc and 1 < fast.year < 9999:
        return fast
    text = value.replace("z", "Z").replace("Z", "+00:00")
    leap = ":60" in text[16:19]
    if leap:
        text = text[:17] + "59" + text[19:]
    try:
        dt = datetime.fromisoformat(text)
        dt = dt.astimezone(timezone.utc) if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
        if leap:
            dt = dt.replace(microsecond=999_000)
    except (ValueError, OverflowError) as exc:
        raise InvalidTimestamp(f"{value[:40]!r} is not a storable timestamp: {exc}") from None
    if not 1 < dt.year < 9999:  # within a day of datetime's range, which time zones would leave
        raise InvalidTimestamp(f"{value[:40]!r} is outside the years 2 to 9998")
    return dt
