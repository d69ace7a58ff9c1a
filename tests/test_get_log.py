"""GetLog from the logs endpoint (POST /stations/{id}/logs) for the stations that take it: 2.0.1
always, 1.6 once its configuration shows the security extension (else GetDiagnostics, which has
no security log); the station's LogStatusNotifications are stored. Real stations on a real WebSocket."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import pytest
import websockets
from ocpp.routing import after, on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from csms.testing.stations import Station16, Station201
from tests.test_display_messages import eventually
from tests.test_ocpp_rpc_strict import Commands, create_token, node_station, strict_station  # noqa: F401 (fixture)

BODY = {"location": "ftp://logs.example.org/upload/", "log_type": "SecurityLog", "oldest": "2030-01-01T00:00:00Z",
        "latest": "2030-01-02T00:00:00Z", "retries": 2, "retry_interval": 60}
SENT_LOG = {"log_type": "SecurityLog", "retries": 2, "retry_interval": 60, "log": {
    "remote_location": "ftp://logs.example.org/upload/", "oldest_timestamp": "2030-01-01T00:00:00.000Z",
    "latest_timestamp": "2030-01-02T00:00:00.000Z"}}


class LogStation201(Station201):
    """Tells its upload in LogStatusNotifications (without uploading anywhere)."""

    @after(Action201.get_log)
    async def after_get_log(self, log, log_type, request_id, **kwargs):
        for status in ("Uploading", "Uploaded"):
            await self.call(call201.LogStatusNotification(status=status, request_id=request_id))

    @on(Action201.get_log)
    async def on_get_log(self, log, log_type, request_id, **kwargs):
        self.received.append(("GetLog", {"log": log, "log_type": log_type, **kwargs}))
        return result201.GetLog(status="Accepted", filename="security.log")


class LogStation16(Station16):
    """A 1.6 station; with ``security_extension`` its configuration has the extension's keys
    and it takes GetLog, telling its upload in LogStatusNotifications."""

    security_extension = False

    @on(Action16.get_configuration)
    async def on_get_configuration(self, key=None, **kwargs):
        keys = [{"key": "HeartbeatInterval", "value": "300", "readonly": False}]
        if self.security_extension:
            keys.append({"key": "SecurityProfile", "value": "1", "readonly": True})
        return result16.GetConfiguration(configuration_key=keys)

    @on(Action16.get_log)
    async def on_get_log(self, log, log_type, request_id, **kwargs):
        self.received.append(("GetLog", {"log": log, "log_type": log_type, **kwargs}))
        return result16.GetLog(status="Accepted", filename="security.log")

    @after(Action16.get_log)
    async def after_get_log(self, log, log_type, request_id, **kwargs):
        for status in ("Uploading", "Uploaded"):
            await self.call(call16.LogStatusNotification(status=status, request_id=request_id))

    @on(Action16.get_diagnostics)
    async def on_get_diagnostics(self, location, **kwargs):
        self.received.append(("GetDiagnostics", {"location": location, **kwargs}))
        return result16.GetDiagnostics(file_name="diag.log")


@asynccontextmanager
async def log_station(srv: Any, station_id: str, version: str, *, security_extension: bool = False,
                      ) -> AsyncIterator[Any]:
    protocol = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"
    async with websockets.connect(srv.ws_url(station_id), subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        cp = (LogStation16 if version == "1.6" else LogStation201)(station_id, ws)
        cp.setup("1.0")
        cp.security_extension = security_extension
        task = asyncio.create_task(cp.start())
        try:
            await cp.boot()
            yield cp
        finally:
            task.cancel()


async def uploaded(server: Any, station_id: str, request_id: int) -> bool:
    """The station's log status is Uploaded, and its events tell both steps of ``request_id``."""
    station = (await server.api.get(f"/stations/{station_id}")).json()
    events = (await server.api.get(f"/stations/{station_id}/events", params={"category": "log"})).json()["items"]
    steps = sorted(e["kind"] for e in events if e["details"].get("request_id") == request_id)
    return station["log_status"] == "Uploaded" and steps == ["Uploaded", "Uploading"]


