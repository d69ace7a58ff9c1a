"""The station page's "Texts when offline" panel (OCPP 2.0.1/2.1 I04, I05), in Chromium: the texts
the station got after its boot are shown, the operator sends new ones (the station's refusal of
one reads as words), a viewer sees the texts and no form; a 1.6 station has no such panel."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from csms.plugin_api import hookimpl
from csms.testing.stations import station
from tests.admin.test_station_operator_panels import _open, _send, _shot
from tests.test_final_cost import register  # noqa: F401 (fixture)
from tests.test_tariff_fallback import FallbackStation, PublicTariffText

CASES = [("desktop", 1280, 900), ("phone", 390, 844)]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
async def test_texts_when_offline_panel(page_as, server, register, case):
    name, width, height = case
    register(PublicTariffText())
    sid = f"ADMFB-{name}"
    async with station(server, sid, "2.0.1", cls=FallbackStation) as cp:
        await server.core.events.drain()
        await server.core.tariff_fallback.drain()
        assert [v["variable"]["name"] for v in cp.set_variables] == ["TariffFallbackMessage"]  # no total-cost text set
        page = await page_as("operator", width=width, height=height)
        await page.goto(f"/admin/stations/{sid}")
        panel = page.locator("#tariff-fallback")
        await expect(panel.locator("[data-field=tariff]")).to_have_text("0.39 EUR/kWh, 0.10 EUR/min after 4 h")
        await expect(panel.locator("[data-field=total_cost]")).to_contain_text("not known to be set")

        await _open(panel, "Send the texts now")
        await panel.get_by_label("Instead of the total cost (empty: the configured text)").fill("!too long for me")
        await _send(panel, "Send texts")
        outcome = panel.locator("[data-outcome]")
        await expect(outcome).to_have_text("The station did not take TariffCostCtrlr.TotalCostFallbackMessage.")
        await expect(panel.get_by_label("Instead of the total cost (empty: the configured text)")).to_have_value(
            "!too long for me")  # kept after the refusal
        await _shot(page, panel, f"station-tariff-fallback-refused-{name}")
        await panel.get_by_label("Instead of the total cost (empty: the configured text)").fill(
            "The cost will be on your invoice.")
        await _send(panel, "Send texts")
        await expect(outcome).to_have_text("The station took the texts.")
        await expect(panel.locator("[data-field=total_cost]")).to_contain_text("The cost will be on your invoice.")
        await _shot(page, panel, f"station-tariff-fallback-{name}")

        viewer = await page_as("viewer", width=width, height=height)
        await viewer.goto(f"/admin/stations/{sid}")
        await expect(viewer.locator("#tariff-fallback [data-field=total_cost]")).to_contain_text("on your invoice")
        await expect(viewer.locator("#tariff-fallback form")).to_have_count(0)

    async with station(server, f"ADMFB16-{name}", "1.6"):
        await page.goto(f"/admin/stations/ADMFB16-{name}")
        await expect(page.locator("h1")).to_contain_text("ADMFB16")
        await expect(page.locator("#tariff-fallback")).to_have_count(0)
