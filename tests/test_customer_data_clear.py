"""Erasing a driver clears their data on stations (OCPP 2.0.1 N10,
``csms.core.services.station_data_clear``), against ``ocpp`` library ChargePoints over a real
WebSocket: an online 2.0.1 station gets CustomerInformation clear with the card's idToken, an
offline one gets it after it reconnects, a station answering Rejected is recorded, and a 1.6
station (no CustomerInformation) gets the card as Blocked in its local list update; and against the
``ocpp-rpc`` strict station (every frame checked against the official schema) reached through the
driver's organization tree, while another tenant's erasure does not reach it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from ocpp.routing import on
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from csms.api.auth import create_api_key
from csms.core.tables import AuditEntry, IdToken, LocalAuthList, Station, StationDataClear
from csms.testing import running_server
from tests.driver.conftest import make_driver
from tests.test_local_lists import Keeper201, keeper
from tests.test_monitoring import monitoring_station
from tests.test_ocpp_rpc_strict import eventually, node_station  # noqa: F401 (fixture)


class Clearing201(Keeper201):
    """A 2.0.1 station keeping its local list that answers CustomerInformation with ``answer``."""

    answer = "Accepted"

    def setup(self, version: int = 0) -> None:
        super().setup(version)
        self.customer_requests: list[dict[str, Any]] = []

    @on(Action201.customer_information)
    async def on_customer_information(self, request_id, report, clear, **kwargs):
        self.customer_requests.append({"request_id": request_id, "report": report, "clear": clear, **kwargs})
        return result201.CustomerInformation(status=self.answer)


class Refusing201(Clearing201):
    answer = "Rejected"


async def _rows(station_id: str) -> list[dict[str, Any]]:
    return await StationDataClear.select().where(StationDataClear.station_id == station_id)


async def _done(station_id: str) -> dict[str, Any] | None:
    rows = await _rows(station_id)
    return rows[0] if rows and rows[0]["status"] != "Pending" else None


async def _listed(station_id: str, card: str) -> bool:
    """Whether the CSMS has stored ``card`` in the station's local list (after the station's
    answer: a station can hold it a moment before the CSMS records it)."""
    row = await LocalAuthList.select(LocalAuthList.entries).where(
        LocalAuthList.station.station_id == station_id).output(load_json=True).first()
    return row is not None and card in (row["entries"] or {})


async def _connected(station_id: str, value: bool) -> bool:
    row = await Station.select(Station.connected).where(Station.station_id == station_id).first()
    return row is not None and row["connected"] is value


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_erasure_clears_the_card_on_every_station(tmp_path, backend, monkeypatch):
    monkeypatch.setenv("CSMS_LOCAL_LISTS_DEBOUNCE_S", "0.3")
    monkeypatch.setenv("CSMS_LOCAL_LISTS_CONNECT_DELAY_S", "0.1")
    async with running_server(tmp_path, backend=backend, unknown_stations="accept") as srv:
        driver_id, (card_pk,) = await make_driver(srv, "Nora Ten", "nora@example.org", "CARD-N10")
        card_type = (await IdToken.select(IdToken.type).where(IdToken.id == card_pk).first())["type"]

        # the offline station held the card in its local list, then went away
        async with keeper(srv, "N10-OFF", "2.0.1", cls=Clearing201) as off:
            await eventually(lambda: "CARD-N10" in off.entries, what="the card in the local list")
            await eventually(lambda: _listed("N10-OFF", "CARD-N10"), what="the card in the stored local list")
        await eventually(lambda: _connected("N10-OFF", False), what="the station offline")

        async with keeper(srv, "N10-ON", "2.0.1", cls=Clearing201) as on_, \
                keeper(srv, "N10-REJ", "2.0.1", cls=Refusing201) as rej, \
                keeper(srv, "N10-16", "1.6") as old:
            for cp in (on_, rej, old):
                await eventually(lambda cp=cp: "CARD-N10" in cp.entries, what=f"the card at {cp.id}")
                await eventually(lambda cp=cp: _listed(cp.id, "CARD-N10"), what=f"the card stored for {cp.id}")

            erased = await srv.api.post(f"/drivers/{driver_id}/erase")
            assert erased.status_code == 200, erased.text
            assert erased.json()["station_clears"] == 3  # the 1.6 station's row is done at once

            # online 2.0.1: CustomerInformation clear, no report, by the card's idToken
            await eventually(lambda: on_.customer_requests, what="CustomerInformation at the online station")
            request = on_.customer_requests[0]
            assert (request["report"], request["clear"]) == (False, True)
            assert request["id_token"] == {"id_token": "CARD-N10", "type": card_type}
            done = await eventually(lambda: _done("N10-ON"), what="the online station's outcome")
            assert (done["status"], done["request_id"], done["attempts"]) == ("Accepted", request["request_id"], 1)

            # a station refusing it is recorded as such
            refused = await eventually(lambda: _done("N10-REJ"), what="the refusing station's outcome")
            assert refused["status"] == "Rejected" and "rejected" in refused["detail"]

            # 1.6 has no CustomerInformation: the local list update blocks the card there
            await eventually(lambda: old.entries.get("CARD-N10", {}).get("status") == "Blocked",
                             what="the card blocked in the 1.6 station's list")
            assert old.updates[-1][0] == "Differential"
            assert not hasattr(old, "customer_requests")
            (sixteen,) = await _rows("N10-16")
            assert sixteen["status"] == "LocalList" and "local list" in sixteen["detail"]

            # the offline station keeps its clear until it comes back
            (pending,) = await _rows("N10-OFF")
            assert pending["status"] == "Pending" and pending["done_at"] is None

        async with keeper(srv, "N10-OFF", "2.0.1", cls=Clearing201) as back:
            await eventually(lambda: back.customer_requests, what="CustomerInformation after the reconnection")
            assert back.customer_requests[0]["id_token"] == {"id_token": "CARD-N10", "type": card_type}
            assert back.customer_requests[0]["clear"] is True
            done = await eventually(lambda: _done("N10-OFF"), what="the reconnected station's outcome")
            assert done["status"] == "Accepted"

        # the operator's record: one audit entry per station with its answer, and the event log
        audit = await AuditEntry.select().where(
            (AuditEntry.action == "clear_customer_data") & (AuditEntry.object_id == str(driver_id))
        ).output(load_json=True)
        assert {(a["after"]["station_id"], a["after"]["status"]) for a in audit} == {
            ("N10-ON", "Accepted"), ("N10-REJ", "Rejected"), ("N10-OFF", "Accepted")}
        assert all(a["object_type"] == "driver" and a["after"]["id_token"] == "CARD-N10" for a in audit)
        items = (await srv.api.get("/stations/N10-REJ/customer-information")).json()["items"]
        assert [(i["clear"], i["report"], i["status"], i["requested_by"]) for i in items] == [
            (True, False, "Rejected", f"erasure of driver {driver_id}")]

        # erasing again queues nothing more
        again = await srv.api.post(f"/drivers/{driver_id}/erase")
        assert again.json()["already_erased"] is True and again.json()["station_clears"] == 0
        assert await StationDataClear.count() == 4


async def test_strict_station_of_the_drivers_organization_tree(server, node_station):
    sid = "N10STRICT"
    api = server.api
    fleet = (await api.post("/organizations", json={"name": "Fleet"})).json()["id"]
    depot = (await api.post("/organizations", json={"name": "Depot", "parent": fleet})).json()["id"]
    other = (await api.post("/organizations", json={"name": "Other"})).json()["id"]
    st = await monitoring_station(node_station, server, sid)
    try:
        assert (await api.patch(f"/stations/{sid}", json={"organization": depot})).status_code == 200
        # a driver of another organization, whose card was never at the station: nothing for it
        stranger = (await api.post("/drivers", json={"name": "Otto", "organization": other})).json()["id"]
        assert (await api.post("/tokens", json={"id_token": "OTHER-1", "driver": stranger,
                                                "organization": other})).status_code == 201
        assert (await api.post(f"/drivers/{stranger}/erase")).json()["station_clears"] == 0

        # the station knows customer CUST-1 (the card of a driver of the organization above its own)
        driver = (await api.post("/drivers", json={"name": "Ada", "organization": fleet})).json()["id"]
        assert (await api.post("/tokens", json={"id_token": "CUST-1", "type": "ISO14443", "driver": driver,
                                                "organization": fleet})).status_code == 201
        mark = st.mark()
        erased = await api.post(f"/drivers/{driver}/erase")
        assert erased.status_code == 200 and erased.json()["station_clears"] == 1, erased.text
        call = await st.wait_for(lambda e: e.get("event") == "call" and e["action"] == "CustomerInformation",
                                 since=mark)
        assert call["params"] == {"requestId": call["params"]["requestId"], "report": False, "clear": True,
                                  "idToken": {"idToken": "CUST-1", "type": "ISO14443"}}
        done = await eventually(lambda: _done(sid), what="the strict station's outcome")
        assert (done["status"], done["id_token"], done["driver_id"]) == ("Accepted", "CUST-1", driver)
        assert not st.errors, st.report()
        st.assert_clean_exit(await st.quit())
    finally:
        await st.kill()


async def test_outcomes_are_listed_per_tenant(server):
    """``GET /station-data-clears`` and ``GET /stations/{id}/data-clears``: the rows of the
    stations the caller sees, with filters; another organization's station is a 404."""
    api = server.api
    orgs = {}
    for name in ("North", "South"):
        org = (await api.post("/organizations", json={"name": name})).json()["id"]
        assert (await api.post("/stations", json={"station_id": f"{name}-ST", "organization": org})).status_code == 201
        driver = (await api.post("/drivers", json={"name": f"{name} driver", "organization": org})).json()["id"]
        assert (await api.post("/tokens", json={"id_token": f"{name}-CARD", "driver": driver,
                                                "organization": org})).status_code == 201
        erased = await api.post(f"/drivers/{driver}/erase")
        assert erased.status_code == 200 and erased.json()["station_clears"] == 1, erased.text
        orgs[name] = (org, driver)

    everything = (await api.get("/station-data-clears")).json()
    assert everything["total"] == 2
    assert [(r["station_id"], r["id_token"], r["status"], r["done_at"]) for r in everything["items"]] == [
        ("South-ST", "South-CARD", "Pending", None), ("North-ST", "North-CARD", "Pending", None)]
    north_driver = orgs["North"][1]
    assert [r["station_id"] for r in (await api.get("/station-data-clears", params={
        "driver_id": north_driver})).json()["items"]] == ["North-ST"]
    assert (await api.get("/station-data-clears", params={"pending": False})).json()["total"] == 0
    assert (await api.get("/station-data-clears", params={"clear_status": "Pending"})).json()["total"] == 2
    one = (await api.get("/stations/South-ST/data-clears")).json()
    assert [r["id_token"] for r in one["items"]] == ["South-CARD"] and one["total"] == 1

    key, _ = await create_api_key("north viewer", "viewer", orgs["North"][0])
    async with httpx.AsyncClient(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}) as north:
        mine = (await north.get("/api/v1/station-data-clears")).json()
        assert [r["station_id"] for r in mine["items"]] == ["North-ST"] and mine["total"] == 1
        assert (await north.get("/api/v1/station-data-clears", params={"station": "South-ST"})).json()["total"] == 0
        assert (await north.get("/api/v1/stations/South-ST/data-clears")).status_code == 404
        assert (await north.get("/api/v1/stations/North-ST/data-clears")).json()["total"] == 1
