"""Tariff model for the billing plugin, mirroring the OCPI 2.2.1 ``Tariff`` object.

Every class in this module maps one-to-one onto an OCPI 2.2.1 object from the
Tariffs module (``mod_tariffs``) or the common types (``types``):

=====================  ============================================
Python class           OCPI 2.2.1 object
=====================  ============================================
``Tariff``             Tariff object
``TariffElement``      TariffElement class
``PriceComponent``     PriceComponent class
``TariffRestrictions`` TariffRestrictions class
``Price``              Price class (``excl_vat`` / ``incl_vat``)
``DisplayText``        DisplayText class (``language`` / ``text``)
=====================  ============================================

All classes are frozen dataclasses.  ``X.from_ocpi(dict)`` parses the JSON form
(the dict produced by ``json.loads``) and ``x.to_ocpi()`` produces it again, with
the exact OCPI field names.  Fields that are absent/``None`` and empty lists are
omitted from the output, so a spec example survives ``from_ocpi`` -> ``to_ocpi``
unchanged.

Numbers
-------
Money and other OCPI ``number`` fields are held as :class:`decimal.Decimal`,
never as floats.  ``from_ocpi`` converts JSON numbers through their decimal text
(``Decimal(str(value))``), so ``0.1`` stays exactly ``0.1``.  ``to_ocpi`` emits a
JSON number (a Python ``float``) rounded half-up to 4 decimals, the precision
the OCPI ``number`` type prescribes; use ``json.dumps`` on the result.  Integer
fields (``step_size``, ``min_duration``, ``max_duration``) stay ``int``.

Constructors are forgiving: prices may be given as ``Decimal``, ``int`` or
``str`` (floats are converted through ``str()``), enum fields accept their
string values, and lists are stored as tuples.

Times and dates in restrictions are kept as the strings OCPI sends
(``"HH:MM"`` / ``"YYYY-MM-DD"``) so a malformed value can be reported by
:func:`validate_tariff` instead of being rejected at parse time.  Structural
errors (missing required fields, wrong JSON types, unknown enum values) raise
:class:`TariffParseError` with the path of the offending field.

Validation
----------
:func:`validate_tariff` returns a list of human-readable problems, each naming
the element / price component / restriction at fault, e.g.
``"elements[2].restrictions: min_kwh (50) is not below max_kwh (20); the element can never apply"``.
An empty list means the tariff is usable.  All tariff examples of the OCPI 2.2.1
specification validate without problems.

Semantics of restrictions (used by :mod:`plugins.billing.pricing`):

* ``start_time`` is inclusive, ``end_time`` exclusive, both local wall-clock
  time at the location.  ``end_time < start_time`` wraps past midnight;
  ``end_time == "00:00"`` means "until the end of the day".  A missing
  ``start_time`` means 00:00 and a missing ``end_time`` means end of day.
  ``start_time == end_time`` is read as the whole day (reported as ambiguous
  by the validator).
* ``start_date`` is inclusive, ``end_date`` exclusive (local dates).
* ``min_*`` values are inclusive, ``max_*`` values exclusive.
* All restrictions of an element are combined with logical AND and evaluated
  independently at each instant.  In particular a wrapping time window combined
  with ``day_of_week`` is evaluated per local instant: ``22:00-06:00`` on
  ``FRIDAY`` matches Friday 00:00-06:00 and Friday 22:00-24:00, not Saturday
  early morning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import Enum
from typing import Any, Mapping

__all__ = [
    "TariffParseError",
    "TariffDimensionType",
    "TariffType",
    "DayOfWeek",
    "ReservationRestrictionType",
    "DisplayText",
    "Price",
    "PriceComponent",
    "TariffRestrictions",
    "TariffElement",
    "Tariff",
    "validate_tariff",
    "parse_time_of_day",
    "parse_local_date",
    "parse_ocpi_datetime",
    "format_ocpi_datetime",
    "to_decimal",
]


class TariffParseError(ValueError):
    """Raised by ``from_ocpi`` when the JSON is structurally not an OCPI tariff."""


# ---------------------------------------------------------------------------
# Enumerations (values are the exact OCPI strings)
# ---------------------------------------------------------------------------


class TariffDimensionType(str, Enum):
    """OCPI ``TariffDimensionType``: what a price component prices."""

    ENERGY = "ENERGY"  # per kWh, step_size multiplier 1 Wh
    FLAT = "FLAT"  # once per session, no step_size unit
    PARKING_TIME = "PARKING_TIME"  # per hour not charging, step multiplier 1 s
    TIME = "TIME"  # per hour charging (or reserved), step multiplier 1 s

    def __str__(self) -> str:  # pragma: no cover - cosmetic
        return self.value


class TariffType(str, Enum):
    """OCPI ``TariffType``."""

    AD_HOC_PAYMENT = "AD_HOC_PAYMENT"
    PROFILE_CHEAP = "PROFILE_CHEAP"
    PROFILE_FAST = "PROFILE_FAST"
    PROFILE_GREEN = "PROFILE_GREEN"
    REGULAR = "REGULAR"

    def __str__(self) -> str:  # pragma: no cover - cosmetic
        return self.value


class DayOfWeek(str, Enum):
    """OCPI ``DayOfWeek``; ``iso_index`` matches ``datetime.weekday()``."""

    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"

    @property
    def weekday(self) -> int:
        """0 for Monday ... 6 for Sunday, like :meth:`datetime.date.weekday`."""
        return _DAY_ORDER.index(self)

    @classmethod
    def from_weekday(cls, weekday: int) -> "DayOfWeek":
        return _DAY_ORDER[weekday]

    def __str__(self) -> str:  # pragma: no cover - cosmetic
        return self.value


_DAY_ORDER = tuple(DayOfWeek)


class ReservationRestrictionType(str, Enum):
    """OCPI ``ReservationRestrictionType``."""

    RESERVATION = "RESERVATION"
    RESERVATION_EXPIRES = "RESERVATION_EXPIRES"

    def __str__(self) -> str:  # pragma: no cover - cosmetic
        return self.value


# ---------------------------------------------------------------------------
# Small conversion helpers
# ---------------------------------------------------------------------------

_FOUR_DP = Decimal("0.0001")
_TIME_RE = re.compile(r"^([0-1][0-9]|2[0-3]):[0-5][0-9]$")
_DATE_RE = re.compile(r"^([12][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")
_DATETIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z)?$"
)


def to_decimal(value: Any, *, what: str = "value") -> Decimal:
    """Convert an int/str/float/Decimal to Decimal without binary-float artefacts.

    Floats are converted through ``str()`` so ``0.1`` becomes ``Decimal("0.1")``.
    Booleans, NaN and infinities are rejected.
    """
    if isinstance(value, bool):
        raise TypeError(f"{what}: expected a number, got a boolean")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(str(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{what}: {value!r} is not a number") from None
    else:
        raise TypeError(f"{what}: expected a number, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"{what}: {value!r} is not a finite number")
    return result


def _opt_decimal(value: Any, what: str) -> Decimal | None:
    return None if value is None else to_decimal(value, what=what)


def _num_out(value: Decimal) -> float:
    """Decimal -> JSON number with at most 4 decimals (OCPI ``number``)."""
    return float(value.quantize(_FOUR_DP, rounding=ROUND_HALF_UP))


def parse_time_of_day(text: str) -> int:
    """Parse an OCPI ``"HH:MM"`` string into minutes after midnight (0..1439).

    Raises ``ValueError`` when the text does not match the OCPI regex
    ``([0-1][0-9]|2[0-3]):[0-5][0-9]``.
    """
    if not isinstance(text, str) or not _TIME_RE.match(text):
        raise ValueError(f"{text!r} is not a valid OCPI time of day (HH:MM, 00:00-23:59)")
    return int(text[:2]) * 60 + int(text[3:])


def parse_local_date(text: str) -> date:
    """Parse an OCPI ``"YYYY-MM-DD"`` string; raises ``ValueError`` if malformed."""
    if not isinstance(text, str) or not _DATE_RE.match(text):
        raise ValueError(f"{text!r} is not a valid OCPI date (YYYY-MM-DD)")
    return date.fromisoformat(text)  # also rejects 2023-02-30


def parse_ocpi_datetime(text: str) -> datetime:
    """Parse an OCPI ``DateTime`` (RFC 3339 subset, always UTC) to an aware datetime.

    Accepts ``2015-06-29T20:39:09Z``, ``2015-06-29T20:39:09``,
    ``2016-12-29T17:45:09.2Z`` ... ; a missing ``Z`` still means UTC.
    """
    if isinstance(text, datetime):
        return text if text.tzinfo else text.replace(tzinfo=timezone.utc)
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not an OCPI DateTime string")
    m = _DATETIME_RE.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not an OCPI DateTime (e.g. 2015-06-29T20:39:09Z)")
    year, month, day, hour, minute, second, frac, _z = m.groups()
    micro = int((frac or "0").ljust(6, "0"))
    return datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), micro,
        tzinfo=timezone.utc,
    )


def format_ocpi_datetime(value: datetime) -> str:
    """Format an aware datetime as an OCPI UTC DateTime string (``...Z``)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    if value.microsecond == 0:
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    frac = f"{value.microsecond:06d}".rstrip("0")
    return value.strftime("%Y-%m-%dT%H:%M:%S") + "." + frac + "Z"


