"""Pricing engine: turns a charging session and an OCPI 2.2.1 tariff into a cost breakdown.

Pure Python (``dataclasses``, ``decimal``, ``datetime``, ``zoneinfo``); no I/O.

Entry points
------------
``price_session(tariff, usage) -> CostBreakdown``
    Price a session described by :class:`SessionUsage` (start, end, meter
    samples, optional reservation, IANA time zone of the location).  For live
    pricing of an ongoing session pass ``end=now``.
``preview(tariff, *, energy_kwh, duration, start_local, timezone, ...)``
    Price a synthetic, linear session - the "what would a 20 kWh, 2 hour
    session starting Friday 18:00 cost?" calculator.

How a session is priced (OCPI 2.2.1, Tariffs and CDRs modules)
--------------------------------------------------------------
1. **Timeline.**  The session ``[start, end]`` is cut into slices at every
   meter sample and at every instant where a restriction of any element can
   change: local midnights, every ``start_time``/``end_time`` of the tariff
   (in the location's time zone, DST aware), ``start + min/max_duration`` and
   the moment cumulative session energy reaches a ``min_kwh``/``max_kwh``
   bound (linearly interpolated between samples).  Restrictions are evaluated
   once per slice (at its midpoint; nothing changes inside a slice).

2. **Element selection per dimension.**  For every slice and every dimension
   (ENERGY, TIME, PARKING_TIME) the *first* element in list order that has a
   price component of that dimension *and* whose restrictions all match is
   used; dimensions are looked up independently.  No match means that
   dimension is free during that slice.  Elements carrying a ``reservation``
   restriction only take part in pricing the reservation, the others only in
   pricing the charging session.  Consecutive slices with the same state and
   elements are merged into one charging period, so a session crossing a
   boundary (peak -> off-peak, midnight, weekday -> weekend, DST) is split
   there and each part is priced with its own element.

3. **Dimensions.**
   * ENERGY - kWh delivered (register difference, interpolated inside
     intervals) priced by the ENERGY component active at that time.
   * TIME - time *charging*; PARKING_TIME - time connected but *not charging*.
     An interval between two samples counts as parking when the average power
     derived from the energy register is below ``parking_threshold_w``
     (default **50 W**, i.e. "energy not increasing"); a sample's explicit
     ``charging`` flag (e.g. OCPP ``SuspendedEV``) overrides this for the
     interval that follows it.
   * FLAT - charged once per session, from the first element (list order)
     with a FLAT component that matches at the first moment of the session
     where any FLAT element matches (normally the start).  The reservation
     has its own FLAT lookup.
   * Reservation - the time from ``Reservation.start`` to ``Reservation.end``
     is priced with the TIME/FLAT components of ``RESERVATION`` elements.  For
     an expired reservation (no session followed) ``RESERVATION_EXPIRES``
     elements are looked up first, then ``RESERVATION`` elements, per
     dimension; no charging session is priced.

4. **step_size** (CDR module, "step_size").  Applied once per session to the
   *total* of a dimension, never per period:
   * ENERGY: the total billable energy (all periods with an active ENERGY
     component) is rounded up to a multiple of the ``step_size`` (Wh) of the
     component used in the *last* period that delivered energy; the extra is
     added to that last period.  Energy is billed in whole Wh at least
     (115.2 Wh at step 1 bills 116 Wh).
   * TIME and PARKING_TIME together: only the dimension of the *last* priced
     time-based period is rounded (charging time followed by parking is not
     rounded, the parking time is).  Its session total is rounded up to a
     multiple of the ``step_size`` (seconds) of that last component and the
     extra seconds are added to that last period.
   * Reservation TIME is rounded the same way, on its own.
   * ``step_size`` <= 0 on ENERGY/TIME/PARKING_TIME is treated as 1 and
     flagged ``invalid_step_size``.

5. **Min / max price.**  ``min_price`` and ``max_price`` are applied to the
   session totals; the excl.-VAT and incl.-VAT bounds are applied
   independently, as the spec says "they both apply".  When a bound has no
   ``incl_vat``, the incl.-VAT total is scaled by the same factor as the
   excl.-VAT total (from a zero subtotal it is set equal to the excl.-VAT
   bound, as no VAT rate is known).

Money and rounding
------------------
* Decimal only, never floats; arithmetic runs in a private decimal context
  (34 significant digits) so the caller's context does not matter.
* Each cost line: ``amount_excl_vat = billed_quantity x unit price``, rounded
  **half-up to 4 decimals**; ``vat_amount = amount_excl_vat x vat / 100``,
  rounded half-up to 4 decimals (0 when the component has no VAT);
  ``amount_incl_vat = amount_excl_vat + vat_amount``.  VAT is per line because
  components may carry different VAT rates.
* Totals: the 4-decimal line amounts are summed and the sums rounded
  **half-up to the currency's minor unit** (2 decimals by default; 0 for
  zero-decimal currencies such as JPY or KRW; 3 for BHD, KWD, ...; see
  ``CURRENCY_MINOR_UNITS``).  ``total_vat = total_incl_vat - total_excl_vat``,
  so the three totals always add up.
* Money is computed from exact quantities (Wh to 1e-6, seconds to the
  microsecond).  Reported quantities are Decimals too: kWh exact, hours
  rounded half-up to 9 decimals (3.6 microseconds), so reported hours may
  differ from their sum in the last digit.

Flags (``CostBreakdown.flags``)
-------------------------------
``no_meter_values``       fewer than two samples: energy 0, the whole session
                          treated as charging time.
``sparse_meter_values``   a gap longer than ``max_sample_gap`` (default 15 min)
                          between samples or between start/end and the nearest
                          sample; energy is interpolated, state inherited.
``meter_register_decreased`` the energy register went down; that step is
                          ignored.
``current_unknown``       an element with a current restriction could not be
                          evaluated because no ``current_a`` was reported (it
                          is then treated as not matching).
``invalid_step_size``     see step_size above.
``tariff_not_yet_valid`` / ``tariff_expired``  the session started outside the
                          tariff's ``[start_date_time, end_date_time)`` (OCPI: the
                          tariff becomes inactive at ``end_date_time``)
                          (priced anyway; the tariff valid at start applies).
``reservation_expired_session_ignored`` an expired reservation was given with
                          a non-empty session; only the reservation is priced.
``min_price_applied`` / ``max_price_applied``  also exposed as booleans.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_CEILING, ROUND_HALF_UP, Context, Decimal, localcontext
from typing import Any, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from .tariff import (
    Price,
    PriceComponent,
    ReservationRestrictionType,
    Tariff,
    TariffDimensionType,
    TariffElement,
    TariffRestrictions,
    format_ocpi_datetime,
    parse_local_date,
    parse_time_of_day,
    to_decimal,
)

__all__ = [
    "DEFAULT_PARKING_THRESHOLD_W",
    "DEFAULT_MAX_SAMPLE_GAP",
    "LINE_DECIMALS",
    "CURRENCY_MINOR_UNITS",
    "currency_minor_unit",
    "round_money",
    "MeterSample",
    "Reservation",
    "SessionUsage",
    "ChargingPeriod",
    "CostLine",
    "CostBreakdown",
    "price_session",
    "preview",
]

#: Average power (W) below which an interval counts as "not charging" (parking).
DEFAULT_PARKING_THRESHOLD_W = Decimal("50")
#: Longer gaps without a meter sample raise the ``sparse_meter_values`` flag.
DEFAULT_MAX_SAMPLE_GAP = timedelta(minutes=15)
#: Decimals kept on every cost line before totals are rounded to the currency.
LINE_DECIMALS = 4

#: ISO 4217 currencies whose minor unit is not 2 decimals.
CURRENCY_MINOR_UNITS: Mapping[str, int] = {
    # zero-decimal currencies
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0,
    # three-decimal currencies
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}

_CTX = Context(prec=34, rounding=ROUND_HALF_UP)
_UTC = timezone.utc
_LINE_Q = Decimal(1).scaleb(-LINE_DECIMALS)
_WH_Q = Decimal("0.000001")  # interpolated energies are kept at micro-Wh
_H_Q = Decimal("0.000000001")  # reported hours: 9 decimals (3.6 microseconds)
_ZERO = Decimal(0)
_ONE = Decimal(1)
_US_PER_S = 1_000_000
_DAY_US = 86_400 * _US_PER_S

_ENERGY = TariffDimensionType.ENERGY
_TIME = TariffDimensionType.TIME
_PARKING = TariffDimensionType.PARKING_TIME
_FLAT = TariffDimensionType.FLAT

PHASE_SESSION = "session"
PHASE_RESERVATION = "reservation"


def currency_minor_unit(currency: str) -> int:
    """Number of decimals of the currency's minor unit (2 unless listed)."""
    return CURRENCY_MINOR_UNITS.get((currency or "").upper(), 2)


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round half-up to the currency's minor unit (EUR 2, JPY 0, KWD 3 decimals)."""
    with localcontext(_CTX):
        return to_decimal(amount).quantize(Decimal(1).scaleb(-currency_minor_unit(currency)),
                                           rounding=ROUND_HALF_UP)


