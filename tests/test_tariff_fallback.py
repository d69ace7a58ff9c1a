"""Fallback tariff texts on the station (OCPP 2.0.1/2.1 I04, I05): after an accepted boot the
station gets ``TariffCostCtrlr.TariffFallbackMessage`` (the ``tariff_message`` hook's text for a
driver without a contract) and ``TotalCostFallbackMessage`` (the setting) with SetVariables, once:
a later boot sends only what it does not hold. ``POST /stations/{id}/tariffs/fallback`` sends
them now or the operator's texts; bad texts are 400, a 1.6 station 409. The station is the ``ocpp``
library's ChargePoint."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from csms.core.tables import DeviceVariable
from csms.plugin_api import hookimpl
from csms.testing import running_server
from csms.testing.stations import Station201, station
from tests.test_final_cost import register  # noqa: F401 (fixture)
from tests.test_ocpp_rpc_strict import eventually

TOTAL = "The cost of this session will be on your invoice."


class FallbackStation(Station201):
    """Takes the TariffCostCtrlr texts, refuses a text that starts with "!" (too long for its display)."""

    def setup(self, firmware_version: str) -> None:
        super().setup(firmware_version)
        self.set_variables: list[dict[str, Any]] = []

    @on(Action201.set_variables)
    async def on_set_variables(self, set_variable_data, **kwargs):
        results = []
        for item in set_variable_data:
            self.set_variables.append(item)
            known = item["component"]["name"] == "TariffCostCtrlr"
            status = "UnknownComponent" if not known else "Rejected" if item["attribute_value"].startswith("!") \
                else "Accepted"
            results.append({"attribute_status": status, "component": item["component"], "variable": item["variable"]})
        return result201.SetVariables(set_variable_result=results)


class PublicTariffText:
    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []

    @hookimpl(tryfirst=True)
    def tariff_message(self, station_id, evse_id, id_token, transaction_id, languages):
        self.asked.append({"station_id": station_id, "evse_id": evse_id, "id_token": id_token,
                           "transaction_id": transaction_id})
        return {"content": "0.39 EUR/kWh, 0.10 EUR/min after 4 h", "language": "en"}


def texts(st: FallbackStation) -> dict[str, str]:
    return {item["variable"]["name"]: item["attribute_value"] for item in st.set_variables}


async def test_texts_after_boot_once_and_on_demand(tmp_path, register):
    plugin = register(PublicTariffText())
    async with running_server(tmp_path, unknown_stations="accept", total_cost_fallback_message=TOTAL) as srv:
        async with station(srv, "FB-1", "2.0.1", cls=FallbackStation) as st:
            await eventually(lambda: len(st.set_variables) == 2)
            assert texts(st) == {"TariffFallbackMessage": "0.39 EUR/kWh, 0.10 EUR/min after 4 h",
                                 "TotalCostFallbackMessage": TOTAL}
            assert plugin.asked[-1] == {"station_id": "FB-1", "evse_id": 0, "id_token": "", "transaction_id": None}
            stored = await DeviceVariable.select(DeviceVariable.variable, DeviceVariable.value).where(
                (DeviceVariable.station.station_id == "FB-1") & (DeviceVariable.component == "TariffCostCtrlr")
            ).order_by(DeviceVariable.variable)
            assert stored == [{"variable": "TariffFallbackMessage", "value": "0.39 EUR/kWh, 0.10 EUR/min after 4 h"},
                              {"variable": "TotalCostFallbackMessage", "value": TOTAL}]

            # a reboot: the station holds both texts, nothing is sent again
            await st.boot()
            await srv.core.events.drain()
            await srv.core.tariff_fallback.drain()
            assert len(st.set_variables) == 2

            # the operator's text now; the other from the hook; a refused text is reported as refused
            r = await srv.api.post("/stations/FB-1/tariffs/fallback", json={"tariff_message": "Night: 0.29 EUR/kWh"})
            assert r.status_code == 201, r.text
            results = r.json()["results"]
            assert {k: (v["status"], v["variable"], v["text"]) for k, v in results.items()} == {
                "tariff": ("Accepted", "TariffCostCtrlr.TariffFallbackMessage", "Night: 0.29 EUR/kWh"),
                "total_cost": ("Accepted", "TariffCostCtrlr.TotalCostFallbackMessage", TOTAL)}
            r = await srv.api.post("/stations/FB-1/tariffs/fallback", json={"total_cost_message": "!" + "x" * 300})
            assert r.status_code == 201 and r.json()["results"]["total_cost"]["status"] == "Rejected", r.text
            assert (await DeviceVariable.select(DeviceVariable.value).where(
                (DeviceVariable.station.station_id == "FB-1")
                & (DeviceVariable.variable == "TotalCostFallbackMessage")).first())["value"] == TOTAL

            for body, reason in (({"tariff_message": "  "}, "1 to 512 characters"),
                                 ({"tariff_message": "x" * 513}, "1 to 512 characters"),
                                 ({"surprise": 1}, "")):
                r = await srv.api.post("/stations/FB-1/tariffs/fallback", json=body)
                assert r.status_code == 400 and reason in r.text, r.text
        async with station(srv, "FB-16", "1.6"):
            r = await srv.api.post("/stations/FB-16/tariffs/fallback", json={"tariff_message": "x"})
            assert r.status_code == 409 and r.json()["extra"]["error"] == "NotSupported", r.text
        assert (await srv.api.post("/stations/NOPE/tariffs/fallback", json={})).status_code == 404


async def test_nothing_to_send_without_a_text(tmp_path):
    async with running_server(tmp_path, unknown_stations="accept") as srv:
        async with station(srv, "FB-NONE", "2.0.1", cls=FallbackStation) as st:
            await srv.core.events.drain()
            await srv.core.tariff_fallback.drain()
            assert st.set_variables == []  # no plugin text, no setting: the boot sends nothing
            r = await srv.api.post("/stations/FB-NONE/tariffs/fallback", json={})
            assert r.status_code == 400 and "no text to send" in r.text, r.text