def _require(data: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in data or data[key] is None:
        raise TariffParseError(f"{path}.{key}: required field is missing")
    return data[key]


def _as_mapping(data: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise TariffParseError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _as_list(data: Any, path: str) -> list:
    if not isinstance(data, (list, tuple)):
        raise TariffParseError(f"{path}: expected a JSON array, got {type(data).__name__}")
    return list(data)


def _parse_enum(enum_cls, value: Any, path: str):
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(e.value for e in enum_cls)
        raise TariffParseError(f"{path}: unknown value {value!r} (allowed: {allowed})") from None


def _parse_number(value: Any, path: str) -> Decimal:
    try:
        return to_decimal(value, what=path)
    except (TypeError, ValueError) as exc:
        raise TariffParseError(str(exc)) from None


def _parse_int(value: Any, path: str) -> int:
    if isinstance(value, bool):
        raise TariffParseError(f"{path}: expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    raise TariffParseError(f"{path}: expected an integer, got {value!r}")


def _coerce_enum(obj: Any, name: str, enum_cls) -> None:
    value = getattr(obj, name)
    if value is not None and not isinstance(value, enum_cls):
        object.__setattr__(obj, name, enum_cls(value))


def _coerce_decimal(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    if value is not None and not isinstance(value, Decimal):
        object.__setattr__(obj, name, to_decimal(value, what=name))


# ---------------------------------------------------------------------------
# Value classes
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DisplayText:
    """OCPI ``DisplayText``: ``language`` (ISO 639-1) and ``text``."""

    language: str
    text: str

    @classmethod
    def from_ocpi(cls, data: Mapping[str, Any], _path: str = "DisplayText") -> "DisplayText":
        data = _as_mapping(data, _path)
        return cls(
            language=str(_require(data, "language", _path)),
            text=str(_require(data, "text", _path)),
        )

    def to_ocpi(self) -> dict[str, Any]:
        return {"language": self.language, "text": self.text}


@dataclass(frozen=True)
class Price:
    """OCPI ``Price``: an amount excluding VAT and (optionally) including VAT."""

    excl_vat: Decimal
    incl_vat: Decimal | None = None

    def __post_init__(self) -> None:
        _coerce_decimal(self, "excl_vat")
        _coerce_decimal(self, "incl_vat")

    @classmethod
    def from_ocpi(cls, data: Mapping[str, Any], _path: str = "Price") -> "Price":
        data = _as_mapping(data, _path)
        excl = _parse_number(_require(data, "excl_vat", _path), f"{_path}.excl_vat")
        incl = data.get("incl_vat")
        return cls(excl, None if incl is None else _parse_number(incl, f"{_path}.incl_vat"))

    def to_ocpi(self) -> dict[str, Any]:
        out: dict[str, Any] = {"excl_vat": _num_out(self.excl_vat)}
        if self.incl_vat is not None:
            out["incl_vat"] = _num_out(self.incl_vat)
        return out


@dataclass(frozen=True)
class PriceComponent:
    """OCPI ``PriceComponent``.

    ``price`` is per unit and excludes VAT: per kWh for ENERGY, per hour for
    TIME / PARKING_TIME, per session for FLAT.  ``vat`` is a percentage
    (``Decimal("21")`` = 21 %); ``None`` means "no VAT applicable", which OCPI
    distinguishes from 0 %.  ``step_size`` is in Wh for ENERGY and in seconds
    for TIME / PARKING_TIME; it has no unit for FLAT.
    """

    type: TariffDimensionType
    price: Decimal
    vat: Decimal | None = None
    step_size: int = 1

    def __post_init__(self) -> None:
        _coerce_enum(self, "type", TariffDimensionType)
        _coerce_decimal(self, "price")
        _coerce_decimal(self, "vat")

    @classmethod
    def from_ocpi(cls, data: Mapping[str, Any], _path: str = "PriceComponent") -> "PriceComponent":
        data = _as_mapping(data, _path)
        vat = data.get("vat")
        return cls(
            type=_parse_enum(TariffDimensionType, _require(data, "type", _path), f"{_path}.type"),
            price=_parse_number(_require(data, "price", _path), f"{_path}.price"),
            vat=None if vat is None else _parse_number(vat, f"{_path}.vat"),
            step_size=_parse_int(_require(data, "step_size", _path), f"{_path}.step_size"),
        )

    def to_ocpi(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type.value, "price": _num_out(self.price)}
        if self.vat is not None:
            out["vat"] = _num_out(self.vat)
        out["step_size"] = self.step_size
        return out


_RESTRICTION_NUMBERS = ("min_kwh", "max_kwh", "min_current", "max_current", "min_power", "max_power")
_RESTRICTION_INTS = ("min_duration", "max_duration")
_RESTRICTION_STRINGS = ("start_time", "end_time", "start_date", "end_date")


@dataclass(frozen=True)
class TariffRestrictions:
    """OCPI ``TariffRestrictions``; every field optional, all combined with AND.

    ``start_time``/``end_time`` are ``"HH:MM"`` local time, ``start_date``/
    ``end_date`` are ``"YYYY-MM-DD"`` local dates (end exclusive), kWh / A / kW
    bounds are Decimals, durations are whole seconds.
    """

    start_time: str | None = None
    end_time: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    min_kwh: Decimal | None = None
    max_kwh: Decimal | None = None
    min_current: Decimal | None = None
    max_current: Decimal | None = None
    min_power: Decimal | None = None
    max_power: Decimal | None = None
    min_duration: int | None = None
    max_duration: int | None = None
    day_of_week: tuple[DayOfWeek, ...] = ()
    reservation: ReservationRestrictionType | None = None

    def __post_init__(self) -> None:
        for name in _RESTRICTION_NUMBERS:
            _coerce_decimal(self, name)
        days = tuple(d if isinstance(d, DayOfWeek) else DayOfWeek(d) for d in (self.day_of_week or ()))
        object.__setattr__(self, "day_of_week", days)
        _coerce_enum(self, "reservation", ReservationRestrictionType)

    @property
    def is_empty(self) -> bool:
        """True when no restriction at all is set."""
        return all(getattr(self, n) is None for n in _RESTRICTION_STRINGS + _RESTRICTION_NUMBERS
                   + _RESTRICTION_INTS + ("reservation",)) and not self.day_of_week

    @classmethod
    def from_ocpi(cls, data: Mapping[str, Any], _path: str = "TariffRestrictions") -> "TariffRestrictions":
        data = _as_mapping(data, _path)
        kwargs: dict[str, Any] = {}
        for name in _RESTRICTION_STRINGS:
            value = data.get(name)
            if value is not None:
                if not isinstance(value, str):
                    raise TariffParseError(f"{_path}.{name}: expected a string, got {value!r}")
                kwargs[name] = value
        for name in _RESTRICTION_NUMBERS:
            value = data.get(name)
            if value is not None:
                kwargs[name] = _parse_number(value, f"{_path}.{name}")
        for name in _RESTRICTION_INTS:
            value = data.get(name)
            if value is not None:
                kwargs[name] = _parse_int(value, f"{_path}.{name}")
        days = data.get("day_of_week")
        if days is not None:
            kwargs["day_of_week"] = tuple(
                _parse_enum(DayOfWeek, d, f"{_path}.day_of_week[{i}]")
                for i, d in enumerate(_as_list(days, f"{_path}.day_of_week"))
            )
        if data.get("reservation") is not None:
            kwargs["reservation"] = _parse_enum(
                ReservationRestrictionType, data["reservation"], f"{_path}.reservation"
            )
        return cls(**kwargs)

    def to_ocpi(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in _RESTRICTION_STRINGS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        for name in _RESTRICTION_NUMBERS:
            value = getattr(self, name)
            if value is not None:
                out[name] = _num_out(value)
        for name in _RESTRICTION_INTS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.day_of_week:
            out["day_of_week"] = [d.value for d in self.day_of_week]
        if self.reservation is not None:
            out["reservation"] = self.reservation.value
        return out


@dataclass(frozen=True)
class TariffElement:
    """OCPI ``TariffElement``: price components sharing one set of restrictions."""

    price_components: tuple[PriceComponent, ...]
    restrictions: TariffRestrictions | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "price_components", tuple(self.price_components))

    def component(self, dimension: TariffDimensionType | str) -> PriceComponent | None:
        """The first price component of the given dimension in this element, if any."""
        dimension = TariffDimensionType(dimension)
        for pc in self.price_components:
            if pc.type is dimension:
                return pc
        return None

    @classmethod
    def from_ocpi(cls, data: Mapping[str, Any], _path: str = "TariffElement") -> "TariffElement":
        data = _as_mapping(data, _path)
        comps = _as_list(_require(data, "price_components", _path), f"{_path}.price_components")
        restrictions = data.get("restrictions")
        return cls(
            price_components=tuple(
                PriceComponent.from_ocpi(c, f"{_path}.price_components[{i}]") for i, c in enumerate(comps)
            ),
            restrictions=None if restrictions is None
            else TariffRestrictions.from_ocpi(restrictions, f"{_path}.restrictions"),
        )

    def to_ocpi(self) -> dict[str, Any]:
        out: dict[str, Any] = {"price_components": [pc.to_ocpi() for pc in self.price_components]}
        if self.restrictions is not None:
            out["restrictions"] = self.restrictions.to_ocpi()
        return out


@dataclass(frozen=True)
class Tariff:
    """OCPI 2.2.1 ``Tariff`` object.

    ``country_code``/``party_id`` and ``last_updated`` are mandatory in OCPI
    messages but optional here so that a CSMS can model its own tariffs before
    they are published.  ``energy_mix`` is kept as the raw OCPI JSON object.
    """

    id: str
    currency: str
    elements: tuple[TariffElement, ...] = ()
    type: TariffType | None = None
    tariff_alt_text: tuple[DisplayText, ...] = ()
    tariff_alt_url: str | None = None
    min_price: Price | None = None
    max_price: Price | None = None
    start_date_time: datetime | None = None
    end_date_time: datetime | None = None
    energy_mix: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    country_code: str | None = None
    party_id: str | None = None
    last_updated: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "elements", tuple(self.elements))
        object.__setattr__(self, "tariff_alt_text", tuple(self.tariff_alt_text or ()))
        _coerce_enum(self, "type", TariffType)
        for name in ("start_date_time", "end_date_time", "last_updated"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, datetime):
                object.__setattr__(self, name, parse_ocpi_datetime(value))
            elif isinstance(value, datetime) and value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=timezone.utc))

    @classmethod
    def from_ocpi(cls, data: Mapping[str, Any]) -> "Tariff":
        """Parse an OCPI 2.2.1 Tariff JSON object (as returned by ``json.loads``)."""
        path = "tariff"
        data = _as_mapping(data, path)
        raw_elements = data.get("elements")
        elements = [] if raw_elements is None else _as_list(raw_elements, f"{path}.elements")

        def dt(name: str) -> datetime | None:
            value = data.get(name)
            if value is None:
                return None
            try:
                return parse_ocpi_datetime(value)
            except ValueError as exc:
                raise TariffParseError(f"{path}.{name}: {exc}") from None

        alt = data.get("tariff_alt_text")
        alt = [] if alt is None else alt
        tariff_type = data.get("type")
        return cls(
            id=str(_require(data, "id", path)),
            currency=str(_require(data, "currency", path)),
            elements=tuple(
                TariffElement.from_ocpi(e, f"{path}.elements[{i}]") for i, e in enumerate(elements)
            ),
            type=None if tariff_type is None else _parse_enum(TariffType, tariff_type, f"{path}.type"),
            tariff_alt_text=tuple(
                DisplayText.from_ocpi(t, f"{path}.tariff_alt_text[{i}]")
                for i, t in enumerate(_as_list(alt, f"{path}.tariff_alt_text"))
            ),
            tariff_alt_url=data.get("tariff_alt_url"),
            min_price=None if data.get("min_price") is None
            else Price.from_ocpi(data["min_price"], f"{path}.min_price"),
            max_price=None if data.get("max_price") is None
            else Price.from_ocpi(data["max_price"], f"{path}.max_price"),
            start_date_time=dt("start_date_time"),
            end_date_time=dt("end_date_time"),
            energy_mix=data.get("energy_mix"),
            country_code=data.get("country_code"),
            party_id=data.get("party_id"),
            last_updated=dt("last_updated"),
        )

    def to_ocpi(self) -> dict[str, Any]:
        """Serialise to the OCPI 2.2.1 JSON object (ready for ``json.dumps``)."""
        out: dict[str, Any] = {}
        if self.country_code is not None:
            out["country_code"] = self.country_code
        if self.party_id is not None:
            out["party_id"] = self.party_id
        out["id"] = self.id
        out["currency"] = self.currency
        if self.type is not None:
            out["type"] = self.type.value
        if self.tariff_alt_text:
            out["tariff_alt_text"] = [t.to_ocpi() for t in self.tariff_alt_text]
        if self.tariff_alt_url is not None:
            out["tariff_alt_url"] = self.tariff_alt_url
        if self.min_price is not None:
            out["min_price"] = self.min_price.to_ocpi()
        if self.max_price is not None:
            out["max_price"] = self.max_price.to_ocpi()
        out["elements"] = [e.to_ocpi() for e in self.elements]
        if self.start_date_time is not None:
            out["start_date_time"] = format_ocpi_datetime(self.start_date_time)
        if self.end_date_time is not None:
            out["end_date_time"] = format_ocpi_datetime(self.end_date_time)
        if self.energy_mix is not None:
            out["energy_mix"] = dict(self.energy_mix)
        if self.last_updated is not None:
            out["last_updated"] = format_ocpi_datetime(self.last_updated)
        return out


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

_RESERVATION_DIMENSIONS = {TariffDimensionType.FLAT, TariffDimensionType.TIME}
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


def _fmt(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral_value() else str(value)
    return str(value)


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _restriction_problems(r: TariffRestrictions, where: str) -> tuple[list[str], bool]:
    """Problems of one restrictions object and whether the element can never apply."""
    problems: list[str] = []
    never = False

    times: dict[str, int] = {}
    for name in ("start_time", "end_time"):
        value = getattr(r, name)
        if value is not None:
            try:
                times[name] = parse_time_of_day(value)
            except ValueError:
                problems.append(f"{where}: {name} {value!r} is not a valid time of day "
                                "(expected HH:MM between 00:00 and 23:59)")
    if len(times) == 2 and times["start_time"] == times["end_time"]:
        problems.append(
            f"{where}: start_time and end_time are both {r.start_time!r}; this is ambiguous "
            "(treated as the whole day); omit both or use different times"
        )

    dates: dict[str, date] = {}
    for name in ("start_date", "end_date"):
        value = getattr(r, name)
        if value is not None:
            try:
                dates[name] = parse_local_date(value)
            except ValueError:
                problems.append(f"{where}: {name} {value!r} is not a valid date (expected YYYY-MM-DD)")
    if len(dates) == 2 and dates["start_date"] >= dates["end_date"]:
        problems.append(
            f"{where}: start_date {r.start_date} is not before end_date {r.end_date} "
            "(end_date is exclusive); the element can never apply"
        )
        never = True

    for low, high, unit in (("min_kwh", "max_kwh", "kWh"), ("min_current", "max_current", "A"),
                            ("min_power", "max_power", "kW"), ("min_duration", "max_duration", "s")):
        lo, hi = getattr(r, low), getattr(r, high)
        for name, value in ((low, lo), (high, hi)):
            if value is not None and value < 0:
                problems.append(f"{where}: {name} is negative ({_fmt(value)} {unit})")
        if lo is not None and hi is not None and lo >= hi:
            problems.append(
                f"{where}: {low} ({_fmt(lo)} {unit}) is not below {high} ({_fmt(hi)} {unit}); "
                "the element can never apply"
            )
            never = True
        if hi is not None and hi <= 0:
            problems.append(f"{where}: {high} is {_fmt(hi)} {unit}; the element can never apply")
            never = True

    if len(set(r.day_of_week)) != len(r.day_of_week):
        problems.append(f"{where}: day_of_week lists a day more than once")
    if r.day_of_week and len(dates) == 2 and dates["start_date"] < dates["end_date"]:
        span = (dates["end_date"] - dates["start_date"]).days
        if span < 7:
            days_in_range = {
                DayOfWeek.from_weekday((dates["start_date"] + timedelta(days=i)).weekday())
                for i in range(span)
            }
            if not days_in_range & set(r.day_of_week):
                problems.append(
                    f"{where}: none of the days in day_of_week falls between start_date "
                    f"{r.start_date} and end_date {r.end_date}; the element can never apply"
                )
                never = True
    return problems, never


def _covers(earlier: TariffRestrictions | None, later: TariffRestrictions | None) -> bool:
    """True when ``earlier`` certainly matches whenever ``later`` matches.

    Conservative: only returns True for clear-cut cases (every restriction of
    ``earlier`` is also present in ``later`` and at least as loose there).
    """
    e = earlier or TariffRestrictions()
    l_ = later or TariffRestrictions()
    if e.reservation != l_.reservation:
        return False
    if (e.start_time, e.end_time) != (None, None) and (e.start_time, e.end_time) != (l_.start_time, l_.end_time):
        return False
    if e.start_date is not None and (l_.start_date is None or l_.start_date < e.start_date):
        return False
    if e.end_date is not None and (l_.end_date is None or l_.end_date > e.end_date):
        return False
    for low in ("min_kwh", "min_current", "min_power", "min_duration"):
        ev, lv = getattr(e, low), getattr(l_, low)
        if ev is not None and (lv is None or lv < ev):
            return False
    for high in ("max_kwh", "max_current", "max_power", "max_duration"):
        ev, lv = getattr(e, high), getattr(l_, high)
        if ev is not None and (lv is None or lv > ev):
            return False
    if e.day_of_week and (not l_.day_of_week or not set(l_.day_of_week) <= set(e.day_of_week)):
        return False
    return True


def validate_tariff(tariff: Tariff) -> list[str]:
    """Return readable problems with ``tariff``; an empty list means it is usable.

    Checks: identity fields, currency code, tariff validity window,
    min/max price consistency, empty element / component lists, duplicate
    dimensions within an element, negative prices / VAT, ``step_size``
    (must be >= 1 for ENERGY, TIME and PARKING_TIME; ``0`` is tolerated for
    FLAT because the spec's own free-of-charge example uses it), prices with
    more than 4 decimals, malformed times and dates, min >= max bounds,
    contradictory date / weekday combinations, reservation elements with
    dimensions other than FLAT and TIME, and price components that can never
    be used because an earlier element with the same dimension always matches
    first.
    """
    problems: list[str] = []

    if not tariff.id:
        problems.append("tariff: id is empty")
    elif len(tariff.id) > 36:
        problems.append(f"tariff: id is longer than 36 characters ({len(tariff.id)})")
    if not isinstance(tariff.currency, str) or not _CURRENCY_RE.match(tariff.currency):
        problems.append(f"tariff: currency {tariff.currency!r} is not an ISO 4217 code (three capital letters)")
    if tariff.country_code is not None and len(tariff.country_code) != 2:
        problems.append(f"tariff: country_code {tariff.country_code!r} must have 2 characters")
    if tariff.party_id is not None and len(tariff.party_id) != 3:
        problems.append(f"tariff: party_id {tariff.party_id!r} must have 3 characters")
    if (tariff.start_date_time is not None and tariff.end_date_time is not None
            and tariff.start_date_time >= tariff.end_date_time):
        problems.append("tariff: start_date_time is not before end_date_time; the tariff is never valid")

    for name in ("min_price", "max_price"):
        price = getattr(tariff, name)
        if price is None:
            continue
        if price.excl_vat < 0 or (price.incl_vat is not None and price.incl_vat < 0):
            problems.append(f"tariff: {name} is negative")
        if price.incl_vat is not None and price.incl_vat < price.excl_vat:
            problems.append(f"tariff: {name}.incl_vat ({_fmt(price.incl_vat)}) is below "
                            f"{name}.excl_vat ({_fmt(price.excl_vat)})")
    if tariff.min_price is not None and tariff.max_price is not None:
        if tariff.min_price.excl_vat > tariff.max_price.excl_vat:
            problems.append(f"tariff: min_price.excl_vat ({_fmt(tariff.min_price.excl_vat)}) exceeds "
                            f"max_price.excl_vat ({_fmt(tariff.max_price.excl_vat)})")
        if (tariff.min_price.incl_vat is not None and tariff.max_price.incl_vat is not None
                and tariff.min_price.incl_vat > tariff.max_price.incl_vat):
            problems.append(f"tariff: min_price.incl_vat ({_fmt(tariff.min_price.incl_vat)}) exceeds "
                            f"max_price.incl_vat ({_fmt(tariff.max_price.incl_vat)})")

    if not tariff.elements:
        problems.append("tariff: has no elements (OCPI requires at least one TariffElement)")

    never_applies: set[int] = set()
    for i, element in enumerate(tariff.elements):
        where = f"elements[{i}]"
        if not element.price_components:
            problems.append(f"{where}: has no price_components (OCPI requires at least one)")
        seen: dict[TariffDimensionType, int] = {}
        for j, pc in enumerate(element.price_components):
            pwhere = f"{where}.price_components[{j}] ({pc.type.value})"
            if pc.type in seen:
                problems.append(
                    f"{where}: dimension {pc.type.value} appears more than once "
                    f"(price_components[{seen[pc.type]}] and [{j}]); only the first would ever be used"
                )
            else:
                seen[pc.type] = j
            if pc.price < 0:
                problems.append(f"{pwhere}: price is negative ({_fmt(pc.price)})")
            if _decimals(pc.price) > 4:
                problems.append(f"{pwhere}: price {_fmt(pc.price)} has more than 4 decimals; "
                                "OCPI numbers carry 4 decimals")
            if pc.vat is not None and pc.vat < 0:
                problems.append(f"{pwhere}: vat is negative ({_fmt(pc.vat)} %)")
            if pc.vat is not None and pc.vat > 100:
                problems.append(f"{pwhere}: vat {_fmt(pc.vat)} % is above 100 %; vat is a percentage")
            if not isinstance(pc.step_size, int) or isinstance(pc.step_size, bool):
                problems.append(f"{pwhere}: step_size must be an integer, got {pc.step_size!r}")
            elif pc.type is TariffDimensionType.FLAT:
                if pc.step_size < 0:
                    problems.append(f"{pwhere}: step_size is negative ({pc.step_size})")
            elif pc.step_size <= 0:
                unit = "Wh" if pc.type is TariffDimensionType.ENERGY else "seconds"
                problems.append(f"{pwhere}: step_size must be at least 1 ({unit}), got {pc.step_size}")
        r = element.restrictions
        if r is not None:
            rproblems, never = _restriction_problems(r, f"{where}.restrictions")
            problems.extend(rproblems)
            if never:
                never_applies.add(i)
            if r.reservation is not None:
                bad = sorted({pc.type.value for pc in element.price_components} -
                             {d.value for d in _RESERVATION_DIMENSIONS})
                if bad:
                    problems.append(
                        f"{where}: reservation elements may only price FLAT and TIME, "
                        f"but this one prices {', '.join(bad)}"
                    )

    # Shadowing: a component is unreachable when an earlier element with the
    # same dimension matches whenever this element matches.
    for i, element in enumerate(tariff.elements):
        if i in never_applies or not element.price_components:
            continue
        shadowed: list[tuple[str, int]] = []
        for pc in element.price_components:
            for k in range(i):
                if k in never_applies:
                    continue
                earlier = tariff.elements[k]
                if earlier.component(pc.type) is not None and _covers(earlier.restrictions, element.restrictions):
                    shadowed.append((pc.type.value, k))
                    break
        if shadowed and len(shadowed) == len(element.price_components):
            detail = ", ".join(f"{dim} by elements[{k}]" for dim, k in shadowed)
            problems.append(f"elements[{i}]: can never apply; every dimension is already priced "
                            f"by an earlier element that always matches first ({detail})")
        else:
            for dim, k in shadowed:
                problems.append(f"elements[{i}]: the {dim} price component is never used because "
                                f"elements[{k}] prices {dim} first whenever this element matches")
    return problems