def _q4(amount: Decimal) -> Decimal:
    return amount.quantize(_LINE_Q, rounding=ROUND_HALF_UP)


def _us(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * _US_PER_S + delta.microseconds


def _seconds(delta: timedelta) -> Decimal:
    return Decimal(_us(delta)) / _US_PER_S


def _hours(seconds: Decimal) -> Decimal:
    """Seconds -> hours for reporting, rounded to 9 decimals (money uses exact seconds)."""
    return (seconds / 3600).quantize(_H_Q, rounding=ROUND_HALF_UP)


def _aware(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (UTC), got a naive datetime")
    return value.astimezone(timezone.utc)


# ---------------------------------------------------------------------------
# Input types
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MeterSample:
    """One meter reading.

    ``energy_wh`` is the cumulative energy register (Wh) - only differences
    matter, the first sample is the baseline.  ``power_w`` and ``current_a``
    (sum over phases) are instantaneous readings; each holds until the next
    sample and feeds the min/max_power and min/max_current restrictions
    (without ``power_w`` the interval's average power from the register is
    used).  ``charging`` optionally states whether the EV is charging from
    this sample on (True) or connected but not requesting power (False,
    PARKING_TIME); ``None`` lets the engine derive it from the register.
    """

    timestamp: datetime
    energy_wh: Decimal | int
    power_w: Decimal | None = None
    current_a: Decimal | None = None
    charging: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "timestamp", _aware(self.timestamp, "MeterSample.timestamp"))
        object.__setattr__(self, "energy_wh", to_decimal(self.energy_wh, what="energy_wh"))
        for name in ("power_w", "current_a"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, to_decimal(value, what=name))


@dataclass(frozen=True)
class Reservation:
    """A reservation preceding the session: from ``start`` (reservation made)
    until ``end`` (charging started, or the reservation expired).  Set
    ``expired=True`` when no charging session followed."""

    start: datetime
    end: datetime
    expired: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _aware(self.start, "Reservation.start"))
        object.__setattr__(self, "end", _aware(self.end, "Reservation.end"))
        if self.end < self.start:
            raise ValueError("Reservation.end is before Reservation.start")


@dataclass(frozen=True)
class SessionUsage:
    """What happened in a session: aware UTC ``start``/``end`` (``end`` = now for
    live pricing), meter ``samples``, optional ``reservation`` and the IANA
    ``timezone`` of the location (restrictions use local time)."""

    start: datetime
    end: datetime
    samples: Sequence[MeterSample] = ()
    reservation: Reservation | None = None
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _aware(self.start, "SessionUsage.start"))
        object.__setattr__(self, "end", _aware(self.end, "SessionUsage.end"))
        if self.end < self.start:
            raise ValueError("SessionUsage.end is before SessionUsage.start")
        object.__setattr__(self, "samples", tuple(self.samples))
        ZoneInfo(self.timezone)  # fail early on an unknown zone


