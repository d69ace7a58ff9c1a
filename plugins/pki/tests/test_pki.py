"""The PKI plugin against real peers: a test CA's OCSP responder and CRL over HTTP, a contract
certificate provider, and stations over a real WebSocket (the ``ocpp`` library checks every
answer against the official schemas): M06 GetCertificateStatus, C07 Authorize with contract
certificates, M01/M02 Get15118EVCertificate, 2.1 GetCertificateChainStatus; and the core's
answers with the plugin off."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import trustme
import websockets
from cryptography import x509
from cryptography.x509 import ocsp
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v21 import call as call21
from ocpp.v201 import call as call201

from csms.plugin_api import hook_impls
from csms.testing import asgi_server, free_port, pm, running_server, stopped
from csms.testing.stations import station
from plugins.pki.config import PkiSettings, pki_settings
from plugins.pki.ocsp import CertId, OcspClient
from plugins.pki.tests.peers import Provider, TestCa, hash_data, pem, snake

SCHEMA = "urn:iso:15118:2:2013:MsgDef"


@pytest.fixture
def settings(monkeypatch) -> Iterator[Any]:
    """Set CSMS_PKI_* for the test: ``settings(ocsp_timeout="1")``."""

    def set_(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"CSMS_PKI_{name.upper()}", value)
        pki_settings.cache_clear()

    yield set_
    pki_settings.cache_clear()


@pytest.fixture
async def ca(settings) -> AsyncIterator[TestCa]:
    port = free_port()
    test_ca = TestCa(f"http://127.0.0.1:{port}")
    settings(ocsp_timeout="1.5")
    async with asgi_server(test_ca.app(), port):
        yield test_ca


@pytest.fixture
async def server(tmp_path, ca) -> AsyncIterator[Any]:
    async with running_server(tmp_path, unknown_stations="accept") as srv:
        yield srv


async def token(srv: Any, emaid: str) -> None:
    r = await srv.api.post("/tokens", json={"id_token": emaid, "type": "eMAID"})
    assert r.status_code == 201, r.text


def parsed(ocsp_result: str) -> ocsp.OCSPResponse:
    return ocsp.load_der_ocsp_response(base64.b64decode(ocsp_result))


# ---------------------------------------------------------------------------------------------
# M06 GetCertificateStatus


async def test_certificate_status_is_asked_of_the_responder_and_relayed(server, ca):
    good = ca.contract("DEMOGOOD00001")
    revoked = ca.contract("DEMOREVOKED01", revoked=x509.ReasonFlags.key_compromise)
    unknown = ca.contract("DEMOUNKNOWN01", known=False)
    async with station(server, "PKI-M06", "2.0.1") as cp:
        answers = {}
        for name, cert in (("good", good), ("revoked", revoked), ("unknown", unknown)):
            r = await cp.call(call201.GetCertificateStatus(ocsp_request_data=snake(hash_data(cert, ca.sub, ca.ocsp_url))))
            assert r.status == "Accepted", r
            single = next(parsed(r.ocsp_result).responses)
            assert single.serial_number == cert.serial_number
            answers[name] = single.certificate_status
        assert answers == {"good": ocsp.OCSPCertStatus.GOOD, "revoked": ocsp.OCSPCertStatus.REVOKED,
                           "unknown": ocsp.OCSPCertStatus.UNKNOWN}
        assert ca.requests == 3
        # the answer is kept until its nextUpdate: asked again, the responder is not
        r = await cp.call(call201.GetCertificateStatus(ocsp_request_data=snake(hash_data(good, ca.sub, ca.ocsp_url))))
        assert r.status == "Accepted" and ca.requests == 3


@pytest.mark.parametrize(("path", "reason"), [
    ("/ocsp/broken", "OCSPResponseError"), ("/ocsp/unauthorized", "OCSPResponseError"),
    ("/ocsp/slow", "OCSPTimeout"), ("/nothing-here", "OCSPResponseError")])
async def test_a_responder_that_fails_gives_failed_with_the_reason(server, ca, path, reason):
    cert = ca.contract("DEMOFAIL00001")
    async with station(server, "PKI-M06F", "2.0.1") as cp:
        r = await cp.call(call201.GetCertificateStatus(
            ocsp_request_data=snake(hash_data(cert, ca.sub, ca.base_url + path))))
        assert r.status == "Failed" and r.status_info["reason_code"] == reason, r
        assert r.ocsp_result is None


async def test_unreachable_responder_bad_hash_data_and_the_override(server, ca, settings):
    cert = ca.contract("DEMOOVERRIDE1")
    dead = f"http://127.0.0.1:{free_port()}/ocsp"
    async with station(server, "PKI-M06O", "2.0.1") as cp:
        r = await cp.call(call201.GetCertificateStatus(ocsp_request_data=snake(hash_data(cert, ca.sub, dead))))
        assert r.status == "Failed" and r.status_info["reason_code"] == "OCSPUnreachable"
        bad = {**hash_data(cert, ca.sub, ca.ocsp_url), "issuerNameHash": "not-hex"}
        r = await cp.call(call201.GetCertificateStatus(ocsp_request_data=snake(bad)))
        assert r.status == "Failed" and r.status_info["reason_code"] == "InvalidHashData"
        # the configured responder wins over the URL the station sent
        settings(ocsp_responder_url=ca.ocsp_url)
        r = await cp.call(call201.GetCertificateStatus(ocsp_request_data=snake(hash_data(cert, ca.sub, dead))))
        assert r.status == "Accepted" and ca.requests == 1


async def test_signatures_are_checked_against_the_trust_anchors(server, ca, settings, tmp_path):
    """With the sub-CA among the anchors, a forged answer is refused, the issuer's own and its
    delegated responder's are relayed."""
    anchors = tmp_path / "anchors.pem"
    anchors.write_text(pem(ca.root, ca.sub))
    settings(trust_anchors=str(anchors), ocsp_cache_size="0")
    cert = ca.contract("DEMOSIGNED001")
    async with station(server, "PKI-SIG", "2.0.1") as cp:
        for path, status in (("/ocsp", "Accepted"), ("/ocsp/delegated", "Accepted"), ("/ocsp/forged", "Failed")):
            r = await cp.call(call201.GetCertificateStatus(
                ocsp_request_data=snake(hash_data(cert, ca.sub, ca.base_url + path))))
            assert r.status == status, (path, r)
        assert r.status_info["reason_code"] == "OCSPSignature"
        # without anchors the forged answer cannot be told apart and is relayed (the station checks it)
        settings(trust_anchors="")
        r = await cp.call(call201.GetCertificateStatus(
            ocsp_request_data=snake(hash_data(cert, ca.sub, ca.base_url + "/ocsp/forged"))))
        assert r.status == "Accepted"


