"""Security profiles 2 and 3: TLS with Basic auth, and TLS with client certificates."""

from __future__ import annotations

import json
import ssl

import pytest
import trustme
import websockets

from csms.testing import running_server
from tests.stations import basic_auth

BOOT = [2, "1", "BootNotification", {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}]


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


def write_server_cert(ca, tmp_path):
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    return str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")


async def test_security_profile_2_tls_and_basic_auth(ca, tmp_path):
    cert, key = write_server_cert(ca, tmp_path)
    async with running_server(tmp_path, unknown_stations="reject", tls_cert=cert, tls_key=key) as srv:
        await srv.api.post("/stations/", json={"station_id": "SP2", "password": "s" * 24})
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
        async with websockets.connect(srv.ws_url("SP2"), subprotocols=["ocpp2.0.1"], ssl=client_ctx,
                                      additional_headers=basic_auth("SP2", "s" * 24)) as ws:
            await ws.send(json.dumps(BOOT))
            assert json.loads(await ws.recv())[2]["status"] == "Accepted"
        with pytest.raises(websockets.exceptions.InvalidStatus):
            async with websockets.connect(srv.ws_url("SP2"), subprotocols=["ocpp2.0.1"], ssl=client_ctx,
                                          additional_headers=basic_auth("SP2", "wrong-password-xyz")):
                pass


async def test_security_profile_3_client_certificate_required(ca, tmp_path):
    cert, key = write_server_cert(ca, tmp_path)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    async with running_server(tmp_path, unknown_stations="accept", tls_cert=cert, tls_key=key,
                              tls_ca=str(tmp_path / "ca.pem")) as srv:
        station_cert = ca.issue_cert("SP3", common_name="SP3")
        with_cert = ssl.create_default_context()
        ca.configure_trust(with_cert)
        station_cert.configure_cert(with_cert)
        async with websockets.connect(srv.ws_url("SP3"), subprotocols=["ocpp2.0.1"], ssl=with_cert) as ws:
            await ws.send(json.dumps(BOOT))
            assert json.loads(await ws.recv())[2]["status"] == "Accepted"
        without_cert = ssl.create_default_context()
        ca.configure_trust(without_cert)
        with pytest.raises((ssl.SSLError, OSError, websockets.exceptions.WebSocketException)):
            async with websockets.connect(srv.ws_url("SP3"), subprotocols=["ocpp2.0.1"], ssl=without_cert) as ws:
                await ws.send(json.dumps(BOOT))
                await ws.recv()
        # a valid certificate of another station: refused before the upgrade
        other = ssl.create_default_context()
        ca.configure_trust(other)
        ca.issue_cert("OTHER", common_name="OTHER").configure_cert(other)
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with websockets.connect(srv.ws_url("SP3"), subprotocols=["ocpp2.0.1"], ssl=other):
                pass
        assert refused.value.response.status_code == 403
