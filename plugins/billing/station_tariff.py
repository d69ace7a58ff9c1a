"""The tariff an OCPP 2.1 station calculates costs with (the core's ``station_tariff`` hook):
the tariff a driver without a card of ours would pay at the station now (the public group's
assignment, or the home station's), written as a 2.1 TariffType.

OCPI 2.2.1 and OCPP 2.1 tariffs say the same things in other words: a price component of type
ENERGY becomes a price per kWh of ``energy``, TIME one per minute of ``chargingTime`` (OCPI
prices time per hour), PARKING_TIME one per minute of ``idleTime``, FLAT a ``fixedFee``; each element's restrictions
become the conditions of its prices (times of day, weekdays, dates, energy in Wh, current, power
in W, duration in seconds), and OCPP, like OCPI, takes the first price whose conditions hold.
The VAT of a dimension's first component is its tax rate. What OCPP 2.1 cannot say is left out:
step sizes (the station bills per its own resolution), reservation restrictions, restrictions a
fixed fee cannot carry (OCPP's fixed-fee conditions know times and dates only: such a fee is
left out), and the tariff's energy mix.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from csms.plugin_api import utcnow
from plugins.billing.assignments import session_context
from plugins.billing.costing import choose_tariff
from plugins.billing.tariff import Tariff, TariffDimensionType, TariffRestrictions

_PARTS = {TariffDimensionType.ENERGY: ("energy", "priceKwh"), TariffDimensionType.TIME: ("chargingTime", "priceMinute"),
          TariffDimensionType.PARKING_TIME: ("idleTime", "priceMinute"), TariffDimensionType.FLAT: ("fixedFee", "priceFixed")}
_MAX_ID, _MAX_TEXTS, _MAX_TEXT = 60, 10, 512


def _number(value: Decimal) -> float | int:
    return int(value) if value == value.to_integral_value() else float(value)


def _conditions(r: TariffRestrictions | None, *, fixed: bool) -> dict[str, Any] | None:
    """The OCPP conditions of OCPI restrictions; ``None`` when a fixed fee's restrictions say more
    than OCPP's fixed-fee conditions can (so the fee is not offered under wrong conditions)."""
    if r is None:
        return {}
    c: dict[str, Any] = {}
    if r.start_time:
        c["startTimeOfDay"] = r.start_time
    if r.end_time:
        c["endTimeOfDay"] = r.end_time
    if r.day_of_week:
        c["dayOfWeek"] = [d.value.capitalize() for d in r.day_of_week]
    if r.start_date:
        c["validFromDate"] = r.start_date
    if r.end_date:
        c["validToDate"] = r.end_date
    more: dict[str, Any] = {}
    if r.min_kwh is not None:
        more["minEnergy"] = _number(r.min_kwh * 1000)
    if r.max_kwh is not None:
        more["maxEnergy"] = _number(r.max_kwh * 1000)
    if r.min_current is not None:
        more["minCurrent"] = _number(r.min_current)
    if r.max_current is not None:
        more["maxCurrent"] = _number(r.max_current)
    if r.min_power is not None:
        more["minPower"] = _number(r.min_power * 1000)
    if r.max_power is not None:
        more["maxPower"] = _number(r.max_power * 1000)
    if r.min_duration is not None:
        more["minTime"] = r.min_duration
    if r.max_duration is not None:
        more["maxTime"] = r.max_duration
    if fixed and (more or r.reservation is not None):
        return None
    if r.reservation is not None:
        return None  # a price for reservations only: the station has no reservation time here
    return {**c, **more}


def ocpp21_tariff(tariff: Tariff, tariff_id: str) -> dict[str, Any]:
    """``tariff`` (OCPI 2.2.1) as an OCPP 2.1 TariffType with id ``tariff_id``."""
    out: dict[str, Any] = {"tariffId": tariff_id[:_MAX_ID], "currency": tariff.currency}
    if tariff.tariff_alt_text:
        out["description"] = [{"format": "UTF8", "language": t.language, "content": t.text[:_MAX_TEXT]}
                              for t in tariff.tariff_alt_text[:_MAX_TEXTS]]
    for element in tariff.elements:
        for component in element.price_components:
            part, price_key = _PARTS[component.type]
            conditions = _conditions(element.restrictions, fixed=component.type == TariffDimensionType.FLAT)
            if conditions is None:
                continue
            price = component.price
            if price_key == "priceMinute":  # OCPI prices time per hour
                price = (price / 60).quantize(Decimal("0.000001"))
            entry: dict[str, Any] = {price_key: _number(price)}
            if conditions:
                entry["conditions"] = conditions
            target = out.setdefault(part, {"prices": []})
            target["prices"].append(entry)
            if component.vat is not None and "taxRates" not in target:
                target["taxRates"] = [{"type": "VAT", "tax": _number(component.vat)}]
    for key, price in (("minCost", tariff.min_price), ("maxCost", tariff.max_price)):
        if price is not None:
            out[key] = {"exclTax": _number(price.excl_vat)}
            if price.incl_vat is not None:
                out[key]["inclTax"] = _number(price.incl_vat)
    return out


async def station_tariff(station_id: str, evse_id: int) -> dict[str, Any] | None:
    """The public tariff at the station's EVSE now, as OCPP 2.1 has it; None without one."""
    now = utcnow()
    ctx = await session_context({"station_id": station_id, "evse_id": evse_id, "started_at": now, "id_token": ""})
    choice = await choose_tariff(ctx)
    if choice is None:
        return None
    suffix = f"-v{choice.version}" if choice.version is not None else ""
    return ocpp21_tariff(choice.tariff, f"{choice.code}{suffix}")


def _primary(language: str) -> str:
    return language.split("-")[0].split("_")[0].lower()


async def tariff_message(station_id: str, evse_id: int, id_token: str, languages: list[str]) -> dict[str, Any] | None:
    """The text of the tariff the driver of ``id_token`` pays at the station's EVSE now (its
    ``tariff_alt_text``), in the first of ``languages`` it has, else English, else its first
    text; None when that tariff has no text (or none applies)."""
    ctx = await session_context({"station_id": station_id, "evse_id": evse_id, "started_at": utcnow(),
                                 "id_token": id_token})
    choice = await choose_tariff(ctx)
    if choice is None or not choice.tariff.tariff_alt_text:
        return None
    texts = choice.tariff.tariff_alt_text
    by_language = {_primary(t.language): t for t in reversed(texts)}
    text = next((by_language[_primary(lang)] for lang in [*languages, "en"] if _primary(lang) in by_language),
                texts[0])
    return {"format": "UTF8", "language": text.language, "content": text.text[:_MAX_TEXT]}
