"""Stations for tests, built on the ``ocpp`` library's own ChargePoint (an independent peer)."""

from __future__ import annotations

import asyncio
import base64
from contextlib import asynccontextmanager
from typing import AsyncIterator

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201


class Station16(ChargePoint16):
    """Answers the commands the tests send."""

    @on(Action16.reset)
    async def on_reset(self, type, **kwargs):
        return result16.Reset(status="Accepted")

    @on(Action16.remote_start_transaction)
    async def on_remote_start(self, id_tag, **kwargs):
        self.remote_started = id_tag
        return result16.RemoteStartTransaction(status="Accepted")

    @on(Action16.get_configuration)
    async def on_get_configuration(self, **kwargs):
        return result16.GetConfiguration(configuration_key=[
            {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
            {"key": "NumberOfConnectors", "readonly": True, "value": "2"},
        ])

    @on(Action16.change_configuration)
    async def on_change_configuration(self, key, value, **kwargs):
        return result16.ChangeConfiguration(status="Accepted")


class Station201(ChargePoint201):
    @on(Action201.reset)
    async def on_reset(self, type, **kwargs):
        return result201.Reset(status="Accepted")

    @on(Action201.request_start_transaction)
    async def on_request_start(self, id_token, remote_start_id, **kwargs):
        self.remote_started = id_token
        return result201.RequestStartTransaction(status="Accepted")

    @on(Action201.set_variables)
    async def on_set_variables(self, set_variable_data, **kwargs):
        return result201.SetVariables(set_variable_result=[
            {"attribute_status": "Accepted", "component": d["component"], "variable": d["variable"]}
            for d in set_variable_data
        ])

    @on(Action201.get_variables)
    async def on_get_variables(self, get_variable_data, **kwargs):
        return result201.GetVariables(get_variable_result=[
            {"attribute_status": "Accepted", "attribute_value": "60", "component": d["component"],
             "variable": d["variable"]}
            for d in get_variable_data
        ])


def basic_auth(station_id: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{station_id}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@asynccontextmanager
async def connect(url: str, station_id: str, version: str = "2.0.1", password: str | None = None,
                  ) -> AsyncIterator[Station16 | Station201]:
    """A connected station (library ChargePoint) with its receive loop running."""
    subprotocol = "ocpp2.0.1" if version == "2.0.1" else "ocpp1.6"
    headers = basic_auth(station_id, password) if password else None
    async with websockets.connect(url, subprotocols=[subprotocol], additional_headers=headers) as ws:
        cls = Station201 if version == "2.0.1" else Station16
        cp = cls(station_id, ws)
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