# ---------------------------------------------------------------------------
# Output types
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ChargingPeriod:
    """An OCPI-style charging period: a stretch with constant state and elements.

    ``dimensions`` maps dimension names to volumes: ``ENERGY`` (kWh), ``TIME``
    (hours charging), ``PARKING_TIME`` (hours), ``RESERVATION_TIME`` (hours) and
    ``FLAT`` (1, only on the period where the flat fee was charged).
    ``element_indices`` gives the tariff element used per priced dimension;
    ``tariff_element_index`` is the element of the period's time dimension
    (TIME / PARKING_TIME / reservation TIME), else of ENERGY, else ``None``.
    ``phase`` is ``"charging"``, ``"parking"`` or ``"reservation"``.
    """

    start_date_time: datetime
    end_date_time: datetime
    phase: str
    dimensions: Mapping[str, Decimal]
    tariff_element_index: int | None
    element_indices: Mapping[str, int] = field(default_factory=dict)

    def to_ocpi(self, tariff_id: str | None = None) -> dict[str, Any]:
        """OCPI 2.2.1 ``ChargingPeriod`` JSON (``FLAT`` is not a CdrDimensionType
        and is left out; volumes are numbers with 4 decimals)."""
        dims = [
            {"type": name, "volume": float(_q4(volume))}
            for name, volume in self.dimensions.items() if name != "FLAT"
        ]
        out: dict[str, Any] = {"start_date_time": format_ocpi_datetime(self.start_date_time),
                               "dimensions": dims}
        if tariff_id is not None:
            out["tariff_id"] = tariff_id
        return out


@dataclass(frozen=True)
class CostLine:
    """One priced quantity.

    ``quantity`` / ``billed_quantity`` are in the OCPI unit (``unit``): kWh for
    ENERGY, hours for TIME / PARKING_TIME, ``1`` for FLAT; ``billed_quantity``
    includes the step_size round-up (only ever on the last line of a
    dimension).  ``unit_price`` and amounts exclude VAT unless named incl.
    ``phase`` is ``"session"`` or ``"reservation"``.
    """

    type: TariffDimensionType
    phase: str
    tariff_element_index: int
    period_start: datetime
    period_end: datetime
    quantity: Decimal
    billed_quantity: Decimal
    unit: str
    unit_price: Decimal
    step_size: int
    amount_excl_vat: Decimal
    vat_percent: Decimal | None
    vat_amount: Decimal
    amount_incl_vat: Decimal


