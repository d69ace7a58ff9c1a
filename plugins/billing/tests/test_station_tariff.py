"""The billing plugin's answer to the core's ``station_tariff`` hook: the public tariff at a
station, as the OCPP 2.1 TariffType a station calculates costs with (SetDefaultTariff)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import ocpp

from plugins.billing.station_tariff import ocpp21_tariff
from plugins.billing.tariff import Tariff
from plugins.billing.tests.helpers import FLAT_AND_ENERGY, create, default_tariff, station

SCHEMA = json.loads((Path(ocpp.__file__).parent / "v21" / "schemas" / "SetDefaultTariffRequest.json").read_text())

DAY_AND_NIGHT = {
    "id": "DAYNIGHT", "currency": "EUR", "min_price": {"excl_vat": 0.5, "incl_vat": 0.6},
    "tariff_alt_text": [{"language": "en", "text": "0.25/kWh at night, 0.35 by day"}],
    "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.25, "vat": 21, "step_size": 1}],
         "restrictions": {"start_time": "22:00", "end_time": "06:00", "day_of_week": ["MONDAY", "TUESDAY"]}},
        {"price_components": [{"type": "ENERGY", "price": 0.35, "vat": 21, "step_size": 1},
                              {"type": "TIME", "price": 1.20, "vat": 21, "step_size": 60}]},
        {"price_components": [{"type": "PARKING_TIME", "price": 6.00, "vat": 21, "step_size": 60}],
         "restrictions": {"min_duration": 7200, "max_power": 0.5}},
        {"price_components": [{"type": "FLAT", "price": 1.00, "vat": 21, "step_size": 1}],
         "restrictions": {"start_date": "2026-01-01", "end_date": "2027-01-01"}},
        {"price_components": [{"type": "FLAT", "price": 2.00, "vat": 21, "step_size": 1}],
         "restrictions": {"min_kwh": 50}},
    ]}


def test_an_ocpi_tariff_in_ocpp_21_words():
    out = ocpp21_tariff(Tariff.from_ocpi(DAY_AND_NIGHT), "DAYNIGHT-v3")
    jsonschema.validate({"evseId": 0, "tariff": out}, SCHEMA)
    assert out == {
        "tariffId": "DAYNIGHT-v3", "currency": "EUR",
        "description": [{"format": "UTF8", "language": "en", "content": "0.25/kWh at night, 0.35 by day"}],
        "energy": {"prices": [
            {"priceKwh": 0.25, "conditions": {"startTimeOfDay": "22:00", "endTimeOfDay": "06:00",
                                              "dayOfWeek": ["Monday", "Tuesday"]}},
            {"priceKwh": 0.35}], "taxRates": [{"type": "VAT", "tax": 21}]},
        "chargingTime": {"prices": [{"priceMinute": 0.02}], "taxRates": [{"type": "VAT", "tax": 21}]},
        "idleTime": {"prices": [{"priceMinute": 0.1, "conditions": {"minTime": 7200, "maxPower": 500}}],
                     "taxRates": [{"type": "VAT", "tax": 21}]},
        # the fee for sessions above 50 kWh is left out: OCPP's fixed-fee conditions know no energy
        "fixedFee": {"prices": [{"priceFixed": 1, "conditions": {"validFromDate": "2026-01-01",
                                                                  "validToDate": "2027-01-01"}}],
                     "taxRates": [{"type": "VAT", "tax": 21}]},
        "minCost": {"exclTax": 0.5, "inclTax": 0.6},
    }


async def test_a_21_station_gets_the_public_tariff(server):
    """POST /stations/{id}/tariffs/default without a tariff: the tariff assigned to the public at
    the station goes out, checked by the library's 2.1 station against the schema."""
    await default_tariff(server)
    async with station(server, "CP-TARIFF21", "2.1") as cp:
        r = await server.api.post("/stations/CP-TARIFF21/tariffs/default", json={"evse_id": 1})
        assert r.status_code == 201 and r.json()["status"] == "Accepted", r.text
        sent = r.json()["tariff"]
        assert sent == {"tariffId": "STD-v1", "currency": "EUR",
                        "energy": {"prices": [{"priceKwh": 0.3}], "taxRates": [{"type": "VAT", "tax": 21}]},
                        "fixedFee": {"prices": [{"priceFixed": 1}], "taxRates": [{"type": "VAT", "tax": 21}]}}
        assert [(t["evse_id"], t["tariff"]["tariff_id"]) for t in cp.default_tariffs] == [(1, "STD-v1")]
        # a new version of the tariff: the next default names it
        tariffs = (await server.api.get("/billing/tariffs")).json()
        tariff_id = next(t["id"] for t in (tariffs.get("items") or tariffs) if t["code"] == "STD")
        changed = {**FLAT_AND_ENERGY, "elements": [{"price_components": [
            {"type": "ENERGY", "price": 0.32, "vat": 21, "step_size": 1}]}]}
        r = await server.api.put(f"/billing/tariffs/{tariff_id}", json={"tariff": changed})
        assert r.status_code == 200, r.text
        r = await server.api.post("/stations/CP-TARIFF21/tariffs/default", json={})
        assert r.json()["tariff"]["tariffId"] == "STD-v2"
        assert r.json()["tariff"]["energy"]["prices"] == [{"priceKwh": 0.32}]


