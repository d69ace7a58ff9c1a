"""Tests for plugins.billing.tariff: OCPI (de)serialisation and validation."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal as D

import pytest

from plugins.billing.tariff import (
    DayOfWeek,
    DisplayText,
    Price,
    PriceComponent,
    ReservationRestrictionType,
    Tariff,
    TariffDimensionType,
    TariffElement,
    TariffParseError,
    TariffRestrictions,
    TariffType,
    format_ocpi_datetime,
    parse_ocpi_datetime,
    parse_time_of_day,
    validate_tariff,
)

UTC = timezone.utc


def pc(type_, price, vat=None, step=1):
    return PriceComponent(type_, D(str(price)), None if vat is None else D(str(vat)), step)


def el(*components, **restrictions):
    return TariffElement(components, TariffRestrictions(**restrictions) if restrictions else None)


def tariff(*elements, **kw):
    kw.setdefault("currency", "EUR")
    return Tariff(id="T1", elements=elements, **kw)


# ---------------------------------------------------------------------------
# model and serialisation
# ---------------------------------------------------------------------------


def test_constructor_coerces_strings_and_numbers():
    c = PriceComponent("ENERGY", "0.25", 10, 1)
    assert c.type is TariffDimensionType.ENERGY and c.price == D("0.25") and c.vat == D(10)
    assert PriceComponent("TIME", 0.1).price == D("0.1")  # floats go through str(), no binary noise
    r = TariffRestrictions(day_of_week=["MONDAY"], reservation="RESERVATION", min_kwh=5)
    assert r.day_of_week == (DayOfWeek.MONDAY,) and r.reservation is ReservationRestrictionType.RESERVATION
    assert r.min_kwh == D(5)
    t = Tariff("X", "EUR", [TariffElement([c])], type="REGULAR", end_date_time="2019-06-30T23:59:59Z")
    assert t.type is TariffType.REGULAR and isinstance(t.elements, tuple)
    assert t.end_date_time == datetime(2019, 6, 30, 23, 59, 59, tzinfo=UTC)
    with pytest.raises(Exception):
        t.id = "other"  # frozen


def test_from_ocpi_keeps_decimal_precision():
    t = Tariff.from_ocpi(json.loads(
        '{"id": "1", "currency": "EUR", "elements": [{"price_components": '
        '[{"type": "ENERGY", "price": 0.1, "vat": 21, "step_size": 1}]}]}'))
    assert t.elements[0].price_components[0].price == D("0.1")
    assert t.elements[0].price_components[0].vat == D("21")


def test_to_ocpi_numbers_have_at_most_four_decimals():
    t = tariff(el(pc("ENERGY", "0.123456", vat="20.5")), min_price=Price(D("1.23456"), D("1.5")))
    out = t.to_ocpi()
    assert out["elements"][0]["price_components"][0] == {
        "type": "ENERGY", "price": 0.1235, "vat": 20.5, "step_size": 1}
    assert out["min_price"] == {"excl_vat": 1.2346, "incl_vat": 1.5}
    assert '"price": 0.1235' in json.dumps(out)


def test_to_ocpi_omits_absent_fields_and_keeps_restrictions():
    t = tariff(el(pc("TIME", 2, step=60), start_time="08:00", day_of_week=["MONDAY", "FRIDAY"],
                  min_duration=600, max_kwh=D("7.5")))
    assert t.to_ocpi() == {
        "id": "T1", "currency": "EUR",
        "elements": [{
            "price_components": [{"type": "TIME", "price": 2.0, "step_size": 60}],
            "restrictions": {"start_time": "08:00", "max_kwh": 7.5, "min_duration": 600,
                             "day_of_week": ["MONDAY", "FRIDAY"]},
        }],
    }


def test_full_tariff_round_trip_with_all_fields():
    data = {
        "country_code": "NL", "party_id": "ABC", "id": "T-42", "currency": "EUR", "type": "PROFILE_GREEN",
        "tariff_alt_text": [{"language": "en", "text": "Green power"}],
        "tariff_alt_url": "https://example.com/t/42",
        "min_price": {"excl_vat": 1.0}, "max_price": {"excl_vat": 30.0, "incl_vat": 36.3},
        "elements": [{
            "price_components": [{"type": "PARKING_TIME", "price": 4.0, "vat": 21.0, "step_size": 300}],
            "restrictions": {"start_time": "22:00", "end_time": "06:00", "start_date": "2024-01-01",
                             "end_date": "2025-01-01", "min_kwh": 0.5, "max_kwh": 100.0,
                             "min_current": 6.0, "max_current": 32.0, "min_power": 1.4, "max_power": 22.0,
                             "min_duration": 60, "max_duration": 7200, "day_of_week": ["SATURDAY"]},
        }, {"price_components": [{"type": "TIME", "price": 1.0, "step_size": 1}],
            "restrictions": {"reservation": "RESERVATION_EXPIRES"}}],
        "start_date_time": "2024-01-01T00:00:00Z", "end_date_time": "2024-12-31T23:00:00.5Z",
        "energy_mix": {"is_green_energy": True},
        "last_updated": "2023-12-01T10:00:00Z",
    }
    t = Tariff.from_ocpi(data)
    assert t.to_ocpi() == data
    assert t.tariff_alt_text == (DisplayText("en", "Green power"),)
    assert t.max_price == Price(D("30.0"), D("36.3"))


@pytest.mark.parametrize("data,path", [
    ({"currency": "EUR", "elements": []}, "tariff.id"),
    ({"id": "1", "currency": "EUR", "elements": [{"price_components": [{"type": "KWH", "price": 1,
                                                                          "step_size": 1}]}]},
     "tariff.elements[0].price_components[0].type"),
    ({"id": "1", "currency": "EUR", "elements": [{"price_components": [{"type": "TIME", "price": "x",
                                                                          "step_size": 1}]}]},
     "tariff.elements[0].price_components[0].price"),
    ({"id": "1", "currency": "EUR", "elements": [{"price_components": [{"type": "TIME", "price": 1,
                                                                          "step_size": 1.5}]}]},
     "tariff.elements[0].price_components[0].step_size"),
    ({"id": "1", "currency": "EUR", "elements": [{"price_components": [{"type": "TIME", "price": 1}]}]},
     "tariff.elements[0].price_components[0].step_size"),
    ({"id": "1", "currency": "EUR", "elements": [{"price_components": [], "restrictions":
                                                  {"day_of_week": ["MON"]}}]},
     "tariff.elements[0].restrictions.day_of_week[0]"),
    ({"id": "1", "currency": "EUR", "elements": {}}, "tariff.elements"),
    ({"id": "1", "currency": "EUR", "elements": [], "last_updated": "yesterday"}, "tariff.last_updated"),
])
def test_from_ocpi_structural_errors_name_the_field(data, path):
    with pytest.raises(TariffParseError) as err:
        Tariff.from_ocpi(data)
    assert path in str(err.value)


def test_ocpi_datetime_formats():
    for text, expected in [
        ("2015-06-29T20:39:09Z", datetime(2015, 6, 29, 20, 39, 9, tzinfo=UTC)),
        ("2015-06-29T20:39:09", datetime(2015, 6, 29, 20, 39, 9, tzinfo=UTC)),
        ("2016-12-29T17:45:09.2Z", datetime(2016, 12, 29, 17, 45, 9, 200000, tzinfo=UTC)),
        ("2018-01-01T01:08:01.123", datetime(2018, 1, 1, 1, 8, 1, 123000, tzinfo=UTC)),
    ]:
        assert parse_ocpi_datetime(text) == expected
    assert format_ocpi_datetime(datetime(2016, 12, 29, 17, 45, 9, 200000, tzinfo=UTC)) == "2016-12-29T17:45:09.2Z"
    with pytest.raises(ValueError):
        parse_ocpi_datetime("2015-06-29 20:39:09+00:00")


def test_parse_time_of_day():
    assert parse_time_of_day("00:00") == 0 and parse_time_of_day("23:59") == 1439
    for bad in ("24:00", "7:00", "12:60", "12h00", ""):
        with pytest.raises(ValueError):
            parse_time_of_day(bad)


# ---------------------------------------------------------------------------
# validate_tariff
# ---------------------------------------------------------------------------


def problems(t):
    return validate_tariff(t)


def test_valid_tariff_has_no_problems():
    t = tariff(el(pc("ENERGY", "0.40", 21), start_time="08:00", end_time="20:00"),
               el(pc("FLAT", 0, step=0), pc("ENERGY", "0.30", 21)))
    assert problems(t) == []


def test_negative_prices_vat_and_bad_step_sizes():
    t = tariff(el(pc("ENERGY", "-0.10", vat=-1, step=0), pc("TIME", 1, vat=120, step=-60),
                  pc("FLAT", 1, step=-1)))
    msgs = problems(t)
    assert "elements[0].price_components[0] (ENERGY): price is negative (-0.10)" in msgs
    assert "elements[0].price_components[0] (ENERGY): vat is negative (-1 %)" in msgs
    assert "elements[0].price_components[0] (ENERGY): step_size must be at least 1 (Wh), got 0" in msgs
    assert "elements[0].price_components[1] (TIME): step_size must be at least 1 (seconds), got -60" in msgs
    assert "elements[0].price_components[1] (TIME): vat 120 % is above 100 %; vat is a percentage" in msgs
    assert "elements[0].price_components[2] (FLAT): step_size is negative (-1)" in msgs


def test_flat_step_size_zero_is_accepted():
    # the spec's own free-of-charge example uses step_size 0 for FLAT
    assert problems(tariff(el(pc("FLAT", 0, step=0)))) == []


def test_price_with_more_than_four_decimals():
    assert problems(tariff(el(pc("ENERGY", "0.12345")))) == [
        "elements[0].price_components[0] (ENERGY): price 0.12345 has more than 4 decimals; "
        "OCPI numbers carry 4 decimals"]


def test_duplicate_dimension_in_one_element():
    msgs = problems(tariff(el(pc("ENERGY", "0.30"), pc("TIME", 1), pc("ENERGY", "0.40"))))
    assert msgs == ["elements[0]: dimension ENERGY appears more than once (price_components[0] and [2]); "
                    "only the first would ever be used"]


def test_malformed_times_and_dates():
    t = tariff(el(pc("ENERGY", 1), start_time="24:00", end_time="7:30", start_date="2024-13-01",
                  end_date="2023-02-30"))
    msgs = problems(t)
    assert "elements[0].restrictions: start_time '24:00' is not a valid time of day " \
           "(expected HH:MM between 00:00 and 23:59)" in msgs
    assert any("end_time '7:30'" in m for m in msgs)
    assert "elements[0].restrictions: start_date '2024-13-01' is not a valid date (expected YYYY-MM-DD)" in msgs
    assert any("end_date '2023-02-30'" in m for m in msgs)


def test_min_not_below_max_means_element_never_applies():
    t = tariff(el(pc("ENERGY", 1), min_kwh=50, max_kwh=20),
               el(pc("ENERGY", 1), min_power=22, max_power=22),
               el(pc("TIME", 1), min_current=32, max_current=16),
               el(pc("TIME", 1), min_duration=3600, max_duration=1800),
               el(pc("ENERGY", 1)))
    msgs = problems(t)
    assert "elements[0].restrictions: min_kwh (50 kWh) is not below max_kwh (20 kWh); " \
           "the element can never apply" in msgs
    assert "elements[1].restrictions: min_power (22 kW) is not below max_power (22 kW); " \
           "the element can never apply" in msgs
    assert any(m.startswith("elements[2].restrictions: min_current (32 A)") for m in msgs)
    assert any(m.startswith("elements[3].restrictions: min_duration (3600 s)") for m in msgs)
    assert len(msgs) == 4


def test_negative_bounds_and_zero_max():
    msgs = problems(tariff(el(pc("ENERGY", 1), min_kwh=-1, max_duration=0)))
    assert "elements[0].restrictions: min_kwh is negative (-1 kWh)" in msgs
    assert "elements[0].restrictions: max_duration is 0 s; the element can never apply" in msgs


def test_contradictory_dates_and_weekdays():
    msgs = problems(tariff(el(pc("ENERGY", 1), start_date="2024-06-03", end_date="2024-06-03")))
    assert msgs == ["elements[0].restrictions: start_date 2024-06-03 is not before end_date 2024-06-03 "
                    "(end_date is exclusive); the element can never apply"]
    # 2024-06-03 .. 2024-06-05 covers Monday and Tuesday only
    msgs = problems(tariff(el(pc("ENERGY", 1), start_date="2024-06-03", end_date="2024-06-05",
                              day_of_week=["SATURDAY", "SUNDAY"])))
    assert msgs == ["elements[0].restrictions: none of the days in day_of_week falls between start_date "
                    "2024-06-03 and end_date 2024-06-05; the element can never apply"]
    msgs = problems(tariff(el(pc("ENERGY", 1), day_of_week=["MONDAY", "MONDAY"])))
    assert msgs == ["elements[0].restrictions: day_of_week lists a day more than once"]


def test_equal_start_and_end_time_is_reported_as_ambiguous():
    msgs = problems(tariff(el(pc("ENERGY", 1), start_time="10:00", end_time="10:00")))
    assert msgs == ["elements[0].restrictions: start_time and end_time are both '10:00'; this is ambiguous "
                    "(treated as the whole day); omit both or use different times"]


def test_element_shadowed_by_earlier_unrestricted_element():
    t = tariff(el(pc("ENERGY", "0.30")), el(pc("ENERGY", "0.20"), start_time="22:00", end_time="06:00"))
    assert problems(t) == ["elements[1]: can never apply; every dimension is already priced by an earlier "
                           "element that always matches first (ENERGY by elements[0])"]


def test_single_component_shadowed():
    t = tariff(el(pc("ENERGY", "0.30"), day_of_week=["SATURDAY", "SUNDAY"]),
               el(pc("ENERGY", "0.20"), pc("TIME", 1), day_of_week=["SUNDAY"]))
    assert problems(t) == ["elements[1]: the ENERGY price component is never used because elements[0] "
                           "prices ENERGY first whenever this element matches"]


def test_reservation_elements_are_not_shadowed_by_session_elements():
    t = tariff(el(pc("TIME", 1)), el(pc("TIME", 5), reservation="RESERVATION"))
    assert problems(t) == []


def test_reservation_element_with_energy_component():
    t = tariff(el(pc("ENERGY", 1), pc("TIME", 1), reservation="RESERVATION"))
    assert problems(t) == ["elements[0]: reservation elements may only price FLAT and TIME, "
                           "but this one prices ENERGY"]


def test_tariff_level_problems():
    t = Tariff(id="", currency="euro", elements=(), country_code="NLD", party_id="AB",
               min_price=Price(D("10"), D("9")), max_price=Price(D("5"), D("6")),
               start_date_time=datetime(2025, 1, 1, tzinfo=UTC), end_date_time=datetime(2024, 1, 1, tzinfo=UTC))
    msgs = problems(t)
    assert msgs == [
        "tariff: id is empty",
        "tariff: currency 'euro' is not an ISO 4217 code (three capital letters)",
        "tariff: country_code 'NLD' must have 2 characters",
        "tariff: party_id 'AB' must have 3 characters",
        "tariff: start_date_time is not before end_date_time; the tariff is never valid",
        "tariff: min_price.incl_vat (9) is below min_price.excl_vat (10)",
        "tariff: min_price.excl_vat (10) exceeds max_price.excl_vat (5)",
        "tariff: min_price.incl_vat (9) exceeds max_price.incl_vat (6)",
        "tariff: has no elements (OCPI requires at least one TariffElement)",
    ]


def test_element_without_components():
    assert problems(tariff(TariffElement(()))) == [
        "elements[0]: has no price_components (OCPI requires at least one)"]
