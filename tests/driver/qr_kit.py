"""What the start-by-QR tests share: test stations that answer a remote start and then start the
transaction with the card they were given (as a real one does once the car is plugged in), a
published site to put them on, and a throwaway pricing plugin that tells a tariff."""

from __future__ import annotations

import asyncio
import re
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import websockets
from ocpp.routing import after, on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201
from websockets.typing import Subprotocol

from csms.core.tables import Site, Station
from csms.plugin_api import hookimpl
from csms.testing.stations import Station16, Station201, now_iso
from tests.test_ocpp_rpc_strict import eventually

START_LINK = re.compile(r"(https?://\S+/driver/link/[A-Za-z0-9_-]+(?:\?next=\S+)?)")


class RemoteStart:
    """Answers a remote start with ``start_answer``; when it accepts, starts the transaction."""

    start_answer = "Accepted"
    remote_starts: list[dict[str, Any]]

    def remember(self, request: dict[str, Any]) -> str:
        if not hasattr(self, "remote_starts"):
            self.remote_starts = []
        self.remote_starts.append(request)
        return self.start_answer


class QrStation16(RemoteStart, Station16):
    @on(Action16.remote_start_transaction)
    async def on_remote_start(self, id_tag, connector_id=None, **kwargs):
        return result16.RemoteStartTransaction(status=self.remember({"id_tag": id_tag, "connector_id": connector_id}))

    @after(Action16.remote_start_transaction)
    async def after_remote_start(self, id_tag, connector_id=None, **kwargs):
        if self.start_answer != "Accepted":
            return

        async def plug_in_and_start() -> None:
            connector = connector_id or 1
            await self.call(call16.StatusNotification(connector_id=connector, error_code="NoError", status="Preparing"))
            await self.call(call16.StartTransaction(connector_id=connector, id_tag=id_tag, meter_start=1000,
                                                    timestamp=now_iso()))
            await self.call(call16.StatusNotification(connector_id=connector, error_code="NoError", status="Charging"))

        self.spawn(plug_in_and_start())


class QrStation201(RemoteStart, Station201):
    @on(Action201.request_start_transaction)
    async def on_request_start(self, id_token, remote_start_id, evse_id=None, **kwargs):
        return result201.RequestStartTransaction(status=self.remember(
            {"id_token": id_token, "evse_id": evse_id, "remote_start_id": remote_start_id}))

    @after(Action201.request_start_transaction)
    async def after_request_start(self, id_token, remote_start_id, evse_id=None, **kwargs):
        if self.start_answer != "Accepted":
            return

        async def plug_in_and_start() -> None:
            evse = evse_id or 1
            tx = f"tx-qr-{remote_start_id}"
            self.ongoing.add(tx)
            await self.call(call201.StatusNotification(timestamp=now_iso(), connector_status="Occupied",
                                                       evse_id=evse, connector_id=1))
            await self.call(call201.TransactionEvent(
                event_type="Started", timestamp=now_iso(), trigger_reason="RemoteStart", seq_no=0,
                transaction_info={"transactionId": tx, "chargingState": "Charging", "remoteStartId": remote_start_id},
                id_token={"idToken": id_token["id_token"], "type": id_token["type"]},
                evse={"id": evse, "connectorId": 1}))

        self.spawn(plug_in_and_start())


async def report_available(cp: Any, evses: int = 1) -> None:
    """StatusNotification Available for each EVSE (the CSMS learns them so)."""
    for evse in range(1, evses + 1):
        if cp.version == "1.6":
            await cp.call(call16.StatusNotification(connector_id=evse, error_code="NoError", status="Available"))
        else:
            await cp.call(call201.StatusNotification(timestamp=now_iso(), connector_status="Available", evse_id=evse,
                                                     connector_id=1))


@asynccontextmanager
async def qr_station(srv: Any, station_id: str, version: str, *, site: int | None = None,
                     evses: int = 1) -> AsyncIterator[Any]:
    """A booted test station that answers remote starts, its EVSEs reported Available, put on
    ``site`` (when given)."""
    subprotocol = Subprotocol("ocpp1.6" if version == "1.6" else "ocpp2.0.1")
    async with websockets.connect(srv.ws_url(station_id), subprotocols=[subprotocol]) as ws:
        cp: Any = (QrStation16 if version == "1.6" else QrStation201)(station_id, ws)
        cp.setup("1.0")
        cp.remote_starts = []
        task = asyncio.create_task(cp.start())
        try:
            await cp.boot()
            await report_available(cp, evses)
            if site is not None:
                await Station.update({Station.site: site}).where(Station.station_id == station_id)
            yield cp
        finally:
            task.cancel()
    await eventually(lambda: offline(station_id), what=f"{station_id} offline")


async def offline(station_id: str) -> bool:
    row = await Station.select(Station.connected).where(Station.station_id == station_id).first()
    return row is None or not row["connected"]


async def published_site(name: str = "Harbour depot", *, publish: bool = True) -> int:
    site = Site(name=name, address="Hafenstraße 1", postal_code="20457", city="Hamburg", country="DEU",
                latitude=53.5461, longitude=9.9661, publish=publish)
    await site.save()
    return site.id


class TariffText:
    """A throwaway pricing plugin: ``select_tariff`` answers an OCPI tariff with a text."""

    @hookimpl(tryfirst=True)
    def select_tariff(self, session):
        return {"id": "QR-FLAT", "currency": "EUR", "tariff_alt_text": [
            {"language": "de", "text": "0,39 EUR/kWh"}, {"language": "en", "text": "0.39 EUR per kWh incl. VAT"}],
            "elements": [{"price_components": [{"type": "ENERGY", "price": 0.33, "step_size": 1}]}]}
