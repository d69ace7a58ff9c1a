"""The tariff editor's simple form: a few prices and optional time-of-day / day-of-week rows,
turned into the OCPI 2.2.1 tariff elements an operator would otherwise write as JSON (and back,
for a stored tariff of that shape).

The elements it writes: one element per restriction row (its prices, restricted to its hours
and days), then the base element without restrictions (start fee, energy, charging time,
parking). OCPI picks, per dimension, the first element whose restrictions match and that prices
that dimension, so a row that only gives an energy price changes energy in its window and
leaves time and parking to the base prices. Charging and parking time are billed per started
minute (``step_size`` 60 s), energy per Wh (``step_size`` 1).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from csms.plugin_api import gettext

DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
ROWS = 4  # restriction rows offered on the form
PRICES = (("energy", "ENERGY", 1), ("time", "TIME", 60), ("parking", "PARKING_TIME", 60))
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_TOP_LEVEL = {"id", "currency", "elements", "last_updated", "country_code", "party_id"}


def blank_values() -> dict[str, Any]:
    """The simple form of a new tariff."""
    return {"code": "", "name": "", "currency": "EUR", "vat": "21", "flat": "", "energy": "0.35", "time": "",
            "parking": "", "time_unit": "hour", "rows": [_blank_row() for _ in range(ROWS)]}


def _blank_row() -> dict[str, Any]:
    return {"start_time": "", "end_time": "", "days": [], "energy": "", "time": "", "parking": ""}


def _amount(raw: str, label: str, errors: dict[str, str], key: str, *, per_minute: bool = False) -> Decimal | None:
    """A non-negative price with at most 4 decimals (per hour, after converting a per-minute price)."""
    text = raw.strip().replace(",", ".")
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        errors[key] = gettext("%(label)s must be a number such as 0.35, not “%(value)s”.", label=label, value=raw)
        return None
    if not value.is_finite() or value < 0:
        errors[key] = gettext("%(label)s cannot be negative.", label=label)
        return None
    if per_minute:
        value *= 60
    if value.as_tuple().exponent < -4:  # type: ignore[operator]
        errors[key] = (gettext("%(label)s has more than 4 decimals per hour.", label=label) if per_minute
                       else gettext("%(label)s has more than 4 decimals.", label=label))
        return None
    return value


def _component(kind: str, price: Decimal, step: int, vat: Decimal | None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, "price": float(price), "step_size": step}
    if vat is not None:
        out["vat"] = float(vat)
    return out


def values_from_form(form: Mapping[str, Any], getall: Any) -> dict[str, Any]:
    """What the user typed, in the shape the form template shows (kept on errors)."""
    values = {k: str(form.get(k, "") or "").strip() for k in ("code", "name", "currency", "vat", "flat", "energy",
                                                                "time", "parking", "time_unit")}
    values["rows"] = []
    for i in range(ROWS):
        row = {k: str(form.get(f"row{i}_{k}", "") or "").strip()
               for k in ("start_time", "end_time", "energy", "time", "parking")}
        row["days"] = [d for d in getall(f"row{i}_days") if d in DAYS]
        values["rows"].append(row)
    return values


def ocpi_from_values(values: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """(the OCPI tariff, {}) for the simple form's values, or (None, field errors)."""
    errors: dict[str, str] = {}
    code = values["code"]
    if not code:
        errors["code"] = gettext("Tariff id is required (letters, digits, - and _; up to 36 characters).")
    elif not re.fullmatch(r"[A-Za-z0-9_-]{1,36}", code):
        errors["code"] = gettext("Tariff id may hold letters, digits, - and _ only, up to 36 characters.")
    currency = values["currency"].upper()
    if not re.fullmatch(r"[A-Z]{3}", currency):
        errors["currency"] = gettext("Currency must be an ISO 4217 code such as EUR.")
    vat = _amount(values["vat"], gettext("VAT"), errors, "vat")
    if vat is not None and vat > 100:
        errors["vat"] = gettext("VAT is a percentage between 0 and 100.")
    per_minute = values.get("time_unit") == "minute"
    base = {"flat": _amount(values["flat"], gettext("Start fee"), errors, "flat"),
            "energy": _amount(values["energy"], gettext("Price per kWh"), errors, "energy"),
            "time": _amount(values["time"], gettext("Price per minute of charging") if per_minute
                            else gettext("Price per hour of charging"), errors, "time", per_minute=per_minute),
            "parking": _amount(values["parking"], gettext("Parking price per minute") if per_minute
                               else gettext("Parking price per hour"), errors, "parking", per_minute=per_minute)}
    row_labels = (("energy", gettext("price per kWh")),
                  ("time", gettext("price per minute") if per_minute else gettext("price per hour")),
                  ("parking", gettext("parking per minute") if per_minute else gettext("parking per hour")))
    time_labels = {"start_time": gettext("start time"), "end_time": gettext("end time")}
    elements: list[dict[str, Any]] = []
    for i, row in enumerate(values["rows"]):
        prices = {name: _amount(row[name], gettext("Row %(row)s: %(label)s", row=i + 1, label=label), errors,
                                f"row{i}_{name}", per_minute=per_minute and name != "energy")
                  for name, label in row_labels}
        restrictions: dict[str, Any] = {}
        for key in ("start_time", "end_time"):
            if row[key]:
                if _TIME.match(row[key]):
                    restrictions[key] = row[key]
                else:
                    errors[f"row{i}_{key}"] = gettext("Row %(row)s: %(label)s must be HH:MM, such as 07:00.",
                                                       row=i + 1, label=time_labels[key])
        if row["days"]:
            restrictions["day_of_week"] = [d for d in DAYS if d in row["days"]]
        has_price = any(row[name] for name, _, _ in PRICES)
        if not has_price and not restrictions and not any(f"row{i}_{k}" in errors for k in ("start_time", "end_time")):
            continue  # an empty row
        if not has_price:
            errors[f"row{i}_energy"] = gettext("Row %(row)s: give at least one price for these hours or days.", row=i + 1)
        elif not restrictions and not any(f"row{i}_{k}" in errors for k in ("start_time", "end_time")):
            errors[f"row{i}_start_time"] = gettext("Row %(row)s: give the hours or the days these prices apply to.", row=i + 1)
        components = [_component(kind, prices[name], step, vat) for name, kind, step in PRICES
                      if prices[name] is not None]
        if components:
            elements.append({"price_components": components, "restrictions": restrictions})
    base_components = ([_component("FLAT", base["flat"], 1, vat)] if base["flat"] is not None else []) + [
        _component(kind, base[name], step, vat) for name, kind, step in PRICES if base[name] is not None]
    if not base_components and not errors:
        errors["energy"] = gettext("Give at least one base price (start fee, per kWh, per hour or parking).")
    if errors:
        return None, errors
    elements.append({"price_components": base_components})
    return {"id": code, "currency": currency, "elements": elements}, {}


