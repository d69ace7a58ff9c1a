"""Security profiles 1 and 2: the handshake's answers to Basic credentials, and password rotation
(2.0.1 SetVariables of SecurityCtrlr.BasicAuthPassword, 1.6 ChangeConfiguration of
AuthorizationKey) over real WebSockets with the ``ocpp`` library's ChargePoint and a strict
``ocpp-rpc`` station."""

from __future__ import annotations

import asyncio

import pytest
import websockets
from ocpp.routing import on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201
from websockets.exceptions import InvalidStatus

from csms.core.services import passwords
from csms.core.tables import AuditEntry, Command, MessageLog, Station, StationEvent
from csms.testing import running_server
from tests.stations import Station16, Station201, basic_auth
from tests.test_ocpp_rpc_strict import node_station, strict_station  # noqa: F401

OLD = "old-password-0123456789"


class Keeper16(Station16):
    """Takes (or, with ``refuse``, rejects) a new AuthorizationKey and remembers the password."""

    refuse = False
    password: str | None = None

    @on(Action16.change_configuration)
    async def on_change_configuration(self, key, value, **kwargs):
        if key == "AuthorizationKey" and not self.refuse:
            self.password = bytes.fromhex(value).decode()
            return result16.ChangeConfiguration(status="Accepted")
        return result16.ChangeConfiguration(status="Rejected")


class Keeper201(Station201):
    refuse = False
    password: str | None = None

    @on(Action201.set_variables)
    async def on_set_variables(self, set_variable_data, **kwargs):
        results = []
        for d in set_variable_data:
            ok = (d["component"]["name"], d["variable"]["name"]) == ("SecurityCtrlr", "BasicAuthPassword") \
                and not self.refuse
            if ok:
                self.password = d["attribute_value"]
            results.append({"attribute_status": "Accepted" if ok else "Rejected", "component": d["component"],
                            "variable": d["variable"]})
        return result201.SetVariables(set_variable_result=results)


async def handshake_status(url: str, *, headers: dict[str, str] | None = None, protocol: str = "ocpp2.0.1"):
    """The HTTP answer to a handshake: (status, headers); 101 when the socket opened."""
    try:
        async with websockets.connect(url, subprotocols=[protocol], additional_headers=headers):
            return 101, {}
    except InvalidStatus as refused:
        return refused.response.status_code, refused.response.headers


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_basic_auth_failures_are_401_with_a_challenge(tmp_path, protocol):
    async with running_server(tmp_path, unknown_stations="accept") as srv:
        r = await srv.api.post("/stations/", json={"station_id": "PW", "password": OLD})
        assert r.status_code == 201, r.text
        url = srv.ws_url("PW")
        cases = {
            "no credentials": None,
            "wrong password": basic_auth("PW", "not-the-password-000"),
            "another station's id as user": basic_auth("OTHER", OLD),
            "not base64": {"Authorization": "Basic %%%"},
            "not Basic": {"Authorization": "Bearer " + OLD},
        }
        for case, headers in cases.items():
            status, head = await handshake_status(url, headers=headers, protocol=protocol)
            assert status == 401, case
            assert head["WWW-Authenticate"].startswith('Basic realm="'), case
        assert (await handshake_status(url, headers=basic_auth("PW", OLD), protocol=protocol))[0] == 101
        # a station without a password connects without credentials (profile 0) ...
        await srv.api.post("/stations/", json={"station_id": "OPEN"})
        assert (await handshake_status(srv.ws_url("OPEN"), protocol=protocol))[0] == 101


async def test_required_passwords_and_unknown_stations(tmp_path):
    """With passwords required, a station without one is 401 too; an unknown station under the
    reject policy is 404 (OCPP-J: the CSMS does not know that identity), never 401."""
    async with running_server(tmp_path, unknown_stations="accept", require_station_password=True) as srv:
        await srv.api.post("/stations/", json={"station_id": "NOPW"})
        status, head = await handshake_status(srv.ws_url("NOPW"), headers=basic_auth("NOPW", OLD))
        assert status == 401 and head["WWW-Authenticate"].startswith("Basic")
        status, head = await handshake_status(srv.ws_url("NEWCOMER"))
        assert status == 401 and head["WWW-Authenticate"].startswith("Basic")
        assert not await Station.exists().where(Station.station_id == "NEWCOMER")
    async with running_server(tmp_path / "reject", unknown_stations="reject") as srv:
        status, head = await handshake_status(srv.ws_url("STRANGER"), headers=basic_auth("STRANGER", OLD))
        assert status == 404 and "WWW-Authenticate" not in head


async def connected(srv, station_id: str, cls, password: str, protocol: str):
    ws = await websockets.connect(srv.ws_url(station_id), subprotocols=[protocol],
                                  additional_headers=basic_auth(station_id, password))
    cp = cls(station_id, ws)
    task = asyncio.create_task(cp.start())
    if protocol == "ocpp1.6":
        await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
    else:
        await cp.call(call201.BootNotification(charging_station={"vendor_name": "V", "model": "M"},
                                               reason="PowerUp"))
    return cp, ws, task