async def test_the_client_shares_concurrent_requests_and_bounds_its_cache(ca):
    """Five asks at once about one certificate are one request; the cache keeps the newest
    ``ocsp_cache_size`` answers, each until its nextUpdate."""
    client = OcspClient(PkiSettings(ocsp_cache_size=2, ocsp_timeout=2))
    certs = [ca.contract(f"DECACHE{i:06d}") for i in range(3)]
    ids = [CertId.from_hash_data(hash_data(c, ca.sub)) for c in certs]
    answers = await asyncio.gather(*(client.status(ids[0], ca.ocsp_url, ca.sub) for _ in range(5)))
    assert {a.status for a in answers} == {"Good"} and all(a.verified for a in answers) and ca.requests == 1
    for cert_id in ids[1:]:
        await client.status(cert_id, ca.ocsp_url)
    assert len(client.cache) == 2 and ca.requests == 3
    await client.status(ids[0], ca.ocsp_url)  # dropped (least recently used): asked again
    assert ca.requests == 4
    # OCSP times are whole seconds: nextUpdate "now + 3 s" is 2-3 s away once truncated (with 1 s
    # it could be already past by the second ask on a busy machine)
    ca.next_update = timedelta(seconds=3)
    fresh = ca.contract("DECACHESHORT1")
    short = CertId.from_hash_data(hash_data(fresh, ca.sub))
    await client.status(short, ca.ocsp_url)
    await client.status(short, ca.ocsp_url)
    assert ca.requests == 5
    await asyncio.sleep(3.2)
    await client.status(short, ca.ocsp_url)  # past its nextUpdate: asked again
    assert ca.requests == 6


