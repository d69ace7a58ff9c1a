"""A plain listener and a TLS listener in one server process (``tls_port``, issue 17): profile 1
stations on ``port`` (ws), profile 2 and 3 stations on ``tls_port`` (wss), one app, one hub, each
station still held to its stored profile.

The server is made by ``csms.server.make_server``, as ``csms serve`` makes it; the last test runs
``csms serve --tls-port`` itself. Certificates from trustme: an RSA and an ECDSA chain for
``127.0.0.1``, client certificates signed by the same CA (profile 3).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import time

import httpx
import pytest
import pytest_asyncio
import trustme
import websockets

from csms.server import TLSConfigError, tls_listener_context
from csms.settings import load_settings
from csms.testing import free_port, running_server
from tests.tls_stations import booted, client_context, profile_of, refused, server_certificates

pytestmark = pytest.mark.asyncio(loop_scope="module")

PASSWORD = "q" * 20


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def certs(ca, tmp_path_factory):
    return server_certificates(ca, tmp_path_factory.mktemp("certs"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def srv(certs, tmp_path_factory):
    async with running_server(tmp_path_factory.mktemp("srv"), unknown_stations="accept",
                              tls_cert=certs["rsa"][0], tls_key=certs["rsa"][1], tls_certs=":".join(certs["ec"]),
                              tls_ca=certs["ca"], tls_port=free_port()) as server:
        yield server


async def test_profiles_1_2_and_3_on_the_two_listeners_of_one_server(srv, ca):
    for station_id in ("SP1", "SP2"):
        created = await srv.api.post("/stations/", json={"station_id": station_id, "password": PASSWORD})
        assert created.status_code == 201
    async with booted(srv.ws_url("SP1"), "SP1", password=PASSWORD) as (_, plain), \
            booted(srv.wss_url("SP2"), "SP2", ctx=client_context(ca), password=PASSWORD) as (_, two), \
            booted(srv.wss_url("SP3"), "SP3", ctx=client_context(ca, station="SP3")) as (sp3, three):
        assert plain.transport.get_extra_info("ssl_object") is None
        assert two.transport.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
        # one hub: the three are connected to the same core, and the operator reaches each
        assert all(srv.core.connections.get(s) is not None for s in ("SP1", "SP2", "SP3"))
        answer = await srv.api.post("/stations/SP3/ocpp/Reset", json={"type": "OnIdle"})
        assert answer.status_code == 201 and answer.json()["response"]["status"] == "Accepted"
        assert [await profile_of(srv, s) for s in ("SP1", "SP2", "SP3")] == [1, 2, 3]
    # each is held to its stored profile, whichever port it knocks on
    assert await refused(srv.ws_url("SP2"), "SP2", password=PASSWORD) == 401  # profile 2 over plain ws
    assert await refused(srv.wss_url("SP3"), "SP3", ctx=client_context(ca), password=PASSWORD) == 401  # 3 without its cert
    assert await refused(srv.wss_url("SP2"), "SP2", ctx=client_context(ca), password="wrong-password-123") == 401
    # the REST API answers on both listeners
    async with httpx.AsyncClient(verify=client_context(ca)) as client:
        assert (await client.get(f"https://127.0.0.1:{srv.tls_port}/api/v1/health")).status_code == 200
        assert (await client.get(f"http://127.0.0.1:{srv.port}/api/v1/health")).status_code == 200


async def test_the_tls_listener_serves_rsa_and_ecdsa_suites_and_only_tls_1_2_or_newer(srv, ca):
    # OCPP 2.0.1 A00.FR.318: the four TLS 1.2 suites, RSA key exchange included; a client offering
    # better ones gets a forward-secret suite
    async with booted(srv.wss_url("BEST"), "BEST", ctx=client_context(ca, station="BEST", ciphers="AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256")) as (_, ws):
        assert ws.transport.get_extra_info("ssl_object").cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256"
    for suite in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "AES128-GCM-SHA256",
                  "AES256-GCM-SHA384"):
        async with booted(srv.wss_url(f"S-{suite}"), f"S-{suite}", ctx=client_context(ca, station=f"S-{suite}", ciphers=suite)) \
                as (_, ws):
            assert ws.transport.get_extra_info("ssl_object").cipher()[0] == suite
    old = client_context(ca)
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, OSError)):
        async with websockets.connect(srv.wss_url("OLD"), subprotocols=["ocpp2.0.1"], ssl=old):
            pass


async def test_allow_plain_ws_off_closes_the_plain_port_to_stations_only(srv, ca):
    srv.core.settings.allow_plain_ws = False
    try:
        assert await refused(srv.ws_url("SP1"), "SP1", password=PASSWORD) == 403
        async with booted(srv.wss_url("SP1"), "SP1", ctx=client_context(ca), password=PASSWORD):
            pass
        assert await profile_of(srv, "SP1") == 2  # raised by the stronger connection
    finally:
        srv.core.settings.allow_plain_ws = True


async def test_tls_port_settings_that_cannot_be_served(certs, tmp_path):
    with pytest.raises(TLSConfigError, match="no server certificate"):
        tls_listener_context(load_settings(data_dir=tmp_path, tls_port=8443))
    with pytest.raises(TLSConfigError, match="same as port"):
        tls_listener_context(load_settings(data_dir=tmp_path, port=8443, tls_port=8443,
                                           tls_cert=certs["rsa"][0], tls_key=certs["rsa"][1]))
    assert tls_listener_context(load_settings(data_dir=tmp_path, tls_cert=certs["rsa"][0],
                                              tls_key=certs["rsa"][1])) is None  # TLS on `port` itself


async def test_csms_serve_with_a_tls_port(certs, ca, tmp_path):  # async: see pytestmark
    """``csms serve --tls-port``: a profile 1 station on the plain port and a profile 3 station on
    the TLS port of the one process."""
    port, tls_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    env.update(CSMS_DATA_DIR=str(tmp_path), CSMS_UNKNOWN_STATIONS="accept", CSMS_LOG_LEVEL="warning",
               CSMS_TLS_CERT=certs["ec"][0], CSMS_TLS_KEY=certs["ec"][1], CSMS_TLS_CA=certs["ca"])
    server = subprocess.Popen([sys.executable, "-m", "csms", "serve", "--port", str(port), "--tls-port", str(tls_port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                async with booted(f"ws://127.0.0.1:{port}/ocpp/PLAIN", "PLAIN"):
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "csms serve did not start"
                await asyncio.sleep(0.3)
        async with booted(f"wss://127.0.0.1:{tls_port}/ocpp/CERT", "CERT", ctx=client_context(ca, station="CERT")) as (_, ws):
            assert ws.transport.get_extra_info("ssl_object").getpeercert()["subjectAltName"][0] == ("DNS", "localhost")
    finally:
        server.terminate()
        try:
            out, _ = server.communicate(timeout=90)  # a graceful stop (5 s for connections, then the app's)
        except subprocess.TimeoutExpired:
            server.kill()
            out, _ = server.communicate()
            raise AssertionError(f"csms serve did not stop on SIGTERM:\n{out[-4000:]}") from None
    assert f"wss://127.0.0.1:{tls_port}/ocpp/<station_id>" in out
