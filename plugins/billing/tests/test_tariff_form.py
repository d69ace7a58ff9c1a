"""The simple tariff form writes the OCPI elements the JSON would, prices the same, and reads back
the tariffs of its shape (others are left to the JSON editor)."""

from __future__ import annotations

from datetime import datetime, timedelta

from plugins.billing.pricing import preview
from plugins.billing.tariff import Tariff as OcpiTariff
from plugins.billing.tariff_form import blank_values, ocpi_from_values, values_from_ocpi

HAND_WRITTEN = {"id": "TOU", "currency": "EUR", "elements": [
    {"price_components": [{"type": "ENERGY", "price": 0.45, "step_size": 1, "vat": 21.0}],
     "restrictions": {"start_time": "17:00", "end_time": "21:00", "day_of_week": ["MONDAY", "FRIDAY"]}},
    {"price_components": [{"type": "FLAT", "price": 1.0, "step_size": 1, "vat": 21.0},
                          {"type": "ENERGY", "price": 0.3, "step_size": 1, "vat": 21.0},
                          {"type": "TIME", "price": 1.2, "step_size": 60, "vat": 21.0},
                          {"type": "PARKING_TIME", "price": 6.0, "step_size": 60, "vat": 21.0}]}]}


def form(**changes):
    values = blank_values() | {"code": "TOU", "currency": "EUR", "vat": "21", "flat": "1", "energy": "0,30",
                               "time": "0.02", "parking": "0.10", "time_unit": "minute"}
    values["rows"][0] = {"start_time": "17:00", "end_time": "21:00", "days": ["FRIDAY", "MONDAY"], "energy": "0.45",
                         "time": "", "parking": ""}
    return values | changes


def test_form_writes_the_elements_of_the_hand_written_json():
    ocpi, errors = ocpi_from_values(form())
    assert errors == {} and ocpi == HAND_WRITTEN  # per-minute prices become OCPI's per-hour prices


def test_form_and_json_price_a_session_alike():
    ocpi, _ = ocpi_from_values(form())
    for start in ("2026-11-27T18:00", "2026-11-28T18:00"):  # a Friday evening (peak), a Saturday (not)
        a, b = (preview(OcpiTariff.from_ocpi(t), energy_kwh="20", duration=timedelta(minutes=90),
                        start_local=datetime.fromisoformat(start), timezone="Europe/Amsterdam",
                        parking=timedelta(minutes=30)) for t in (ocpi, HAND_WRITTEN))
        assert a.to_dict() == b.to_dict()


def test_errors_are_per_field():
    values = form(energy="-1", vat="120", currency="euro", code="")
    values["rows"][1] = {"start_time": "25:00", "end_time": "", "days": [], "energy": "x", "time": "", "parking": ""}
    values["rows"][2] = {"start_time": "", "end_time": "", "days": ["SUNDAY"], "energy": "", "time": "", "parking": ""}
    values["rows"][3] = {"start_time": "", "end_time": "", "days": [], "energy": "0.5", "time": "", "parking": ""}
    ocpi, errors = ocpi_from_values(values)
    assert ocpi is None
    assert errors == {
        "code": "Tariff id is required (letters, digits, - and _; up to 36 characters).",
        "currency": "Currency must be an ISO 4217 code such as EUR.",
        "vat": "VAT is a percentage between 0 and 100.",
        "energy": "Price per kWh cannot be negative.",
        "row1_energy": "Row 2: price per kWh must be a number such as 0.35, not “x”.",
        "row1_start_time": "Row 2: start time must be HH:MM, such as 07:00.",
        "row2_energy": "Row 3: give at least one price for these hours or days.",
        "row3_start_time": "Row 4: give the hours or the days these prices apply to.",
    }


def test_stored_tariffs_read_back_or_go_to_json():
    values = values_from_ocpi(HAND_WRITTEN, name="Time of use")
    assert values is not None and values["name"] == "Time of use"
    assert (values["flat"], values["energy"], values["time"], values["parking"], values["vat"]) == (
        "1", "0.3", "1.2", "6", "21")
    assert values["rows"][0]["days"] == ["MONDAY", "FRIDAY"] and values["rows"][0]["energy"] == "0.45"
    assert ocpi_from_values(values)[0] == HAND_WRITTEN  # saving it unchanged writes the same tariff
    with_min_price = HAND_WRITTEN | {"min_price": {"excl_vat": 2.0}}
    assert values_from_ocpi(with_min_price) is None
    kwh_restricted = {"id": "K", "currency": "EUR", "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.2, "step_size": 1}], "restrictions": {"min_kwh": 10}},
        {"price_components": [{"type": "ENERGY", "price": 0.3, "step_size": 1}]}]}
    assert values_from_ocpi(kwh_restricted) is None


def test_unchanged_prices_in_another_order_are_the_same():
    from plugins.billing.tariff_form import same_prices
    from plugins.billing.tests.helpers import FLAT_AND_ENERGY

    values = values_from_ocpi(FLAT_AND_ENERGY)
    regenerated, _ = ocpi_from_values(values)
    assert regenerated != FLAT_AND_ENERGY and same_prices(regenerated, FLAT_AND_ENERGY)
    assert not same_prices(ocpi_from_values(values | {"energy": "0.31"})[0], FLAT_AND_ENERGY)