# ---------------------------------------------------------------------------------------------
# C07 Authorize with contract certificates


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_authorize_with_contract_certificate_hash_data(tmp_path, ca, backend):
    good = ca.contract("DEPNCGOOD0001")
    revoked = ca.contract("DEPNCREVOKED1", revoked=x509.ReasonFlags.key_compromise)
    cancelled = ca.contract("DEPNCCANCEL01", revoked=x509.ReasonFlags.cessation_of_operation)
    async with running_server(tmp_path, backend=backend, unknown_stations="accept") as srv:
        for emaid in ("DEPNCGOOD0001", "DEPNCREVOKED1", "DEPNCCANCEL01"):
            await token(srv, emaid)
        async with station(srv, "PKI-C07", "2.0.1") as cp:

            async def authorize(emaid: str, cert: x509.Certificate) -> Any:
                return await cp.call(call201.Authorize(
                    id_token={"id_token": emaid, "type": "eMAID"},
                    iso15118_certificate_hash_data=[snake(hash_data(cert, ca.sub, ca.ocsp_url)),
                                                     snake(hash_data(ca.sub, ca.root, ca.ocsp_url))]))

            r = await authorize("DEPNCGOOD0001", good)
            assert (r.id_token_info["status"], r.certificate_status) == ("Accepted", "Accepted")
            r = await authorize("DEPNCREVOKED1", revoked)
            assert (r.id_token_info["status"], r.certificate_status) == ("Invalid", "CertificateRevoked")
            r = await authorize("DEPNCCANCEL01", cancelled)
            assert (r.id_token_info["status"], r.certificate_status) == ("Invalid", "ContractCancelled")
            # a plain RFID Authorize is untouched
            r = await cp.call(call201.Authorize(id_token={"id_token": "DEPNCGOOD0001", "type": "eMAID"}))
            assert r.id_token_info["status"] == "Accepted" and r.certificate_status is None


async def test_authorize_with_the_pem_chain_is_validated_centrally(server, ca, settings, tmp_path):
    for emaid in ("DEPEMGOOD0001", "DEPEMREVOKED1", "DEPEMEXPIRED1"):
        await token(server, emaid)
    good = ca.contract("DEPEMGOOD0001")
    revoked = ca.contract("DEPEMREVOKED1", revoked=x509.ReasonFlags.key_compromise)
    expired = ca.contract("DEPEMEXPIRED1", expired=True)
    other = TestCa(ca.base_url, name="Other")  # a chain of another, untrusted PKI
    stranger = other.contract("DEPEMGOOD0001")
    lookalike = TestCa(ca.base_url)  # same names as the trusted one, other keys
    settings(trust_anchors=ca.write_anchor(tmp_path / "root.pem"))
    async with station(server, "PKI-C07P", "2.0.1") as cp:

        async def authorize(emaid: str, chain: str) -> tuple[str, str]:
            r = await cp.call(call201.Authorize(id_token={"id_token": emaid, "type": "eMAID"}, certificate=chain))
            return r.id_token_info["status"], r.certificate_status

        before = ca.requests
        assert await authorize("DEPEMGOOD0001", pem(good, ca.sub)) == ("Accepted", "Accepted")
        assert ca.requests == before + 1  # the leaf, from the responder in its AIA
        assert await authorize("DEPEMREVOKED1", pem(revoked, ca.sub)) == ("Invalid", "CertificateRevoked")
        assert await authorize("DEPEMEXPIRED1", pem(expired, ca.sub)) == ("Invalid", "CertificateExpired")
        assert await authorize("DEPEMGOOD0001", pem(stranger, other.sub)) == ("Invalid", "CertChainError")
        assert await authorize("DEPEMGOOD0001", pem(good, other.sub)) == ("Invalid", "CertChainError")
        assert await authorize("DEPEMGOOD0001", pem(good, lookalike.sub)) == ("Invalid", "SignatureError")
        forged = lookalike.contract("DEPEMGOOD0001")
        assert await authorize("DEPEMGOOD0001", pem(forged, lookalike.sub)) == ("Invalid", "SignatureError")
        assert await authorize("DEPEMGOOD0001", "-----BEGIN CERTIFICATE-----\nnope\n") == ("Invalid", "CertChainError")
        # a responder that is down: no status to be had, no charging on a certificate nobody vouched for
        down = ca.contract("DEPEMGOOD0001", ocsp_url=f"http://127.0.0.1:{free_port()}/ocsp")
        assert await authorize("DEPEMGOOD0001", pem(down, ca.sub)) == ("Invalid", "NoCertificateAvailable")
        # an unknown token stays refused whatever its certificate
        r = await cp.call(call201.Authorize(id_token={"id_token": "DEPEMNOBODY01", "type": "eMAID"},
                                            certificate=pem(good, ca.sub)))
        assert r.id_token_info["status"] != "Accepted" and r.certificate_status == "Accepted"


