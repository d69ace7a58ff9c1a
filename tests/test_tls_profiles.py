"""TLS as the security profiles need it (issue 17): RSA and ECDSA server certificates side by side,
SNI, profile 2 and profile 3 stations on one listener, the profile stored per station, raised by
a stronger connection and never lowered by a weaker one.

One server for the module (certificates from trustme): RSA and ECDSA chains for ``localhost``
(``tls_cert``/``tls_key`` and ``tls_certs``), an RSA certificate for ``other.example`` (SNI),
client certificates optional (``tls_ca``) with the profile enforced per station.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from contextlib import asynccontextmanager
from typing import AsyncIterator

import httpx
import pytest
import pytest_asyncio
import trustme
import websockets
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from csms.api.auth import create_api_key
from csms.server import TLSConfigError, build_ssl_context
from csms.settings import load_settings
from csms.testing import admin_client, free_port, running_server
from tests.stations import Station201
from tests.tls_stations import booted, client_context, profile_of, refused, server_certificate, server_certificates

pytestmark = pytest.mark.asyncio(loop_scope="module")

PASSWORD = "p" * 24


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def certs(ca, tmp_path_factory):
    """Server certificate files: RSA and ECDSA for localhost, RSA for other.example, the CA."""
    return server_certificates(ca, tmp_path_factory.mktemp("certs"),
                               more=(("other", ("other.example",), trustme.KeyType.RSA),))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def srv(certs, tmp_path_factory):
    tls_certs = ",".join(f"{c}:{k}" for c, k in (certs["ec"], certs["other"]))
    async with running_server(tmp_path_factory.mktemp("srv"), unknown_stations="accept",
                              tls_cert=certs["rsa"][0], tls_key=certs["rsa"][1], tls_certs=tls_certs,
                              tls_ca=certs["ca"]) as server:
        yield server


@asynccontextmanager
async def station(srv, station_id: str, ctx: ssl.SSLContext, *, password: str | None = None,
                  server_hostname: str | None = None) -> AsyncIterator[tuple[Station201, x509.Certificate]]:
    """A booted 2.0.1 station over TLS, with the server certificate it was given."""
    async with booted(srv.ws_url(station_id), station_id, ctx=ctx, password=password,
                      server_hostname=server_hostname) as (cp, ws):
        yield cp, server_certificate(ws)


async def refused_status(srv, station_id: str, ctx: ssl.SSLContext, *, password: str | None = None) -> int:
    return await refused(srv.ws_url(station_id), station_id, ctx=ctx, password=password)


async def test_rsa_only_and_ecdsa_only_clients_each_get_their_chain(srv, ca):
    async with station(srv, "RSA-ONLY", client_context(ca, ciphers="ECDHE-RSA-AES128-GCM-SHA256")) as (_, cert):
        assert isinstance(cert.public_key(), rsa.RSAPublicKey)
    async with station(srv, "EC-ONLY", client_context(ca, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")) as (_, cert):
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    async with station(srv, "TLS13", client_context(ca)) as (_, cert):  # a client taking both: either
        assert isinstance(cert.public_key(), (rsa.RSAPublicKey, ec.EllipticCurvePublicKey))
        assert srv.core.connections.get("TLS13") is not None


async def test_sni_picks_the_certificate_of_the_server_name(srv, ca):
    async with station(srv, "SNI", client_context(ca), server_hostname="other.example") as (_, cert):
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == ["other.example"]
    async with station(srv, "NOSNI", client_context(ca)) as (_, cert):  # an IP address sends no SNI
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == ["localhost"]


async def test_profile_2_and_profile_3_side_by_side(srv, ca):
    assert (await srv.api.post("/stations/", json={"station_id": "P2", "password": PASSWORD})).status_code == 201
    async with station(srv, "P2", client_context(ca), password=PASSWORD), \
            station(srv, "P3", client_context(ca, station="P3")):
        assert srv.core.connections.get("P2") is not None and srv.core.connections.get("P3") is not None
        assert await profile_of(srv, "P2") == 2
        assert await profile_of(srv, "P3") == 3
    # Basic auth over TLS: a wrong or missing password is 401
    assert await refused_status(srv, "P2", client_context(ca), password="wrong-password-12345") == 401
    assert await refused_status(srv, "P2", client_context(ca)) == 401


async def test_a_stronger_connection_raises_the_profile_and_a_weaker_one_is_refused(srv, ca):
    assert (await srv.api.post("/stations/", json={"station_id": "UP", "password": PASSWORD})).status_code == 201
    async with station(srv, "UP", client_context(ca), password=PASSWORD):
        pass
    assert await profile_of(srv, "UP") == 2
    # its client certificate (no password needed with it): raised to 3
    async with station(srv, "UP", client_context(ca, station="UP")):
        pass
    assert await profile_of(srv, "UP") == 3
    # back to the password alone: a downgrade, refused before the upgrade, logged and audited
    assert await refused_status(srv, "UP", client_context(ca), password=PASSWORD) == 401
    assert await profile_of(srv, "UP") == 3
    await srv.core.writer.flush()
    events = (await srv.api.get("/stations/UP/events", params={"category": "security"})).json()
    kinds = [e["kind"] for e in (events["items"] if isinstance(events, dict) else events)]
    assert "profile downgrade refused" in kinds and "profile raised" in kinds
    audit = (await srv.api.get("/audit", params={"object_type": "station", "limit": 100})).json()["items"]
    assert any(e["action"] == "refused" and e["object_id"] == "UP" and "profile 2" in e["summary"] for e in audit)
    # a certificate of another station: 403, whatever the password
    assert await refused_status(srv, "UP", client_context(ca, station="OTHER"), password=PASSWORD) == 403


async def test_the_operator_sets_the_profile(srv, ca):
    async with station(srv, "OPS", client_context(ca, station="OPS")):
        pass
    assert await profile_of(srv, "OPS") == 3
    assert await refused_status(srv, "OPS", client_context(ca)) == 401
    bad = await srv.api.patch("/stations/OPS", json={"security_profile": 7})
    assert bad.status_code == 400 and "security_profile" in bad.text
    # the station lost its certificate: an operator may not lower the profile (nothing changes) ...
    key, _ = await create_api_key("ops", "operator")
    async with httpx.AsyncClient(base_url=f"{srv.base_url}/api/v1", verify=False,
                                 headers={"Authorization": f"Bearer {key}"}) as ops:
        refused = await ops.patch("/stations/OPS", json={"security_profile": 2})
        assert refused.status_code == 403 and "admin role" in refused.text
        assert (await ops.patch("/stations/OPS", json={"security_profile": 3})).status_code == 200  # not lower
    assert await profile_of(srv, "OPS") == 3
    # ... an admin lowers it, and the station connects with TLS alone
    assert (await srv.api.patch("/stations/OPS", json={"security_profile": 2})).json()["security_profile"] == 2
    async with station(srv, "OPS", client_context(ca)):
        pass
    assert await profile_of(srv, "OPS") == 2


async def test_bad_certificate_settings_are_reported(certs, tmp_path):
    with pytest.raises(TLSConfigError, match="not a cert.pem:key.pem pair"):
        build_ssl_context(load_settings(data_dir=tmp_path, tls_certs="only-a-cert.pem"))
    with pytest.raises(TLSConfigError, match="missing.pem"):
        build_ssl_context(load_settings(data_dir=tmp_path, tls_certs=f"{tmp_path}/missing.pem:{certs['rsa'][1]}"))
    with pytest.raises(TLSConfigError, match="with key"):  # the key of another certificate
        build_ssl_context(load_settings(data_dir=tmp_path, tls_certs=f"{certs['rsa'][0]}:{certs['ec'][1]}"))
    one = build_ssl_context(load_settings(data_dir=tmp_path, tls_cert=certs["rsa"][0], tls_key=certs["rsa"][1]))
    assert one.sni_callback is None and one.verify_mode == ssl.CERT_NONE
    required = build_ssl_context(load_settings(data_dir=tmp_path, tls_certs=":".join(certs["ec"]),
                                               tls_ca=certs["ca"], tls_client_cert="required"))
    assert required.verify_mode == ssl.CERT_REQUIRED


async def test_plain_ws_is_profile_1_and_can_be_refused(tmp_path):
    async with running_server(tmp_path, unknown_stations="accept") as plain:
        async with websockets.connect(plain.ws_url("P1"), subprotocols=["ocpp2.0.1"]):
            pass
        assert await profile_of(plain, "P1") == 1
        # the station page shows the profile; an operator raises it there: plain ws is a downgrade now
        admin = await admin_client(plain, "operator", csrf_header=True)
        assert "1 (ws + password)" in (await admin.get("/admin/stations/P1")).text
        assert (await admin.post("/admin/stations/P1/security-profile", data={"security_profile": "9"})).status_code == 400
        assert (await admin.post("/admin/stations/P1/security-profile", data={"security_profile": "2"})).status_code == 303
        assert await profile_of(plain, "P1") == 2
        assert "2 (TLS + password)" in (await admin.get("/admin/stations/P1")).text
        lower = await admin.post("/admin/stations/P1/security-profile", data={"security_profile": "1"})
        assert lower.status_code == 403 and "admin role" in lower.text  # only an admin lowers it
        assert await profile_of(plain, "P1") == 2
        await admin.aclose()
        with pytest.raises(websockets.exceptions.InvalidStatus) as downgrade:
            async with websockets.connect(plain.ws_url("P1"), subprotocols=["ocpp2.0.1"]):
                pass
        assert downgrade.value.response.status_code == 401
        plain.core.settings.allow_plain_ws = False
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with websockets.connect(plain.ws_url("P1"), subprotocols=["ocpp2.0.1"]):
                pass
        assert refused.value.response.status_code == 403


async def test_serve_with_a_bad_certificate_setting_says_why_in_one_line(tmp_path):  # async: see pytestmark
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    env.update(CSMS_DATA_DIR=str(tmp_path), CSMS_TLS_CERTS=f"{tmp_path}/missing.pem:{tmp_path}/missing.key")
    done = subprocess.run([sys.executable, "-m", "csms", "serve", "--port", str(free_port())], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("csms serve: ") and "missing.pem" in done.stderr
    assert not (tmp_path / "csms.sqlite").exists()  # refused before anything was set up
