"""Reservations (``csms.core.services.reservations``, ``/api/v1/reservations``) against ``ocpp``
library stations of both versions over a real WebSocket."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from csms.core.tables import AuditEntry, Reservation
from csms.testing import running_server
from csms.testing.stations import station
from tests.test_ocpp_rpc_strict import eventually

VERSIONS = ["1.6", "2.0.1"]


@pytest.fixture
async def server(tmp_path):
    async with running_server(tmp_path, unknown_stations="accept") as srv:
        yield srv


async def reserve(srv, **body):
    body.setdefault("expires_in_minutes", 30)
    return await srv.api.post("/reservations", json=body)


async def reservation(srv, reservation_id):
    r = await srv.api.get(f"/reservations/{reservation_id}")
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("version", VERSIONS)
async def test_reserve_accepted_then_cancelled(tmp_path, version, backend):
    async with running_server(tmp_path, backend=backend, unknown_stations="accept") as srv:
        r = await srv.api.post("/tokens", json={"id_token": "RES-CARD", "group_id": "FLEET"})
        assert r.status_code == 201, r.text
        async with station(srv, "RS1", version) as cp:
            r = await reserve(srv, station_id="RS1", id_token="RES-CARD", evse_id=1)
            assert r.status_code == 201, r.text
            made = r.json()
            assert made["status"] == "accepted" and made["response"] == {"status": "Accepted"}
            assert made["station_id"] == "RS1" and made["evse_id"] == 1 and made["group_id_token"] == "FLEET"
            rid = made["reservation_id"]
            assert list(cp.reservations) == [rid]
            sent = cp.reservations[rid]
            if version == "1.6":
                assert sent["connector_id"] == 1 and sent["id_tag"] == "RES-CARD" and sent["parent_id_tag"] == "FLEET"
            else:
                assert sent["id_token"] == {"id_token": "RES-CARD", "type": "ISO14443"}
                assert sent["evse_id"] == 1 and sent["group_id_token"] == {"id_token": "FLEET", "type": "Central"}
            second = (await reserve(srv, station_id="RS1", id_token="RES-CARD")).json()
            assert second["reservation_id"] == rid + 1  # unique in the installation, in order

            r = await srv.api.get("/reservations", params={"station": "RS1", "active": True})
            assert r.status_code == 200 and r.json()["total"] == 2

            r = await srv.api.post(f"/reservations/{rid}/cancel")
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "cancelled" and rid not in cp.reservations
            r = await srv.api.post(f"/reservations/{rid}/cancel")
            assert r.status_code == 409 and "cancelled" in r.text  # no longer active: nothing sent
            assert [a for a, _ in cp.received].count("CancelReservation") == 1
        actions = {row["summary"] for row in await AuditEntry.select(AuditEntry.summary).where(
            AuditEntry.object_type == "reservation")}
        assert any(s.startswith("reserve RS1 EVSE 1 for RES-CARD: accepted") for s in actions), actions
        assert any(s.startswith(f"cancel reservation {rid}") for s in actions), actions


@pytest.mark.parametrize("version", VERSIONS)
async def test_rejected_answer_is_stored(server, version):
    async with station(server, "RS2", version) as cp:
        cp.reserve_answer = "Occupied"
        r = await reserve(server, station_id="RS2", id_token="ANY-TAG", evse_id=1)
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "occupied" and "Occupied" in r.json()["detail"]
        r = await server.api.get("/reservations", params={"reservation_status": "occupied"})
        assert r.json()["total"] == 1
        r = await server.api.post(f"/reservations/{r.json()['items'][0]['reservation_id']}/cancel")
        assert r.status_code == 409


@pytest.mark.parametrize("version", VERSIONS)
async def test_expiry_marks_expired(server, version):
    async with station(server, "RS3", version):
        soon = (datetime.now(timezone.utc) + timedelta(seconds=1)).isoformat()
        r = await reserve(server, station_id="RS3", id_token="EXP-TAG", expires_at=soon, expires_in_minutes=None)
        assert r.status_code == 201, r.text
        rid = r.json()["reservation_id"]
        assert r.json()["status"] == "accepted"
        await asyncio.sleep(1.2)
        assert (await reservation(server, rid))["status"] == "expired"
        r = await server.api.get("/reservations", params={"active": True})
        assert r.json()["total"] == 0


async def test_201_reservation_status_update(server):
    async with station(server, "RS4", "2.0.1") as cp:
        first = (await reserve(server, station_id="RS4", id_token="T1", evse_id=1)).json()["reservation_id"]
        second = (await reserve(server, station_id="RS4", id_token="T2", evse_id=2,
                                connector_type="cType2")).json()["reservation_id"]
        assert cp.reservations[second]["connector_type"] == "cType2"
        await cp.reservation_status(first, "Expired")
        await cp.reservation_status(second, "Removed")
        assert (await reservation(server, first))["status"] == "expired"
        assert (await reservation(server, second))["status"] == "removed"


@pytest.mark.parametrize("version", VERSIONS)
async def test_session_with_reservation_id_marks_it_used(server, version):
    await server.api.post("/tokens", json={"id_token": "USE-TAG"})
    async with station(server, "RS5", version) as cp:
        rid = (await reserve(server, station_id="RS5", id_token="USE-TAG", evse_id=1)).json()["reservation_id"]
        await cp.start_session("USE-TAG", reservation_id=rid)
        done = await eventually(lambda: _status_is(server, rid, "used"), what="reservation used")
        sessions = (await server.api.get("/sessions", params={"station": "RS5"})).json()["items"]
        assert done["session_id"] == sessions[0]["id"]


@pytest.mark.parametrize("version", VERSIONS)
async def test_group_token_uses_reservation_and_another_token_is_noted(server, version):
    await server.api.post("/tokens", json={"id_token": "GRP-A", "group_id": "TEAM"})
    await server.api.post("/tokens", json={"id_token": "GRP-B", "group_id": "TEAM"})
    await server.api.post("/tokens", json={"id_token": "STRANGER"})
    async with station(server, "RS6", version) as cp:
        rid = (await reserve(server, station_id="RS6", id_token="GRP-A", evse_id=1)).json()["reservation_id"]
        await cp.start_session("STRANGER")  # the station let another token charge: recorded, still reserved
        noted = await eventually(lambda: _detail_has(server, rid, "another token"), what="noted")
        assert noted["status"] == "accepted"
        if version == "2.0.1":
            await cp.stop_session(f"tx-{cp.id}")
            await cp.start_session("GRP-B", transaction_id="tx-2")  # of the reservation's group, no reservationId
        else:
            await cp.stop_session(1)
            await cp.start_session("GRP-B")
        await eventually(lambda: _status_is(server, rid, "used"), what="used by the group")


async def _status_is(server, rid, status):
    row = await reservation(server, rid)
    return row if row["status"] == status else None


async def _detail_has(server, rid, text):
    row = await reservation(server, rid)
    return row if text in row["detail"] else None


async def test_bad_input_offline_and_unknown(server):
    """Bad input is 400 (Litestar's validation answer, as everywhere in the API), nothing stored."""
    assert (await reserve(server, station_id="NOPE", id_token="X")).status_code == 404
    assert (await server.api.get("/reservations/424242")).status_code == 404
    assert (await server.api.post("/reservations/424242/cancel")).status_code == 404
    async with station(server, "RS7", "1.6"):
        pass
    await eventually(lambda: _offline(server, "RS7"), what="RS7 offline")
    r = await reserve(server, station_id="RS7", id_token="X")
    assert r.status_code == 409, r.text
    assert await Reservation.count() == 0  # nothing stored for an offline station
    async with station(server, "RS7", "1.6"):
        assert (await reserve(server, station_id="RS7", id_token="X" * 21)).status_code == 400
        assert (await reserve(server, station_id="RS7", id_token="X", connector_type="cType2")).status_code == 400
        assert (await reserve(server, station_id="RS7", id_token="X", expires_in_minutes=0)).status_code == 400
        past = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
        r = await reserve(server, station_id="RS7", id_token="X", expires_at=past, expires_in_minutes=None)
        assert r.status_code == 400
        assert (await reserve(server, station_id="RS7", id_token="X", evse_id=-1)).status_code == 400
        assert (await reserve(server, station_id="RS7", id_token="X", color="red")).status_code == 400
        assert (await server.api.get("/reservations", params={"reservation_status": "bogus"})).status_code == 400
    async with station(server, "RS8", "2.0.1"):
        r = await reserve(server, station_id="RS8", id_token="X", connector_type="cBogus")
        assert r.status_code == 400
    assert await Reservation.count() == 0


async def _offline(server, station_id):
    r = await server.api.get(f"/stations/{station_id}")
    return not r.json().get("connected")


async def test_other_organization_sees_404(server):
    orgs = {}
    for name in ("Alpha", "Beta"):
        r = await server.api.post("/organizations", json={"name": name})
        assert r.status_code == 201, r.text
        orgs[name] = r.json()["id"]
    keys = {}
    for name, org in orgs.items():
        r = await server.api.post("/api-keys", json={"name": f"{name}-op", "role": "operator", "organization": org})
        assert r.status_code == 201, r.text
        keys[name] = {"Authorization": f"Bearer {r.json()['key']}"}
    async with station(server, "RSA", "2.0.1"):
        r = await server.api.patch("/stations/RSA", json={"organization": orgs["Alpha"]})
        assert r.status_code == 200, r.text
        r = await server.api.post("/reservations", headers=keys["Alpha"],
                                  json={"station_id": "RSA", "id_token": "T", "expires_in_minutes": 5})
        assert r.status_code == 201, r.text
        rid = r.json()["reservation_id"]
        r = await server.api.post("/reservations", headers=keys["Beta"],
                                  json={"station_id": "RSA", "id_token": "T", "expires_in_minutes": 5})
        assert r.status_code == 404
        assert (await server.api.get(f"/reservations/{rid}", headers=keys["Beta"])).status_code == 404
        assert (await server.api.post(f"/reservations/{rid}/cancel", headers=keys["Beta"])).status_code == 404
        assert (await server.api.get("/reservations", headers=keys["Beta"])).json()["total"] == 0
        assert (await server.api.get("/reservations", headers=keys["Alpha"])).json()["total"] == 1
        assert (await server.api.get(f"/reservations/{rid}", headers=keys["Alpha"])).status_code == 200


async def test_openapi_documents_reservations(server):
    paths = (await server.api.get("/schema/openapi.json")).json()["paths"]
    assert {"/api/v1/reservations", "/api/v1/reservations/{reservation_id}",
            "/api/v1/reservations/{reservation_id}/cancel"} <= set(paths)


@pytest.mark.parametrize("version", VERSIONS)
async def test_operations_interface_of_the_ocpi_plugin(server, version):
    """``core.operations.reserve``/``cancel_reservation`` (what plugins/roaming_ocpi calls) go
    through the reservation service: stored, 1.6 idTags cut to 20, cancel answered as before."""
    ops = server.core.operations
    expires = datetime.now(timezone.utc) + timedelta(minutes=10)
    async with station(server, "RS9", version) as cp:
        answer = await ops.reserve("RS9", id_token="A-ROAMING-TOKEN-OF-25-CH", expires_at=expires, evse_id=1,
                                   by="ocpi:partner")
        assert answer["status"] == "Accepted" and answer["response"] == {"status": "Accepted"}
        stored = await reservation(server, answer["reservation_id"])
        assert stored["created_by"] == "ocpi:partner" and stored["status"] == "accepted"
        assert stored["id_token"] == ("A-ROAMING-TOKEN-OF-2" if version == "1.6" else "A-ROAMING-TOKEN-OF-25-CH")
        done = await ops.cancel_reservation("RS9", reservation_id=answer["reservation_id"], by="ocpi:partner")
        assert done["status"] == "Accepted" and not cp.reservations
        assert (await reservation(server, answer["reservation_id"]))["status"] == "cancelled"
        again = await ops.cancel_reservation("RS9", reservation_id=answer["reservation_id"], by="ocpi:partner")
        assert again["status"] == "Rejected"  # sent anyway, as before; the stored status stays
        assert (await ops.cancel_reservation("RS9", reservation_id=777, by="x"))["status"] == "Rejected"


async def test_station_callerror_is_stored_as_rejected(server):
    async with station(server, "RS10", "2.0.1") as cp:
        def broken(reservation_id, request):
            raise RuntimeError("firmware bug")

        cp.reserve = broken
        r = await reserve(server, station_id="RS10", id_token="T")
        assert r.status_code == 502 and "InternalError" in r.text
        rows = (await server.api.get("/reservations", params={"station": "RS10"})).json()["items"]
        assert [(row["status"], row["detail"].split(":")[0]) for row in rows] == [("rejected", "InternalError")]