async def assert_nowhere_stored(station_id: str, secret: str) -> None:
    """The password is in no command row, frame, audit entry or station event."""
    texts = [str(r) for r in await Command.select().where(Command.station_id == station_id)]
    texts += [r["payload"] for r in await MessageLog.select(MessageLog.payload).where(
        MessageLog.station_id == station_id)]
    texts += [str(r) for r in await AuditEntry.select()]
    texts += [str(r) for r in await StationEvent.select().where(StationEvent.station_id == station_id)]
    assert texts and not [t for t in texts if secret in t or passwords.authorization_key(secret) in t]


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_rotation_stores_the_accepted_password_only(tmp_path, protocol):
    cls = Keeper16 if protocol == "ocpp1.6" else Keeper201
    async with running_server(tmp_path, unknown_stations="reject") as srv:
        await srv.api.post("/stations/", json={"station_id": "ROT", "password": OLD})
        cp, ws, task = await connected(srv, "ROT", cls, OLD, protocol)
        try:
            r = await srv.api.post("/stations/ROT/rotate-password")
            assert r.status_code == 201, r.text
            assert r.json() == {"station_id": "ROT", "status": "Accepted", "password_changed": True}
            new = cp.password
            assert new and new != OLD and 16 <= len(new) <= 20 and new.isalnum()
            assert new not in r.text
            # a refusal keeps the password the station has
            cp.refuse = True
            r = await srv.api.post("/stations/ROT/rotate-password")
            assert r.json()["status"] == "Rejected" and r.json()["password_changed"] is False
        finally:
            task.cancel()
            await ws.close()
        await srv.core.writer.flush()
        await assert_nowhere_stored("ROT", new)
        assert (await handshake_status(srv.ws_url("ROT"), headers=basic_auth("ROT", OLD), protocol=protocol))[0] == 401
        assert (await handshake_status(srv.ws_url("ROT"), headers=basic_auth("ROT", new), protocol=protocol))[0] == 101
        audit = await AuditEntry.select(AuditEntry.summary).where(AuditEntry.object_id == "ROT")
        assert {"password rotation: Accepted", "password rotation: Rejected"} <= {a["summary"] for a in audit}
        events = await StationEvent.select().where((StationEvent.station_id == "ROT")
                                                   & (StationEvent.kind == "password_changed"))
        assert len(events) == 1


class Dropper201(Keeper201):
    """Takes the new password and drops the connection before its answer leaves (TC_A_09's mock
    station does): the CSMS never hears it was accepted."""

    @on(Action201.set_variables)
    async def on_set_variables(self, set_variable_data, **kwargs):
        self.password = set_variable_data[0]["attribute_value"]
        await self._connection.close()
        return result201.SetVariables(set_variable_result=[])


async def test_a_station_that_took_the_password_but_whose_answer_was_lost_gets_in_with_it(tmp_path):
    """The new password is pending from the moment it is sent: a handshake with it is accepted and
    makes it the password (the old one refused from then on); a handshake with the old one while
    the new is pending drops the new one."""
    async with running_server(tmp_path, unknown_stations="reject") as srv:
        await srv.api.post("/stations/", json={"station_id": "LOST", "password": OLD})
        cp, ws, task = await connected(srv, "LOST", Dropper201, OLD, "ocpp2.0.1")
        try:
            r = await srv.api.post("/stations/LOST/rotate-password")
            assert r.status_code == 409, r.text  # the station went away before answering
        finally:
            task.cancel()
        new = cp.password
        assert new and new != OLD
        detail = (await srv.api.get("/stations/LOST")).json()
        assert detail["has_password"] and not {"password_hash", "pending_password_hash"} & set(detail)
        listed = (await srv.api.get("/stations/", params={"q": "LOST"})).json()["items"]
        assert listed and not {"password_hash", "pending_password_hash"} & set(listed[0])
        assert (await handshake_status(srv.ws_url("LOST"), headers=basic_auth("LOST", new)))[0] == 101
        assert (await handshake_status(srv.ws_url("LOST"), headers=basic_auth("LOST", OLD)))[0] == 401
        await srv.core.writer.flush()
        events = await StationEvent.select(StationEvent.summary).where(
            (StationEvent.station_id == "LOST") & (StationEvent.kind == "password_changed"))
        assert [e["summary"] for e in events] == ["the station connected with the new Basic-auth password sent to it"]
        await assert_nowhere_stored("LOST", new)
        # again, and this time the station comes back with its old password: it did not take the new one
        cp, ws, task = await connected(srv, "LOST", Dropper201, new, "ocpp2.0.1")
        try:
            await srv.api.post("/stations/LOST/rotate-password")
        finally:
            task.cancel()
        newer = cp.password
        assert (await handshake_status(srv.ws_url("LOST"), headers=basic_auth("LOST", new)))[0] == 101
        assert (await handshake_status(srv.ws_url("LOST"), headers=basic_auth("LOST", newer)))[0] == 401


