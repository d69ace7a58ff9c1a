"""The sessions CSV export, as a logged-in user downloads it, neutralises spreadsheet formulas that
stations and people put in idTags, transaction ids, driver names and card labels."""

from __future__ import annotations

from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.testing import FORMULA_PAYLOADS, csv_rows, formula_cells
from tests.admin.conftest import http_login
from tests.stations import connect

TS = "2026-01-05T10:00:00.000Z"
END = "2026-01-05T11:00:00.000Z"


async def test_sessions_csv_neutralises_formulas(server, users):
    for i, payload in enumerate(FORMULA_PAYLOADS):
        driver = (await server.api.post("/drivers", json={"name": payload, "kind": "customer"})).json()
        r = await server.api.post("/tokens", json={"id_token": payload, "label": payload, "driver": driver["id"]})
        assert r.status_code == 201, r.text
    async with connect(server.ws_url("CP-CSV16"), "CP-CSV16", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="Test", charge_point_model="CSV"))
        for payload in FORMULA_PAYLOADS:
            tx = (await cp.call(call16.StartTransaction(connector_id=1, id_tag=payload, meter_start=1000,
                                                        timestamp=TS))).transaction_id
            await cp.call(call16.StopTransaction(transaction_id=tx, meter_stop=3500, timestamp=END,
                                                 reason="Local"))
    async with connect(server.ws_url("CP-CSV201"), "CP-CSV201", "2.0.1") as cp:
        await cp.call(call201.BootNotification(charging_station={"vendorName": "Test", "model": "CSV"},
                                               reason="PowerUp"))
        await cp.call(call201.TransactionEvent(
            event_type="Started", timestamp=TS, trigger_reason="Authorized", seq_no=0,
            transaction_info={"transactionId": "=1+2"}, id_token={"idToken": "@SUM(A1)", "type": "ISO14443"},
            evse={"id": 1, "connectorId": 1}))

    async with http_login(server.base_url, "viewer") as client:
        r = await client.get("/admin/sessions.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert formula_cells(r.text) == []
    rows = csv_rows(r.text)
    header, data = rows[0], [dict(zip(rows[0], row)) for row in rows[1:]]
    assert header[:2] == ["id", "station_id"] and len(data) == len(FORMULA_PAYLOADS) + 1
    ended = [row for row in data if row["station_id"] == "CP-CSV16"]
    assert sorted(row["id_token"] for row in ended) == sorted("'" + p for p in FORMULA_PAYLOADS)
    assert all(row["driver_name"] == row["id_token"] for row in ended)
    assert {(row["energy_kwh"], row["meter_start_wh"], row["duration_min"]) for row in ended} == {
        ("2.500", "1000.0", "60.0")}
    [running] = [row for row in data if row["station_id"] == "CP-CSV201"]
    assert (running["transaction_id"], running["id_token"]) == ("'=1+2", "'@SUM(A1)")