def _price_text(value: Any, *, per_minute: bool = False) -> str:
    amount = Decimal(str(value)) / (60 if per_minute else 1)
    return format(amount.normalize(), "f") if amount else "0"


def values_from_ocpi(ocpi: dict[str, Any], *, name: str = "") -> dict[str, Any] | None:
    """The simple form's values of a stored tariff, or None when it uses more than the form shows
    (other restrictions, step sizes, min/max prices, alternative texts...): it is then edited as JSON."""
    if set(ocpi) - _TOP_LEVEL or not ocpi.get("elements"):
        return None
    vats: set[Any] = set()
    parsed: list[tuple[dict[str, Any], dict[str, Decimal]]] = []
    steps = {kind: step for _, kind, step in PRICES} | {"FLAT": 1}
    for element in ocpi["elements"]:
        if set(element) - {"price_components", "restrictions"}:
            return None
        restrictions = element.get("restrictions") or {}
        if set(restrictions) - {"start_time", "end_time", "day_of_week"}:
            return None
        prices: dict[str, Decimal] = {}
        for c in element.get("price_components") or []:
            if set(c) - {"type", "price", "step_size", "vat"} or steps.get(c.get("type")) != c.get("step_size") \
                    or c["type"] in prices:
                return None
            vats.add(c.get("vat"))
            prices[c["type"]] = c["price"]
        parsed.append((restrictions, prices))
    *restricted, (base_restrictions, base_prices) = parsed
    if base_restrictions or len(restricted) > ROWS or len(vats) > 1:
        return None
    if any(not r or "FLAT" in p for r, p in restricted):
        return None
    vat = next(iter(vats))
    values = blank_values() | {"code": ocpi.get("id", ""), "name": name, "currency": ocpi.get("currency", ""),
                               "vat": "" if vat is None else _price_text(vat), "time_unit": "hour"}
    for key, kind in (("flat", "FLAT"), ("energy", "ENERGY"), ("time", "TIME"), ("parking", "PARKING_TIME")):
        values[key] = _price_text(base_prices[kind]) if kind in base_prices else ""
    for i, (r, p) in enumerate(restricted):
        values["rows"][i] = {"start_time": r.get("start_time", ""), "end_time": r.get("end_time", ""),
                             "days": list(r.get("day_of_week") or []),
                             **{key: _price_text(p[kind]) if kind in p else "" for key, kind, _ in PRICES}}
    return values


def same_prices(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two OCPI tariffs price alike as far as the simple form can tell: the same elements
    in order, each with the same components in any order (so saving the form unchanged adds no
    version)."""

    def canonical(t: dict[str, Any]) -> Any:
        return (t.get("id"), t.get("currency"), [
            (sorted((c["type"], Decimal(str(c["price"])), c.get("step_size"),
                     None if c.get("vat") is None else Decimal(str(c["vat"]))) for c in e.get("price_components") or []),
             e.get("restrictions") or {}) for e in t.get("elements") or []])

    return canonical(a) == canonical(b)