async def test_201_get_log_with_its_status_stored(any_server):
    server = any_server
    async with log_station(server, "LOG201", "2.0.1") as cp:
        r = await server.api.post("/stations/LOG201/logs", json=BODY)
        assert r.status_code == 201, r.text
        assert r.json()["action"] == "GetLog" and r.json()["status"] == "Accepted"
        assert r.json()["response"]["filename"] == "security.log"
        assert cp.received[-1] == ("GetLog", SENT_LOG)
        await eventually(lambda: uploaded(server, "LOG201", r.json()["request_id"]))


async def test_16_get_log_once_the_security_extension_is_known(server):
    async with log_station(server, "LOG16", "1.6", security_extension=True) as cp:
        # nothing known of the station yet: GetDiagnostics, which has no security log
        r = await server.api.post("/stations/LOG16/logs", json={"location": BODY["location"]})
        assert r.status_code == 201 and r.json()["action"] == "GetDiagnostics" and r.json()["request_id"] is None
        r = await server.api.post("/stations/LOG16/logs", json=BODY)
        assert r.status_code == 400 and "security extension" in r.json()["detail"], r.text

        r = await server.api.post("/stations/LOG16/configuration/refresh", json={})
        assert r.status_code == 201, r.text
        r = await server.api.post("/stations/LOG16/logs", json=BODY)
        assert r.status_code == 201 and r.json()["action"] == "GetLog", r.text
        assert cp.received[-1] == ("GetLog", SENT_LOG)
        await eventually(lambda: uploaded(server, "LOG16", r.json()["request_id"]))


async def test_16_without_the_extension_keeps_get_diagnostics(server):
    async with log_station(server, "LOG16P", "1.6") as cp:
        assert (await server.api.post("/stations/LOG16P/configuration/refresh", json={})).status_code == 201
        r = await server.api.post("/stations/LOG16P/logs", json={**BODY, "log_type": "DiagnosticsLog"})
        assert r.json()["action"] == "GetDiagnostics" and r.json()["status"] == "Accepted", r.text
        assert cp.received[-1] == ("GetDiagnostics", {
            "location": BODY["location"], "start_time": "2030-01-01T00:00:00.000Z",
            "stop_time": "2030-01-02T00:00:00.000Z", "retries": 2, "retry_interval": 60})


@pytest.mark.parametrize("change", [
    {"log_type": "DataCollectorLog"}, {"latest": "2029-12-31T00:00:00Z"}, {"retries": -1},
    {"location": "not a url"}, {"location": "ftp://x/" + "a" * 520}, {"unknown": 1},
])
async def test_bad_log_requests_are_refused_before_sending(server, change):
    async with log_station(server, "LOG2", "2.0.1") as cp:
        r = await server.api.post("/stations/LOG2/logs", json={**BODY, **change})
        assert r.status_code == 400, r.text
        assert not [m for m in cp.received if m[0] == "GetLog"]


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_strict_station_get_log(server, node_station, protocol):
    """The ocpp-rpc strict station (1.6 with the security extension) checks GetLog against the
    official schema and answers with LogStatusNotifications, which are stored."""
    sid = "LOGSTRICT16" if protocol == "ocpp1.6" else "LOGSTRICT201"
    await create_token(server, f"{sid}-TAG")
    extra = ["--security-extension"] if protocol == "ocpp1.6" else []
    async with strict_station(node_station, server, sid, protocol, token=f"{sid}-TAG", linger=120, extra=extra) as st:
        await st.wait_event("lingering", timeout=60)
        cmd = Commands(server, st, sid)
        if protocol == "ocpp1.6":
            await cmd.send("POST", "/configuration/refresh", {}, action="GetConfiguration")
        mark = st.mark()
        data = await cmd.send("POST", "/logs", BODY, action="GetLog", status="Accepted")
        done = await st.wait_event("log_uploaded", since=mark, requestId=data["request_id"])
        assert done["logType"] == "SecurityLog" and done["log"]["oldestTimestamp"] == "2030-01-01T00:00:00.000Z"
        await eventually(lambda: uploaded(server, sid, data["request_id"]))
        await cmd.refused("POST", "/logs", {**BODY, "log_type": "Other"})
        st.assert_clean_exit(await st.quit())