# ---------------------------------------------------------------------------------------------
# M01/M02 Get15118EVCertificate


async def test_ev_certificate_requests_go_to_the_provider(server, settings):
    provider = Provider(token="s3cret")
    port = free_port()
    async with asgi_server(provider.app(), port):
        settings(provider_url=f"http://127.0.0.1:{port}/v1/certificates", provider_token="s3cret",
                 provider_timeout="2")
        async with station(server, "PKI-M01", "2.0.1") as cp:
            exi = base64.b64encode(b"CertificateInstallationReq").decode()
            for action in ("Install", "Update"):
                r = await cp.call(call201.Get15118EVCertificate(iso15118_schema_version=SCHEMA, action=action,
                                                                exi_request=exi))
                assert r.status == "Accepted", r
                assert base64.b64decode(r.exi_response) == f"EXI-RESPONSE:{action}:".encode() + b"CertificateInstallationReq"
            assert provider.seen[0] == {"schemaVersion": SCHEMA, "action": "Install", "exiRequest": exi,
                                        "stationId": "PKI-M01"}
            r = await cp.call(call201.Get15118EVCertificate(iso15118_schema_version=SCHEMA, action="Install",
                                                            exi_request=base64.b64encode(b"REFUSE").decode()))
            assert r.status == "Failed" and r.status_info["reason_code"] == "ProviderFailed"
            settings(provider_token="wrong")
            r = await cp.call(call201.Get15118EVCertificate(iso15118_schema_version=SCHEMA, action="Install",
                                                            exi_request=exi))
            assert r.status == "Failed" and r.status_info["reason_code"] == "ProviderError"
            assert "401" in r.status_info["additional_info"]
            settings(provider_url=f"http://127.0.0.1:{port}/v1/garbage")
            r = await cp.call(call201.Get15118EVCertificate(iso15118_schema_version=SCHEMA, action="Install",
                                                            exi_request=exi))
            assert r.status == "Failed" and r.status_info["reason_code"] == "ProviderError"
            settings(provider_url=f"http://127.0.0.1:{port}/v1/slow", provider_timeout="1")
            r = await cp.call(call201.Get15118EVCertificate(iso15118_schema_version=SCHEMA, action="Install",
                                                            exi_request=exi))
            assert r.status == "Failed" and r.status_info["reason_code"] == "ProviderTimeout"
    # the provider is down
    settings(provider_url=f"http://127.0.0.1:{port}/v1/certificates")
    async with station(server, "PKI-M01D", "2.0.1") as cp:
        r = await cp.call(call201.Get15118EVCertificate(iso15118_schema_version=SCHEMA, action="Install",
                                                        exi_request=exi))
        assert r.status == "Failed" and r.status_info["reason_code"] == "ProviderUnreachable"


