"""Reservations sent to the ``ocpp-rpc`` strict station (tests/node): ReserveNow and
CancelReservation frames are validated against the official 1.6 / 2.0.1 schemas by the station."""

from __future__ import annotations

import pytest

from tests.test_ocpp_rpc_strict import PROTOCOLS, create_token, node_station, strict_station  # noqa: F401

pytestmark = pytest.mark.filterwarnings("ignore::Warning")


@pytest.fixture
async def server(tmp_path):
    from csms.testing import running_server

    async with running_server(tmp_path, unknown_stations="accept") as srv:
        yield srv


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_strict_station_takes_reserve_and_cancel(server, node_station, protocol):
    v16 = protocol == "ocpp1.6"
    sid = "RESSTRICT16" if v16 else "RESSTRICT201"
    tag = f"{sid}-TAG"
    await create_token(server, tag)
    assert (await server.api.post("/tokens", json={"id_token": "RES-FLEET-1", "group_id": "FLEET"})).status_code == 201
    async with strict_station(node_station, server, sid, protocol, token=tag, linger=120) as st:
        await st.wait_event("lingering", timeout=60)
        mark = st.mark()
        body = {"station_id": sid, "id_token": "RES-FLEET-1", "evse_id": 1, "expires_in_minutes": 20}
        if not v16:
            body["connector_type"] = "cType2"
        r = await server.api.post("/reservations", json=body)
        assert r.status_code == 201, r.text + st.report()
        made = r.json()
        assert made["status"] == "accepted", made
        call = await st.wait_event("call", action="ReserveNow", since=mark)
        p = call["params"]
        if v16:
            assert p["connectorId"] == 1 and p["idTag"] == "RES-FLEET-1" and p["parentIdTag"] == "FLEET"
            assert p["reservationId"] == made["reservation_id"] and p["expiryDate"].endswith("Z")
        else:
            assert p["id"] == made["reservation_id"] and p["evseId"] == 1 and p["connectorType"] == "cType2"
            assert p["idToken"] == {"idToken": "RES-FLEET-1", "type": "ISO14443"}
            assert p["groupIdToken"] == {"idToken": "FLEET", "type": "Central"}
            assert p["expiryDateTime"].endswith("Z")

        station_wide = await server.api.post("/reservations", json={"station_id": sid, "id_token": tag,
                                                                    "expires_in_minutes": 5})
        assert station_wide.status_code == 201 and station_wide.json()["status"] == "accepted", station_wide.text

        mark = st.mark()
        r = await server.api.post(f"/reservations/{made['reservation_id']}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
        cancel = await st.wait_event("call", action="CancelReservation", since=mark)
        assert cancel["params"] == {"reservationId": made["reservation_id"]}
        await st.wait_event("reply", action="CancelReservation", since=mark)
        rc = await st.quit()
        st.assert_clean_exit(rc)