async def test_password_set_through_the_raw_and_configuration_endpoints_is_stored(tmp_path):
    async with running_server(tmp_path, unknown_stations="reject") as srv:
        await srv.api.post("/stations/", json={"station_id": "RAW16", "password": OLD})
        cp, ws, task = await connected(srv, "RAW16", Keeper16, OLD, "ocpp1.6")
        try:
            # not the hexadecimal of a password: refused before anything is sent
            r = await srv.api.post("/stations/RAW16/ocpp/ChangeConfiguration",
                                   json={"key": "AuthorizationKey", "value": "plain-text-password-1"})
            assert r.status_code == 400 and "hexadecimal" in r.json()["detail"], r.text
            assert cp.password is None
            chosen = "chosen-by-operator-1"
            r = await srv.api.put("/stations/RAW16/configuration",
                                  json={"key": "AuthorizationKey", "value": passwords.authorization_key(chosen)})
            assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text
            assert cp.password == chosen
            config = (await srv.api.get("/stations/RAW16/configuration")).json()
            assert not [k for k in config["configuration_keys"] if k["key"] == "AuthorizationKey"]
        finally:
            task.cancel()
            await ws.close()
        await srv.core.writer.flush()
        await assert_nowhere_stored("RAW16", chosen)
        assert (await handshake_status(srv.ws_url("RAW16"), headers=basic_auth("RAW16", chosen),
                                       protocol="ocpp1.6"))[0] == 101


async def test_bulk_rotation_reports_each_station(tmp_path):
    async with running_server(tmp_path, unknown_stations="reject") as srv:
        site = (await srv.api.post("/sites/", json={"name": "Depot"})).json()["id"]
        for sid in ("B16", "B201", "BOFF"):
            r = await srv.api.post("/stations/", json={"station_id": sid, "password": OLD, "site": site})
            assert r.status_code == 201, r.text
        await srv.api.post("/stations/", json={"station_id": "ELSEWHERE", "password": OLD})
        a, ws_a, ta = await connected(srv, "B16", Keeper16, OLD, "ocpp1.6")
        b, ws_b, tb = await connected(srv, "B201", Keeper201, OLD, "ocpp2.0.1")
        b.refuse = True
        try:
            r = await srv.api.post("/stations/rotate-password", json={"site": site})
            assert r.status_code == 201, r.text
            results = {x["station_id"]: x["status"] for x in r.json()["results"]}
            assert results == {"B16": "Accepted", "B201": "Rejected", "BOFF": "Offline"}
            assert r.json()["counts"] == {"Accepted": 1, "Rejected": 1, "Offline": 1}
            r = await srv.api.post("/stations/rotate-password", json={"station_ids": ["B201", "NOSUCH"]})
            assert {x["station_id"]: x["status"] for x in r.json()["results"]} == {"B201": "Rejected",
                                                                                  "NOSUCH": "NotFound"}
            assert (await srv.api.post("/stations/rotate-password", json={})).status_code == 400
        finally:
            for t, w in ((ta, ws_a), (tb, ws_b)):
                t.cancel()
                await w.close()
        assert a.password and a.password not in r.text
        assert (await handshake_status(srv.ws_url("B16"), headers=basic_auth("B16", a.password),
                                       protocol="ocpp1.6"))[0] == 101
        assert (await handshake_status(srv.ws_url("B201"), headers=basic_auth("B201", OLD)))[0] == 101
        assert (await handshake_status(srv.ws_url("BOFF"), headers=basic_auth("BOFF", OLD)))[0] == 101
        paths = (await srv.api.get("/schema/openapi.json")).json()["paths"]
        assert "/api/v1/stations/rotate-password" in paths
        assert "/api/v1/stations/{station_id}/rotate-password" in paths


async def test_strict_201_station_takes_the_rotated_password(tmp_path, node_station):  # noqa: F811
    """ocpp-rpc in strict mode validates our SetVariables against the 2.0.1 schema."""
    async with running_server(tmp_path, unknown_stations="reject") as srv:
        await srv.api.post("/tokens", json={"id_token": "STRICTPW-TAG", "type": "ISO14443"})
        await srv.api.post("/stations/", json={"station_id": "STRICTPW", "password": OLD})
        async with strict_station(node_station, srv, "STRICTPW", "ocpp2.0.1", token="STRICTPW-TAG",
                                  password=OLD, linger=60) as st:
            await st.wait_event("lingering", timeout=60)
            r = await srv.api.post("/stations/STRICTPW/rotate-password")
            assert r.status_code == 201 and r.json()["status"] == "Accepted", r.text + st.report()
            changed = await st.wait_event("password_changed")
            assert not st.errors, st.report()
        new = changed["password"]
        assert (await handshake_status(srv.ws_url("STRICTPW"), headers=basic_auth("STRICTPW", new)))[0] == 101
        assert (await handshake_status(srv.ws_url("STRICTPW"), headers=basic_auth("STRICTPW", OLD)))[0] == 401