@asynccontextmanager
async def mtls_server(app: Any, port: int, directory: Path, ca: trustme.CA) -> AsyncIterator[None]:
    """``app`` over HTTPS on 127.0.0.1:``port``, a client certificate of ``ca`` required."""
    import uvicorn

    server_pem, ca_pem = directory / "server.pem", directory / "ca.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                           ssl_certfile=str(server_pem), ssl_ca_certs=str(ca_pem),
                                           ssl_cert_reqs=ssl.CERT_REQUIRED, timeout_graceful_shutdown=1))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        await stopped(task)


async def test_the_provider_over_mutual_tls(server, settings, tmp_path):
    tls_ca = trustme.CA()
    client = tls_ca.issue_cert("csms.example")
    cert, key, ca_file = tmp_path / "client.pem", tmp_path / "client.key", tmp_path / "ca.pem"
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    tls_ca.cert_pem.write_to_path(str(ca_file))
    provider, port = Provider(token="t"), free_port()
    exi = base64.b64encode(b"CertificateUpdateReq").decode()
    async with mtls_server(provider.app(), port, tmp_path, tls_ca):
        async with station(server, "PKI-MTLS", "2.0.1") as cp:
            settings(provider_url=f"https://127.0.0.1:{port}/v1/certificates", provider_token="t",
                     provider_ca_file=str(ca_file), provider_client_cert=str(cert), provider_client_key=str(key))
            r = await cp.call(call201.Get15118EVCertificate(iso15118_schema_version=SCHEMA, action="Update",
                                                            exi_request=exi))
            assert r.status == "Accepted" and len(provider.seen) == 1
            settings(provider_client_cert="", provider_client_key="")  # no client certificate: refused
            r = await cp.call(call201.Get15118EVCertificate(iso15118_schema_version=SCHEMA, action="Update",
                                                            exi_request=exi))
            assert r.status == "Failed" and r.status_info["reason_code"] == "ProviderUnreachable"
            settings(provider_client_cert=str(tmp_path / "missing.pem"))
            r = await cp.call(call201.Get15118EVCertificate(iso15118_schema_version=SCHEMA, action="Update",
                                                            exi_request=exi))
            assert r.status == "Failed" and r.status_info["reason_code"] == "ProviderTLS"
    assert len(provider.seen) == 1


# ---------------------------------------------------------------------------------------------
# 2.1 GetCertificateChainStatus


class Station21(ChargePoint21):
    pass


@asynccontextmanager
async def station21(srv: Any, station_id: str) -> AsyncIterator[Station21]:
    async with websockets.connect(srv.ws_url(station_id), subprotocols=["ocpp2.1"]) as ws:
        cp = Station21(station_id, ws)
        task = asyncio.create_task(cp.start())
        try:
            r = await cp.call(call21.BootNotification(charging_station={"model": "M", "vendor_name": "V"},
                                                      reason="PowerUp"))
            assert r.status == "Accepted"
            yield cp
        finally:
            task.cancel()


