"""``/metrics``: the Prometheus series a station session leaves, and who may read them."""

from __future__ import annotations

import json

import httpx
import websockets
from ocpp.v201 import call
from prometheus_client.parser import text_string_to_metric_families

from csms.testing import admin_client, pm, running_server
from tests.stations import connect
from tests.test_ocpp_201 import TS, energy

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(srv) -> Series:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{srv.base_url}/metrics", headers={"Authorization": f"Bearer {srv.api_key}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(series: Series, name: str, **labels: str) -> float:
    return series.get((name, frozenset(labels.items())), 0.0)


class FailingEventHook:
    """A plugin whose ``event`` hook raises (counted as a hook error)."""

    def __init__(self) -> None:
        from csms.plugin_api import hookimpl

        @hookimpl
        def event(event):
            if event.name == "station.booted":
                raise RuntimeError("this plugin is broken")

        self.event = event


async def test_a_station_session_in_the_metrics(server):
    await server.api.post("/tokens", json={"id_token": "CARD-M", "type": "ISO14443"})
    node = server.core.node_id
    broken = FailingEventHook()
    pm.register(broken, name="broken_metrics_probe")
    try:
        before = await scrape(server)
        async with connect(server.ws_url("CS-M"), "CS-M") as cp:
            await cp.call(call.BootNotification(charging_station={"model": "M", "vendor_name": "V"},
                                                reason="PowerUp"))
            during = await scrape(server)
            tx = {"transaction_id": "tx-m", "charging_state": "Charging"}
            await cp.call(call.TransactionEvent(
                event_type="Started", timestamp=TS, trigger_reason="Authorized", seq_no=0, transaction_info=tx,
                id_token={"id_token": "CARD-M", "type": "ISO14443"}, evse={"id": 1, "connector_id": 1},
                meter_value=[energy(1000.0, context="Transaction.Begin")]))
            await cp.call(call.TransactionEvent(
                event_type="Ended", timestamp=TS, trigger_reason="StopAuthorized", seq_no=1,
                transaction_info={"transaction_id": "tx-m", "stopped_reason": "Local"},
                meter_value=[energy(3000.0, context="Transaction.End")]))
            r = await server.api.post("/stations/CS-M/reset", json={"kind": "soft"})
            assert r.status_code == 201 and r.json()["status"] == "Accepted"
        async with websockets.connect(server.ws_url("CS-M2"), subprotocols=["ocpp2.0.1"]) as raw:
            await raw.send(json.dumps([2, "m1", "BootNotification", {"reason": "PowerUp"}]))  # no chargingStation
            error_code = json.loads(await raw.recv())[2]
            await raw.send(json.dumps([2, "m2", "MadeUpAction", {}]))
            assert json.loads(await raw.recv())[2] == "NotImplemented"
        await server.core.events.drain()
        await server.core.writer.flush()
        after = await scrape(server)
    finally:
        pm.unregister(name="broken_metrics_probe")

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert value(during, "csms_connected_stations", version="2.0.1", node=node) == \
        value(before, "csms_connected_stations", version="2.0.1", node=node) + 1
    assert value(after, "csms_connected_stations", version="2.0.1", node=node) == 0
    assert value(after, "csms_connected_stations", version="1.6", node=node) == 0
    assert delta("csms_ocpp_messages_total", action="BootNotification", outcome="answered") == 1
    assert delta("csms_ocpp_messages_total", action="TransactionEvent", outcome="answered") == 2
    assert delta("csms_ocpp_messages_total", action="BootNotification", outcome=error_code) == 1
    assert delta("csms_ocpp_messages_total", action="other", outcome="NotImplemented") == 1
    assert delta("csms_ocpp_handle_seconds_count", action="TransactionEvent") == 2
    assert delta("csms_ocpp_handle_seconds_count", action="BootNotification") == 2
    assert delta("csms_ocpp_handle_seconds_bucket", action="TransactionEvent", le="+Inf") == 2
    assert delta("csms_ocpp_handle_seconds_sum", action="TransactionEvent") > 0
    assert delta("csms_command_seconds_count", action="Reset", outcome="answered") == 1
    assert delta("csms_db_batch_seconds_count") >= 1
    assert delta("csms_db_batch_rows_sum") >= 6  # at least the frames of the session's log
    # the built-in plugins take events in batches (event_batch): a call per batch, at least one
    assert delta("csms_hook_seconds_count", hook="event_batch", plugin="stationops") >= 1
    assert delta("csms_hook_seconds_count", hook="event", plugin="broken_metrics_probe") >= 1
    assert delta("csms_errors_total", kind="hook") == 1
    assert value(after, "csms_leader", job="stationops") == 1  # one node: the runner just runs


async def test_who_may_read_the_metrics(tmp_path):
    async with running_server(tmp_path, metrics_token="scrape-token") as srv:
        url = f"{srv.base_url}/metrics"
        org = (await srv.api.post("/organizations", json={"name": "Tenant", "kind": "operator"})).json()
        tenant_key = (await srv.api.post("/api-keys", json={"name": "t", "role": "admin",
                                                            "organization": org["id"]})).json()["key"]
        async with httpx.AsyncClient() as client:
            assert (await client.get(url)).status_code == 401
            assert (await client.get(url, headers={"Authorization": "Bearer wrong"})).status_code == 401
            ok = await client.get(url, headers={"Authorization": "Bearer scrape-token"})
            assert ok.status_code == 200 and "csms_ocpp_messages_total" in ok.text
            assert (await client.get(url, headers={"Authorization": f"Bearer {srv.api_key}"})).status_code == 200
            assert (await client.get(url, headers={"Authorization": b"Bearer na\xefve"})).status_code == 401
            # installation-wide: an organization's key learns nothing, not even that it exists
            assert (await client.get(url, headers={"Authorization": f"Bearer {tenant_key}"})).status_code == 404
        browser = await admin_client(srv, "viewer")  # a global user logged in to the admin
        try:
            assert (await browser.get("/metrics")).status_code == 200
        finally:
            await browser.aclose()


async def test_the_grafana_dashboard_asks_for_series_the_server_serves(server):
    """``docs/grafana-dashboard.json`` names only metric families ``/metrics`` serves (it cannot
    drift from the code unnoticed), and each panel has a query."""
    import re
    from pathlib import Path

    dashboard = json.loads((Path(__file__).parent.parent / "docs" / "grafana-dashboard.json").read_text())
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {server.api_key}"})
    served = {family.name for family in text_string_to_metric_families(r.text)}
    asked = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            asked |= set(re.findall(r"\b((?:csms|process)_[a-z_]+)\b", target["expr"]))
    # the parser names a family without its sample suffixes (a counter's _total, a histogram's _bucket ...)
    families = {re.sub(r"_(bucket|sum|count|total|created)$", "", name) for name in asked}
    assert families and families <= served, families - served
    assert {"csms_connected_stations", "csms_ocpp_messages", "csms_ocpp_handle_seconds", "csms_leader",
            "csms_ocpi_outbox"} <= families
