"""Energy prices over time from a tariff (pure, no I/O).

The billing plugin answers ``select_tariff`` with its own objects; what this module reads is the
OCPI 2.2.1 Tariff JSON they turn into (``tariff.to_ocpi()``, or ``choice.tariff.to_ocpi()``), so it
works with any pricing plugin that speaks OCPI. The energy price at an instant is the ENERGY
component of the first element whose time restrictions (``day_of_week``, ``start_time``/``end_time``,
``start_date``/``end_date``, local time) hold then, as OCPI prescribes. Elements with
restrictions that depend on the session itself (kWh, current, power, duration, reservation) are
left out: they cannot be known ahead.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

_SESSION_RESTRICTIONS = ("min_kwh", "max_kwh", "min_current", "max_current", "min_power", "max_power",
                         "min_duration", "max_duration", "reservation")
_WEEKDAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")


def tariff_json(answer: Any) -> dict[str, Any] | None:
    """The OCPI Tariff JSON of a ``select_tariff`` answer, when it has one."""
    tariff = getattr(answer, "tariff", answer)
    if hasattr(tariff, "to_ocpi"):
        tariff = tariff.to_ocpi()
    if isinstance(tariff, dict) and isinstance(tariff.get("elements"), list):
        return tariff
    return None


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _time_matches(r: dict[str, Any], local: datetime) -> bool:
    days = r.get("day_of_week")
    if days and _WEEKDAYS[local.weekday()] not in days:
        return False
    day = local.date().isoformat()
    if r.get("start_date") and day < r["start_date"]:
        return False
    if r.get("end_date") and day >= r["end_date"]:
        return False
    start, end = r.get("start_time"), r.get("end_time")
    if start is None and end is None:
        return True
    now = local.hour * 60 + local.minute
    a = _minutes(start) if start else 0
    b = _minutes(end) if end else 24 * 60
    if b == 0:
        b = 24 * 60
    if a == b:
        return True
    return a <= now < b if a < b else (now >= a or now < b)


def energy_price_at(tariff: dict[str, Any], when: datetime, tz: tzinfo) -> Decimal | None:
    """The energy price (per kWh, excl. VAT) in force at ``when``, or None when no element says."""
    local = when.astimezone(tz)
    for element in tariff.get("elements") or []:
        component = next((c for c in element.get("price_components") or [] if c.get("type") == "ENERGY"), None)
        if component is None:
            continue
        restrictions = element.get("restrictions") or {}
        if any(restrictions.get(k) is not None for k in _SESSION_RESTRICTIONS):
            continue
        try:
            if not _time_matches(restrictions, local):
                continue
            return Decimal(str(component["price"]))
        except (KeyError, ValueError, InvalidOperation):
            continue
    return None