async def test_certificate_chain_status_over_ocsp_and_crl_and_authorize_on_21(server, ca):
    good = ca.contract("DECHAINGOOD01")
    revoked = ca.contract("DECHAINREVOK1", revoked=x509.ReasonFlags.key_compromise)
    unknown = ca.contract("DECHAINUNKNO1", known=False)

    def request(cert: x509.Certificate, source: str, urls: list[str]) -> dict[str, Any]:
        data = snake(hash_data(cert, ca.sub))
        return {"certificate_hash_data": data, "source": source, "urls": urls}

    async with station21(server, "PKI-21") as cp:
        r = await cp.call(call21.GetCertificateChainStatus(certificate_status_requests=[
            request(good, "OCSP", [ca.ocsp_url]), request(revoked, "OCSP", [ca.ocsp_url]),
            request(unknown, "OCSP", [ca.ocsp_url])]))
        assert [s["status"] for s in r.certificate_status] == ["Good", "Revoked", "Unknown"]
        next_update = datetime.fromisoformat(r.certificate_status[0]["next_update"].replace("Z", "+00:00"))
        assert abs(next_update - (datetime.now(timezone.utc) + ca.next_update)) < timedelta(minutes=1)
        crl = [ca.base_url + "/crl"]
        r = await cp.call(call21.GetCertificateChainStatus(certificate_status_requests=[
            request(good, "CRL", crl), request(revoked, "CRL", crl),
            request(ca.contract("DECHAINDOWN01"), "OCSP", [f"http://127.0.0.1:{free_port()}/ocsp"])]))
        assert [s["status"] for s in r.certificate_status] == ["Good", "Revoked", "Failed"]
        assert ca.crl_requests == 1  # the CRL is kept until its nextUpdate
        # an answer is kept until its nextUpdate: asked again (wherever), the responder is not
        before = ca.requests
        r = await cp.call(call21.GetCertificateChainStatus(certificate_status_requests=[
            request(good, "OCSP", [f"http://127.0.0.1:{free_port()}/ocsp"])]))
        assert r.certificate_status[0]["status"] == "Good" and ca.requests == before
        # Plug & Charge on 2.1: the same Authorize, checked against the 2.1 schema
        await token(server, "DECHAINGOOD01")
        r = await cp.call(call21.Authorize(id_token={"id_token": "DECHAINGOOD01", "type": "eMAID"},
                                           certificate=pem(good, ca.sub)))
        assert (r.id_token_info["status"], r.certificate_status) == ("Accepted", "Accepted")
        r = await cp.call(call21.Authorize(id_token={"id_token": "DECHAINGOOD01", "type": "eMAID"},
                                           certificate=pem(revoked, ca.sub)))
        assert (r.id_token_info["status"], r.certificate_status) == ("Invalid", "CertificateRevoked")



# ---------------------------------------------------------------------------------------------
# the plugin off: the core answers as before


@pytest.fixture
def plugin_off() -> Iterator[None]:
    plugin = pm.get_plugin("pki")
    assert plugin is not None, "the pki plugin is installed (make installs every plugin)"
    pm.unregister(name="pki")
    try:
        yield
    finally:
        pm.register(plugin, name="pki")


async def test_a_crl_not_signed_by_the_issuer_is_not_used(server, ca, settings, tmp_path):
    anchors = tmp_path / "anchors.pem"
    anchors.write_text(pem(ca.root, ca.sub))
    settings(trust_anchors=str(anchors))
    revoked = ca.contract("DECRLFORGED01", revoked=x509.ReasonFlags.key_compromise)
    data = snake(hash_data(revoked, ca.sub))
    async with station21(server, "PKI-21CRL") as cp:
        r = await cp.call(call21.GetCertificateChainStatus(certificate_status_requests=[
            {"certificate_hash_data": data, "source": "CRL", "urls": [ca.base_url + "/crl/forged"]},
            {"certificate_hash_data": data, "source": "CRL", "urls": [ca.base_url + "/crl/forged", ca.base_url + "/crl"]}]))
        assert [s["status"] for s in r.certificate_status] == ["Failed", "Revoked"]


async def test_with_the_plugin_off_the_core_answers_failed(server, ca, settings, plugin_off):
    assert not any(i.plugin_name == "pki" for i in hook_impls("check_certificate_status"))
    settings(provider_url="http://127.0.0.1:9/v1/certificates")
    await token(server, "DEOFFTOKEN001")
    cert = ca.contract("DEOFFTOKEN001", revoked=x509.ReasonFlags.key_compromise)
    async with station(server, "PKI-OFF", "2.0.1") as cp:
        r = await cp.call(call201.GetCertificateStatus(ocsp_request_data=snake(hash_data(cert, ca.sub, ca.ocsp_url))))
        assert r.status == "Failed" and r.status_info["reason_code"] == "NoOCSPResponder"
        r = await cp.call(call201.Get15118EVCertificate(iso15118_schema_version=SCHEMA, action="Install",
                                                        exi_request="RVhJ"))
        assert r.status == "Failed" and r.status_info["reason_code"] == "NoProvider"
        r = await cp.call(call201.Authorize(id_token={"id_token": "DEOFFTOKEN001", "type": "eMAID"},
                                            iso15118_certificate_hash_data=[snake(hash_data(cert, ca.sub, ca.ocsp_url))]))
        assert r.id_token_info["status"] == "Accepted" and r.certificate_status is None
    assert ca.requests == 0