@dataclass(frozen=True)
class CostBreakdown:
    """Result of pricing a session.  See the module docstring for the rules.

    ``total_time_h`` is the whole session duration (OCPI ``total_time``),
    ``total_charging_time_h`` + ``total_parking_time_h`` add up to it.
    ``subtotal_*`` are the rounded sums of the lines before min/max price;
    ``total_*`` are after.  Reservation time is reported separately.
    """

    tariff_id: str
    currency: str
    periods: tuple[ChargingPeriod, ...]
    lines: tuple[CostLine, ...]
    total_energy_kwh: Decimal
    total_time_h: Decimal
    total_charging_time_h: Decimal
    total_parking_time_h: Decimal
    total_reservation_time_h: Decimal
    subtotal_excl_vat: Decimal
    subtotal_incl_vat: Decimal
    total_cost_excl_vat: Decimal
    total_vat: Decimal
    total_cost_incl_vat: Decimal
    min_price_applied: bool
    max_price_applied: bool
    flags: tuple[str, ...]

    @property
    def price_adjustment_excl_vat(self) -> Decimal:
        """Amount added (min price) or removed (max price) excl. VAT."""
        return self.total_cost_excl_vat - self.subtotal_excl_vat

    @property
    def price_adjustment_incl_vat(self) -> Decimal:
        return self.total_cost_incl_vat - self.subtotal_incl_vat

    def lines_of(self, dimension: TariffDimensionType | str, phase: str | None = None) -> list[CostLine]:
        dimension = TariffDimensionType(dimension)
        return [l for l in self.lines if l.type is dimension and (phase is None or l.phase == phase)]

    def _category(self, dimension: TariffDimensionType | None, phase: str) -> Price | None:
        lines = [l for l in self.lines if l.phase == phase and (dimension is None or l.type is dimension)]
        if not lines:
            return None
        return Price(round_money(sum((l.amount_excl_vat for l in lines), _ZERO), self.currency),
                     round_money(sum((l.amount_incl_vat for l in lines), _ZERO), self.currency))

    def cdr_fields(self, tariff_id: str | None = None) -> dict[str, Any]:
        """The cost/volume fields of an OCPI 2.2.1 CDR, as JSON-ready values.

        Category costs (``total_energy_cost`` ...) are the rounded line sums
        before min/max price; ``total_cost`` is after.
        """
        out: dict[str, Any] = {
            "currency": self.currency,
            "charging_periods": [p.to_ocpi(tariff_id) for p in self.periods],
            "total_cost": Price(self.total_cost_excl_vat, self.total_cost_incl_vat).to_ocpi(),
            "total_energy": float(_q4(self.total_energy_kwh)),
            "total_time": float(_q4(self.total_time_h)),
            "total_parking_time": float(_q4(self.total_parking_time_h)),
        }
        for key, dim, phase in (("total_fixed_cost", _FLAT, PHASE_SESSION),
                                ("total_energy_cost", _ENERGY, PHASE_SESSION),
                                ("total_time_cost", _TIME, PHASE_SESSION),
                                ("total_parking_cost", _PARKING, PHASE_SESSION),
                                ("total_reservation_cost", None, PHASE_RESERVATION)):
            price = self._category(dim, phase)
            if price is not None:
                out[key] = price.to_ocpi()
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (Decimals as strings, datetimes as OCPI strings)."""

        def dec(value: Decimal | None, places: int | None = None) -> str | None:
            if value is None:
                return None
            if places is not None:
                value = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
            return str(value)

        return {
            "tariff_id": self.tariff_id,
            "currency": self.currency,
            "periods": [
                {
                    "start_date_time": format_ocpi_datetime(p.start_date_time),
                    "end_date_time": format_ocpi_datetime(p.end_date_time),
                    "phase": p.phase,
                    "dimensions": {k: dec(v, 6) for k, v in p.dimensions.items()},
                    "tariff_element_index": p.tariff_element_index,
                    "element_indices": dict(p.element_indices),
                }
                for p in self.periods
            ],
            "lines": [
                {
                    "type": l.type.value,
                    "phase": l.phase,
                    "tariff_element_index": l.tariff_element_index,
                    "period_start": format_ocpi_datetime(l.period_start),
                    "period_end": format_ocpi_datetime(l.period_end),
                    "quantity": dec(l.quantity, 6),
                    "billed_quantity": dec(l.billed_quantity, 6),
                    "unit": l.unit,
                    "unit_price": dec(l.unit_price),
                    "step_size": l.step_size,
                    "amount_excl_vat": dec(l.amount_excl_vat),
                    "vat_percent": dec(l.vat_percent),
                    "vat_amount": dec(l.vat_amount),
                    "amount_incl_vat": dec(l.amount_incl_vat),
                }
                for l in self.lines
            ],
            "total_energy_kwh": dec(self.total_energy_kwh, 6),
            "total_time_h": dec(self.total_time_h, 6),
            "total_charging_time_h": dec(self.total_charging_time_h, 6),
            "total_parking_time_h": dec(self.total_parking_time_h, 6),
            "total_reservation_time_h": dec(self.total_reservation_time_h, 6),
            "subtotal_excl_vat": dec(self.subtotal_excl_vat),
            "subtotal_incl_vat": dec(self.subtotal_incl_vat),
            "total_cost_excl_vat": dec(self.total_cost_excl_vat),
            "total_vat": dec(self.total_vat),
            "total_cost_incl_vat": dec(self.total_cost_incl_vat),
            "min_price_applied": self.min_price_applied,
            "max_price_applied": self.max_price_applied,
            "flags": list(self.flags),
        }


# ---------------------------------------------------------------------------
# Compiled restrictions
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    index: int
    element: TariffElement
    reservation: ReservationRestrictionType | None
    tod: tuple[int, int] | None  # (start_us, end_us) since local midnight; None = any time
    start_date: date | None
    end_date: date | None
    min_kwh: Decimal | None
    max_kwh: Decimal | None
    min_current: Decimal | None
    max_current: Decimal | None
    min_power: Decimal | None
    max_power: Decimal | None
    min_duration: Decimal | None
    max_duration: Decimal | None
    days: frozenset[int] | None
    tod_minutes: tuple[int, ...]  # boundaries to cut the timeline at


def _compile(tariff: Tariff) -> list[_Rule]:
    rules = []
    for i, element in enumerate(tariff.elements):
        r = element.restrictions or TariffRestrictions()
        where = f"elements[{i}].restrictions"
        try:
            s = None if r.start_time is None else parse_time_of_day(r.start_time)
            e = None if r.end_time is None else parse_time_of_day(r.end_time)
            sd = None if r.start_date is None else parse_local_date(r.start_date)
            ed = None if r.end_date is None else parse_local_date(r.end_date)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if s is None and e is None:
            tod = None
        else:
            s_us = (s or 0) * 60 * _US_PER_S
            e_us = _DAY_US if e is None else e * 60 * _US_PER_S
            tod = None if (e is not None and e_us == s_us) else (s_us, e_us)
        rules.append(_Rule(
            index=i, element=element, reservation=r.reservation, tod=tod,
            start_date=sd, end_date=ed,
            min_kwh=r.min_kwh, max_kwh=r.max_kwh,
            min_current=r.min_current, max_current=r.max_current,
            min_power=r.min_power, max_power=r.max_power,
            min_duration=None if r.min_duration is None else Decimal(r.min_duration),
            max_duration=None if r.max_duration is None else Decimal(r.max_duration),
            days=frozenset(d.weekday for d in r.day_of_week) if r.day_of_week else None,
            tod_minutes=tuple(m for m in (s, e) if m is not None),
        ))
    return rules


@dataclass(frozen=True)
class _Ctx:
    local: datetime
    energy_kwh: Decimal
    power_kw: Decimal
    current_a: Decimal | None
    elapsed_s: Decimal


def _matches(rule: _Rule, ctx: _Ctx, flags: set[str]) -> bool:
    local = ctx.local
    if rule.tod is not None:
        t = ((local.hour * 60 + local.minute) * 60 + local.second) * _US_PER_S + local.microsecond
        s, e = rule.tod
        if s < e:
            if not s <= t < e:
                return False
        elif not (t >= s or t < e):  # wraps past midnight
            return False
    if rule.days is not None and local.weekday() not in rule.days:
        return False
    d = local.date()
    if rule.start_date is not None and d < rule.start_date:
        return False
    if rule.end_date is not None and d >= rule.end_date:
        return False
    if rule.min_kwh is not None and ctx.energy_kwh < rule.min_kwh:
        return False
    if rule.max_kwh is not None and ctx.energy_kwh >= rule.max_kwh:
        return False
    if rule.min_duration is not None and ctx.elapsed_s < rule.min_duration:
        return False
    if rule.max_duration is not None and ctx.elapsed_s >= rule.max_duration:
        return False
    if rule.min_power is not None and ctx.power_kw < rule.min_power:
        return False
    if rule.max_power is not None and ctx.power_kw >= rule.max_power:
        return False
    if rule.min_current is not None or rule.max_current is not None:
        if ctx.current_a is None:
            flags.add("current_unknown")
            return False
        if rule.min_current is not None and ctx.current_a < rule.min_current:
            return False
        if rule.max_current is not None and ctx.current_a >= rule.max_current:
            return False
    return True


def _candidates(rules: list[_Rule], phase: str, expired: bool) -> list[_Rule]:
    if phase == PHASE_SESSION:
        return [r for r in rules if r.reservation is None]
    res = [r for r in rules if r.reservation is ReservationRestrictionType.RESERVATION]
    if expired:
        exp = [r for r in rules if r.reservation is ReservationRestrictionType.RESERVATION_EXPIRES]
        return exp + res
    return res


def _select(candidates: list[_Rule], dim: TariffDimensionType, ctx: _Ctx,
            flags: set[str]) -> tuple[int, PriceComponent] | None:
    for rule in candidates:
        pc = rule.element.component(dim)
        if pc is not None and _matches(rule, ctx, flags):
            return rule.index, pc
    return None


# ---------------------------------------------------------------------------
# Meter timeline
# ---------------------------------------------------------------------------


@dataclass
class _Seg:
    t0: datetime
    t1: datetime
    e0: Decimal  # cumulative effective register, Wh
    e1: Decimal
    power_w: Decimal
    current_a: Decimal | None
    charging: bool


class _Timeline:
    """Piecewise-linear energy and piecewise-constant electrical state."""

    def __init__(self, segs: list[_Seg]):
        self.segs = segs
        self.starts = [s.t0 for s in segs]

    def seg_at(self, t: datetime) -> _Seg:
        i = bisect.bisect_right(self.starts, t) - 1
        return self.segs[max(0, min(i, len(self.segs) - 1))]

    def energy_at(self, t: datetime) -> Decimal:
        seg = self.seg_at(t)
        if t <= seg.t0:
            return seg.e0
        if t >= seg.t1:
            return seg.e1
        span = _us(seg.t1 - seg.t0)
        return (seg.e0 + (seg.e1 - seg.e0) * _us(t - seg.t0) / span).quantize(_WH_Q)

    def crossing(self, wh: Decimal, after: datetime, before: datetime) -> datetime | None:
        """First instant in (after, before) where the register reaches ``wh``."""
        for seg in self.segs:
            if seg.t1 <= after or seg.t0 >= before or seg.e1 <= seg.e0:
                continue
            if seg.e0 < wh <= seg.e1:
                span = _us(seg.t1 - seg.t0)
                offset = ((wh - seg.e0) * span / (seg.e1 - seg.e0)).to_integral_value(ROUND_CEILING)
                t = seg.t0 + timedelta(microseconds=int(offset))
                return t if after < t < before else None
        return None


def _build_timeline(start: datetime, end: datetime, samples: Sequence[MeterSample],
                    threshold_w: Decimal, max_gap: timedelta, flags: set[str]) -> _Timeline:
    # one sample per timestamp (the last one given wins), sorted
    by_time: dict[datetime, MeterSample] = {}
    for s in samples:
        by_time[s.timestamp] = s
    ordered = [by_time[t] for t in sorted(by_time)]

    if len(ordered) < 2:
        if end > start:
            flags.add("no_meter_values")
        only = ordered[0] if ordered else None
        charging = True if only is None or only.charging is None else only.charging
        power = (only.power_w if only is not None and only.power_w is not None else _ZERO)
        current = only.current_a if only is not None else None
        t0 = min(start, only.timestamp) if only else start
        t1 = max(end, only.timestamp) if only else end
        return _Timeline([_Seg(t0, t1, _ZERO, _ZERO, power, current, charging)])

    # effective cumulative register: ignores decreases (meter reset / glitch)
    eff: list[Decimal] = [_ZERO]
    for prev, cur in zip(ordered, ordered[1:]):
        step = cur.energy_wh - prev.energy_wh
        if step < 0:
            flags.add("meter_register_decreased")
            step = _ZERO
        eff.append(eff[-1] + step)

    measured: list[_Seg] = []
    for (a, ea), (b, eb) in zip(zip(ordered, eff), zip(ordered[1:], eff[1:])):
        secs = _seconds(b.timestamp - a.timestamp)
        avg_w = (eb - ea) * 3600 / secs
        charging = a.charging if a.charging is not None else avg_w >= threshold_w
        power = a.power_w if a.power_w is not None else avg_w
        measured.append(_Seg(a.timestamp, b.timestamp, ea, eb, power, a.current_a, charging))

    segs = list(measured)
    first, last = ordered[0], ordered[-1]
    if start < first.timestamp:
        ref = measured[0]
        charging = first.charging if first.charging is not None else ref.charging
        segs.insert(0, _Seg(start, first.timestamp, _ZERO, _ZERO, ref.power_w, ref.current_a, charging))
    if last.timestamp < end:
        ref = measured[-1]
        charging = last.charging if last.charging is not None else ref.charging
        power = last.power_w if last.power_w is not None else ref.power_w
        current = last.current_a if last.current_a is not None else ref.current_a
        segs.append(_Seg(last.timestamp, end, eff[-1], eff[-1], power, current, charging))

    for seg in segs:
        lo, hi = max(seg.t0, start), min(seg.t1, end)
        if hi - lo > max_gap:
            flags.add("sparse_meter_values")
            break
    return _Timeline(segs)


# ---------------------------------------------------------------------------
# Slicing
# ---------------------------------------------------------------------------


def _tz_cuts(start: datetime, end: datetime, tz: ZoneInfo, minutes: Iterable[int]) -> set[datetime]:
    """UTC instants in (start, end) where local wall-clock time crosses one of
    ``minutes`` (after midnight) or the UTC offset changes (DST)."""
    cuts: set[datetime] = set()
    minutes = sorted(set(minutes) | {0})
    day = start.astimezone(tz).date() - timedelta(days=1)
    last_day = end.astimezone(tz).date() + timedelta(days=1)
    while day <= last_day:
        for m in minutes:
            for fold in (0, 1):
                local = datetime.combine(day, time(m // 60, m % 60), tzinfo=tz).replace(fold=fold)
                u = local.astimezone(timezone.utc)
                if start < u < end:
                    cuts.add(u)
        day += timedelta(days=1)

    def offset(u: datetime) -> timedelta:
        return u.astimezone(tz).utcoffset()

    def at(ts: int) -> datetime:
        return datetime.fromtimestamp(ts, _UTC)

    t = start
    while t < end:
        nxt = min(t + timedelta(hours=12), end)
        before = offset(t)
        if before != offset(nxt):
            # whole-second binary search for the first instant with the new offset
            lo, hi = int(t.timestamp()), int(nxt.timestamp()) + 1
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if offset(at(mid)) == before:
                    lo = mid
                else:
                    hi = mid
            if start < at(hi) < end:
                cuts.add(at(hi))
        t = nxt
    return cuts


@dataclass
class _Slice:
    t0: datetime
    t1: datetime
    e_wh: Decimal  # energy delivered in the slice
    charging: bool
    ctx: _Ctx


def _slices(start: datetime, end: datetime, rules: list[_Rule], timeline: _Timeline | None,
            tz: ZoneInfo) -> list[_Slice]:
    if end <= start:
        return []
    points = {start, end}
    points |= _tz_cuts(start, end, tz, (m for r in rules for m in r.tod_minutes))
    for r in rules:
        for d in (r.min_duration, r.max_duration):
            if d is not None:
                t = start + timedelta(microseconds=int(d * _US_PER_S))
                if start < t < end:
                    points.add(t)
    e_start = _ZERO
    if timeline is not None:
        for seg in timeline.segs:
            for t in (seg.t0, seg.t1):
                if start < t < end:
                    points.add(t)
        e_start = timeline.energy_at(start)
        for r in rules:
            for kwh in (r.min_kwh, r.max_kwh):
                if kwh is not None and kwh > 0:
                    t = timeline.crossing(e_start + kwh * 1000, start, end)
                    if t is not None:
                        points.add(t)

    ordered = sorted(points)
    out: list[_Slice] = []
    prev_e = e_start
    for a, b in zip(ordered, ordered[1:]):
        mid = a + (b - a) / 2
        if timeline is not None:
            seg = timeline.seg_at(mid)
            e_b = timeline.energy_at(b)
            e_mid = timeline.energy_at(mid)
            power_kw, current, charging = seg.power_w / 1000, seg.current_a, seg.charging
        else:  # reservation: nothing is delivered
            e_b = e_mid = _ZERO
            power_kw, current, charging = _ZERO, None, False
        ctx = _Ctx(local=mid.astimezone(tz), energy_kwh=(e_mid - e_start) / 1000,
                   power_kw=power_kw, current_a=current, elapsed_s=_seconds(mid - start))
        out.append(_Slice(a, b, e_b - prev_e, charging, ctx))
        prev_e = e_b
    return out


# ---------------------------------------------------------------------------
# Periods and lines
# ---------------------------------------------------------------------------


@dataclass
class _Period:
    t0: datetime
    t1: datetime
    phase: str  # charging | parking | reservation
    energy_wh: Decimal
    seconds: Decimal
    energy_sel: tuple[int, PriceComponent] | None
    time_sel: tuple[int, PriceComponent] | None
    flat: bool = False

    @property
    def time_dim(self) -> TariffDimensionType:
        return _PARKING if self.phase == "parking" else _TIME


@dataclass
class _Line:
    dim: TariffDimensionType
    phase: str
    index: int
    pc: PriceComponent
    t0: datetime
    t1: datetime
    qty: Decimal  # Wh, seconds, or 1
    billed: Decimal


def _price_phase(phase: str, start: datetime, end: datetime, rules: list[_Rule], expired: bool,
                 timeline: _Timeline | None, tz: ZoneInfo,
                 flags: set[str]) -> tuple[list[_Period], list[_Line], dict[str, Decimal]]:
    cands = _candidates(rules, phase, expired)
    slices = _slices(start, end, cands, timeline, tz)

    periods: list[_Period] = []
    flat: tuple[int, PriceComponent] | None = None
    flat_period: int | None = None
    for sl in slices:
        if phase == PHASE_RESERVATION:
            kind = "reservation"
            energy_sel = None
            time_sel = _select(cands, _TIME, sl.ctx, flags)
        else:
            kind = "charging" if sl.charging else "parking"
            energy_sel = _select(cands, _ENERGY, sl.ctx, flags)
            time_sel = _select(cands, _TIME if sl.charging else _PARKING, sl.ctx, flags)
        key = (kind, energy_sel and energy_sel[0], time_sel and time_sel[0])
        last = periods[-1] if periods else None
        if last is not None and (last.phase, last.energy_sel and last.energy_sel[0],
                                 last.time_sel and last.time_sel[0]) == key:
            last.t1 = sl.t1
            last.energy_wh += sl.e_wh
            last.seconds += _seconds(sl.t1 - sl.t0)
        else:
            periods.append(_Period(sl.t0, sl.t1, kind, sl.e_wh, _seconds(sl.t1 - sl.t0),
                                   energy_sel, time_sel))
        if flat is None:
            flat = _select(cands, _FLAT, sl.ctx, flags)
            if flat is not None:
                flat_period = len(periods) - 1

    if not slices:  # zero-length: only a flat fee can apply, evaluated at the start
        ctx = _Ctx(local=start.astimezone(tz), energy_kwh=_ZERO, power_kw=_ZERO,
                   current_a=None, elapsed_s=_ZERO)
        flat = _select(cands, _FLAT, ctx, flags)

    line_phase = PHASE_RESERVATION if phase == PHASE_RESERVATION else PHASE_SESSION
    lines: list[_Line] = []
    if flat is not None:
        if flat_period is not None:
            periods[flat_period].flat = True
            p = periods[flat_period]
            t0, t1 = p.t0, p.t1
        else:
            t0 = t1 = start
        lines.append(_Line(_FLAT, line_phase, flat[0], flat[1], t0, t1, _ONE, _ONE))

    energy_lines: list[_Line] = []
    time_lines: list[_Line] = []
    for p in periods:
        if p.energy_sel is not None and p.energy_wh > 0:
            energy_lines.append(_Line(_ENERGY, line_phase, p.energy_sel[0], p.energy_sel[1],
                                      p.t0, p.t1, p.energy_wh, p.energy_wh))
        if p.time_sel is not None and p.seconds > 0:
            time_lines.append(_Line(p.time_dim, line_phase, p.time_sel[0], p.time_sel[1],
                                    p.t0, p.t1, p.seconds, p.seconds))

    # step_size: once per session on the total, extra goes to the last line
    if energy_lines:
        _apply_step(energy_lines, flags)
    if time_lines:
        last_dim = time_lines[-1].dim
        _apply_step([l for l in time_lines if l.dim is last_dim], flags)
    lines.extend(energy_lines)
    lines.extend(time_lines)

    totals = {
        "charging_s": sum((p.seconds for p in periods if p.phase == "charging"), _ZERO),
        "parking_s": sum((p.seconds for p in periods if p.phase == "parking"), _ZERO),
        "reservation_s": sum((p.seconds for p in periods if p.phase == "reservation"), _ZERO),
    }
    return periods, lines, totals


def _apply_step(group: list[_Line], flags: set[str]) -> None:
    """Round the group's total up to the last line's step_size; the extra goes
    to that last line (OCPI: step_size applies to the session total)."""
    last = group[-1]
    step = last.pc.step_size
    if not isinstance(step, int) or step <= 0:
        flags.add("invalid_step_size")
        step = 1
    total = sum((l.qty for l in group), _ZERO)
    billed_total = (total / step).to_integral_value(ROUND_CEILING) * step
    last.billed = last.qty + (billed_total - total)


def _to_cost_line(line: _Line) -> CostLine:
    pc = line.pc
    if line.dim is _ENERGY:
        amount = line.billed * pc.price / 1000
        qty, billed, unit = line.qty / 1000, line.billed / 1000, "kWh"
    elif line.dim is _FLAT:
        amount = pc.price
        qty, billed, unit = line.qty, line.billed, "session"
    else:
        amount = line.billed * pc.price / 3600
        qty, billed, unit = _hours(line.qty), _hours(line.billed), "h"
    amount = _q4(amount)
    vat_amount = _q4(_ZERO if pc.vat is None else amount * pc.vat / 100)
    return CostLine(
        type=line.dim, phase=line.phase, tariff_element_index=line.index,
        period_start=line.t0, period_end=line.t1, quantity=qty, billed_quantity=billed,
        unit=unit, unit_price=pc.price, step_size=pc.step_size,
        amount_excl_vat=amount, vat_percent=pc.vat, vat_amount=vat_amount,
        amount_incl_vat=amount + vat_amount,
    )


def _to_charging_period(p: _Period, energy_kwh: Decimal | None) -> ChargingPeriod:
    dims: dict[str, Decimal] = {}
    indices: dict[str, int] = {}
    hours = _hours(p.seconds)
    if p.phase == "reservation":
        dims["RESERVATION_TIME"] = hours
        if p.time_sel is not None:
            indices["TIME"] = p.time_sel[0]
    else:
        dims["ENERGY"] = energy_kwh if energy_kwh is not None else p.energy_wh / 1000
        dims[p.time_dim.value] = hours
        if p.energy_sel is not None:
            indices["ENERGY"] = p.energy_sel[0]
        if p.time_sel is not None:
            indices[p.time_dim.value] = p.time_sel[0]
    if p.flat:
        dims["FLAT"] = _ONE
    main = p.time_sel or p.energy_sel
    return ChargingPeriod(
        start_date_time=p.t0, end_date_time=p.t1, phase=p.phase, dimensions=dims,
        tariff_element_index=main[0] if main else None, element_indices=indices,
    )


def _apply_bounds(excl: Decimal, incl: Decimal, bound: Price | None, currency: str,
                  is_min: bool) -> tuple[Decimal, Decimal, bool]:
    if bound is None:
        return excl, incl, False
    applied = False
    b_excl = round_money(bound.excl_vat, currency)
    if (excl < b_excl) if is_min else (excl > b_excl):
        if bound.incl_vat is None:
            incl = round_money(incl * b_excl / excl, currency) if excl else b_excl
        excl, applied = b_excl, True
    if bound.incl_vat is not None:
        b_incl = round_money(bound.incl_vat, currency)
        if (incl < b_incl) if is_min else (incl > b_incl):
            incl, applied = b_incl, True
    return excl, incl, applied


# ---------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------


def price_session(tariff: Tariff, usage: SessionUsage, *,
                  parking_threshold_w: Decimal | int = DEFAULT_PARKING_THRESHOLD_W,
                  max_sample_gap: timedelta = DEFAULT_MAX_SAMPLE_GAP) -> CostBreakdown:
    """Price ``usage`` with ``tariff`` following OCPI 2.2.1 (see module docstring).

    Raises ``ValueError`` when the tariff has malformed restriction times/dates
    (run :func:`plugins.billing.tariff.validate_tariff` first for a readable
    report) or when the usage is inconsistent (naive datetimes, end < start).
    """
    with localcontext(_CTX):
        threshold = to_decimal(parking_threshold_w, what="parking_threshold_w")
        tz = ZoneInfo(usage.timezone)
        rules = _compile(tariff)
        flags: set[str] = set()
        reservation = usage.reservation

        anchor = reservation.start if reservation is not None else usage.start
        if tariff.start_date_time is not None and anchor < tariff.start_date_time:
            flags.add("tariff_not_yet_valid")
        if tariff.end_date_time is not None and anchor >= tariff.end_date_time:  # inactive from that instant
            flags.add("tariff_expired")

        periods: list[ChargingPeriod] = []
        lines: list[_Line] = []
        res_seconds = charging_s = parking_s = _ZERO
        total_energy_wh = _ZERO
        session_seconds = _ZERO

        if reservation is not None:
            r_periods, r_lines, r_tot = _price_phase(
                PHASE_RESERVATION, reservation.start, reservation.end, rules, reservation.expired,
                None, tz, flags)
            periods.extend(_to_charging_period(p, None) for p in r_periods)
            lines.extend(r_lines)
            res_seconds = r_tot["reservation_s"]

        if reservation is not None and reservation.expired:
            if usage.end > usage.start or usage.samples:
                flags.add("reservation_expired_session_ignored")
        else:
            timeline = _build_timeline(usage.start, usage.end, usage.samples, threshold,
                                       max_sample_gap, flags)
            s_periods, s_lines, s_tot = _price_phase(
                PHASE_SESSION, usage.start, usage.end, rules, False, timeline, tz, flags)
            periods.extend(_to_charging_period(p, p.energy_wh / 1000) for p in s_periods)
            lines.extend(s_lines)
            charging_s, parking_s = s_tot["charging_s"], s_tot["parking_s"]
            total_energy_wh = timeline.energy_at(usage.end) - timeline.energy_at(usage.start)
            session_seconds = _seconds(usage.end - usage.start)

        lines.sort(key=lambda l: (l.phase != PHASE_RESERVATION, l.t0, l.dim is not _FLAT))
        cost_lines = tuple(_to_cost_line(l) for l in lines)

        currency = tariff.currency
        sub_excl = round_money(sum((l.amount_excl_vat for l in cost_lines), _ZERO), currency)
        sub_incl = round_money(sum((l.amount_incl_vat for l in cost_lines), _ZERO), currency)
        excl, incl, min_applied = _apply_bounds(sub_excl, sub_incl, tariff.min_price, currency, True)
        excl, incl, max_applied = _apply_bounds(excl, incl, tariff.max_price, currency, False)
        if min_applied:
            flags.add("min_price_applied")
        if max_applied:
            flags.add("max_price_applied")

        return CostBreakdown(
            tariff_id=tariff.id,
            currency=currency,
            periods=tuple(periods),
            lines=cost_lines,
            total_energy_kwh=total_energy_wh / 1000,
            total_time_h=_hours(session_seconds),
            total_charging_time_h=_hours(charging_s),
            total_parking_time_h=_hours(parking_s),
            total_reservation_time_h=_hours(res_seconds),
            subtotal_excl_vat=sub_excl,
            subtotal_incl_vat=sub_incl,
            total_cost_excl_vat=excl,
            total_vat=incl - excl,
            total_cost_incl_vat=incl,
            min_price_applied=min_applied,
            max_price_applied=max_applied,
            flags=tuple(sorted(flags)),
        )


def preview(tariff: Tariff, *, energy_kwh: Decimal | int | str, duration: timedelta,
            start_local: datetime, timezone: str, parking: timedelta = timedelta(0),
            power_kw: Decimal | int | str | None = None, current_a: Decimal | int | str | None = None,
            reservation: timedelta = timedelta(0)) -> CostBreakdown:
    """Price a synthetic linear session for a tariff calculator.

    The EV charges ``energy_kwh`` evenly over ``duration`` starting at
    ``start_local`` (local wall-clock time in ``timezone``; a naive datetime is
    read as local time, an aware one is converted), then stays connected for
    ``parking`` without charging.  ``power_kw`` / ``current_a`` are the values
    seen by power / current restrictions while charging (default: the average
    power ``energy_kwh / duration``; no current).  ``reservation`` is the time
    the EVSE was reserved before the start.
    """
    tz = ZoneInfo(timezone)
    if start_local.tzinfo is None:
        start_local = start_local.replace(tzinfo=tz)
    start = start_local.astimezone(_UTC)
    if duration < timedelta(0) or parking < timedelta(0) or reservation < timedelta(0):
        raise ValueError("duration, parking and reservation must not be negative")
    with localcontext(_CTX):
        energy_wh = to_decimal(energy_kwh, what="energy_kwh") * 1000
        if energy_wh < 0:
            raise ValueError("energy_kwh must not be negative")
        if energy_wh > 0 and duration <= timedelta(0):
            raise ValueError("energy needs a positive charging duration")
        power_w = None if power_kw is None else to_decimal(power_kw, what="power_kw") * 1000
        current = None if current_a is None else to_decimal(current_a, what="current_a")
        charge_end = start + duration
        end = charge_end + parking
        samples = []
        if duration > timedelta(0):
            samples.append(MeterSample(start, 0, power_w, current, charging=True))
        if parking > timedelta(0):
            samples.append(MeterSample(charge_end, energy_wh, _ZERO,
                                       _ZERO if current is not None else None, charging=False))
        samples.append(MeterSample(end, energy_wh, _ZERO if parking > timedelta(0) else power_w,
                                   None, charging=None))
        if len(samples) < 2:  # zero-length session
            samples = []
        res = None
        if reservation > timedelta(0):
            res = Reservation(start - reservation, start)
        usage = SessionUsage(start=start, end=end, samples=samples, reservation=res, timezone=timezone)
    # the synthetic samples are exact, so gaps between them are not "sparse"
    return price_session(tariff, usage, max_sample_gap=timedelta.max)