async def test_no_assigned_tariff_no_default(server):
    await create(server, "/billing/tariffs", FLAT_AND_ENERGY)  # a tariff, assigned nowhere
    async with station(server, "CP-NOTARIFF", "2.1"):
        r = await server.api.post("/stations/CP-NOTARIFF/tariffs/default", json={})
        assert r.status_code == 400 and "no plugin has one" in r.json()["detail"], r.text


async def test_the_drivers_tariff_text_in_the_displays_language(server):
    """The ``tariff_message`` hook: the text of the tariff the driver pays there reaches the
    station in Authorize's and the transaction's ``personalMessage``; in the language the
    station's display speaks (DisplayMessageCtrlr.Language) where the tariff has it, else English."""
    from ocpp.v201 import call as call201

    from plugins.billing.tests.helpers import iso, minutes_ago

    await default_tariff(server, {**FLAT_AND_ENERGY, "tariff_alt_text": [
        {"language": "fr", "text": "0,30 EUR/kWh et 1 EUR par session"},
        {"language": "en", "text": "0.30 EUR/kWh and 1 EUR per session"},
        {"language": "de", "text": "0,30 EUR/kWh und 1 EUR pro Sitzung"}]})
    r = await server.api.post("/tokens", json={"id_token": "TEXT-1", "type": "ISO14443"})
    assert r.status_code == 201, r.text
    async with station(server, "CP-TEXT", "2.0.1") as cp:
        answer = await cp.call(call201.Authorize(id_token={"idToken": "TEXT-1", "type": "ISO14443"}))
        assert answer.id_token_info["personal_message"] == {
            "format": "UTF8", "language": "en", "content": "0.30 EUR/kWh and 1 EUR per session"}
        await cp.call(call201.NotifyReport(request_id=1, generated_at=iso(minutes_ago(0)), seq_no=0, report_data=[
            {"component": {"name": "DisplayMessageCtrlr"}, "variable": {"name": "Language"},
             "variableAttribute": [{"type": "Actual", "value": "de-DE"}]}]))
        await server.core.writer.flush()
        answer = await cp.call(call201.Authorize(id_token={"idToken": "TEXT-1", "type": "ISO14443"}))
        assert answer.id_token_info["personal_message"]["content"] == "0,30 EUR/kWh und 1 EUR pro Sitzung"
        started = await cp.call(call201.TransactionEvent(
            event_type="Started", timestamp=iso(minutes_ago(5)), trigger_reason="Authorized", seq_no=0,
            transaction_info={"transactionId": "tx-text"}, id_token={"idToken": "TEXT-1", "type": "ISO14443"},
            evse={"id": 1, "connectorId": 1}))
        assert started.id_token_info["personal_message"]["language"] == "de"
        updated = await cp.call(call201.TransactionEvent(
            event_type="Updated", timestamp=iso(minutes_ago(2)), trigger_reason="MeterValuePeriodic", seq_no=1,
            transaction_info={"transactionId": "tx-text"}))
        assert updated.updated_personal_message is None  # the same tariff: nothing new to say
    # an unknown card is not accepted: no text
    async with station(server, "CP-TEXT2", "2.0.1") as cp:
        answer = await cp.call(call201.Authorize(id_token={"idToken": "NOBODY", "type": "ISO14443"}))
        assert "personal_message" not in answer.id_token_info
