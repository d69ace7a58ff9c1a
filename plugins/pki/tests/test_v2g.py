"""V2G (SECC) certificates signed with a CPO sub-CA (A02/A03 SignCertificate of type
V2GCertificate): a test V2G PKI (root → CPO sub-CA 1 → CPO sub-CA 2, made with ``cryptography``),
a station over a real WebSocket that asks and receives its certificate, the chain checked up to
the test root; CSRs that do not suit; and the core's answer without the sub-CA."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ocpp.routing import on
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from csms.testing import running_server
from csms.testing.stations import Station201, station
from plugins.pki import v2g
from plugins.pki.config import PkiSettings, pki_settings

PEM = serialization.Encoding.PEM
CPO = "Test CPO"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, CPO)])


def _ca(subject: str, key: Any, issuer: x509.Certificate | None, issuer_key: Any, days: int = 365) -> x509.Certificate:
    now = datetime.now(timezone.utc)
    return (x509.CertificateBuilder().subject_name(_name(subject))
            .issuer_name(issuer.subject if issuer else _name(subject)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(issuer_key, hashes.SHA256()))


class V2gPki:
    """A test V2G root, CPO sub-CA 1 under it and CPO sub-CA 2 (the signing one) under that."""

    def __init__(self, directory: Path) -> None:
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = _ca("V2G Root CA", self.root_key, None, self.root_key)
        sub1_key = ec.generate_private_key(ec.SECP256R1())
        self.sub1 = _ca("CPO Sub-CA 1", sub1_key, self.root, self.root_key)
        self.sub2_key = ec.generate_private_key(ec.SECP256R1())
        self.sub2 = _ca("CPO Sub-CA 2", self.sub2_key, self.sub1, sub1_key, days=30)
        directory.mkdir(parents=True, exist_ok=True)
        self.cert_file, self.key_file, self.chain_file = (directory / n for n in ("sub2.pem", "sub2.key", "chain.pem"))
        self.cert_file.write_bytes(self.sub2.public_bytes(PEM))
        self.key_file.write_bytes(self.sub2_key.private_bytes(PEM, serialization.PrivateFormat.PKCS8,
                                                              serialization.NoEncryption()))
        self.chain_file.write_bytes(self.sub1.public_bytes(PEM) + self.root.public_bytes(PEM))

    def settings(self, **more: str) -> dict[str, str]:
        return {"v2g_signing_cert": str(self.cert_file), "v2g_signing_key": str(self.key_file),
                "v2g_signing_chain": str(self.chain_file), **more}


def csr(common_name: str | None = "DE*TST*E1*1", organization: str | None = CPO, key: Any = None) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    names = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
    if organization:
        names.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    request = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names)).sign(key, hashes.SHA256())
    return request.public_bytes(PEM).decode()


def tampered(csr_pem: str) -> str:
    """The CSR with one byte of its signature changed: it parses, its signature is wrong."""
    der = bytearray(x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{base64.encodebytes(bytes(der)).decode()}" \
           "-----END CERTIFICATE REQUEST-----\n"


def verify_to_root(chain_pem: str, root: x509.Certificate) -> list[x509.Certificate]:
    """Each certificate of the chain signed by the next, the last one by ``root``; all current."""
    chain = x509.load_pem_x509_certificates(chain_pem.encode())
    now = datetime.now(timezone.utc)
    for child, parent in zip(chain, [*chain[1:], root]):
        assert child.issuer == parent.subject
        child.verify_directly_issued_by(parent)  # raises InvalidSignature when not
        assert child.not_valid_before_utc <= now <= child.not_valid_after_utc
    return chain


class V2gStation(Station201):
    """Answers CertificateSigned (kept in ``signed``) and TriggerMessage."""

    def setup(self, firmware_version: str) -> None:
        super().setup(firmware_version)
        self.signed: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue()
        self.triggered: list[str] = []

    @on(Action201.certificate_signed)
    async def on_certificate_signed(self, certificate_chain, certificate_type=None, **kwargs):
        self.signed.put_nowait((certificate_chain, certificate_type))
        return result201.CertificateSigned(status="Accepted")

    @on(Action201.trigger_message)
    async def on_trigger(self, requested_message, **kwargs):
        self.triggered.append(requested_message)
        return result201.TriggerMessage(status="Accepted")


@pytest.fixture
def settings(monkeypatch) -> Iterator[Any]:
    def set_(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"CSMS_PKI_{name.upper()}", value)
        pki_settings.cache_clear()

    yield set_
    pki_settings.cache_clear()


@pytest.fixture
async def server(tmp_path) -> AsyncIterator[Any]:
    async with running_server(tmp_path / "srv", unknown_stations="accept") as srv:
        yield srv


async def events(srv: Any, station_id: str) -> list[dict[str, Any]]:
    await srv.core.writer.flush()
    r = await srv.api.get(f"/stations/{station_id}/events", params={"category": "certificate"})
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def test_a_v2g_csr_is_signed_by_the_cpo_sub_ca_and_the_chain_leads_to_the_v2g_root(server, settings, tmp_path):
    pki = V2gPki(tmp_path / "v2g")
    settings(**pki.settings(v2g_organization=CPO, v2g_validity_days="10"))
    async with station(server, "SECC-1", "2.0.1", cls=V2gStation) as cp:
        key = ec.generate_private_key(ec.SECP256R1())
        request = csr("DE*TST*E1*1", key=key)
        answer = await cp.call(call201.SignCertificate(csr=request, certificate_type="V2GCertificate"))
        assert answer.status == "Accepted"
        chain_pem, certificate_type = await asyncio.wait_for(cp.signed.get(), 10)
        assert certificate_type == "V2GCertificate"
        chain = verify_to_root(chain_pem, pki.root)
        assert [c.subject for c in chain[1:]] == [pki.sub2.subject, pki.sub1.subject]  # the root is left out
        leaf = chain[0]
        assert leaf.subject == x509.load_pem_x509_csr(request.encode()).subject
        assert leaf.public_key().public_numbers() == key.public_key().public_numbers()
        assert isinstance(leaf.signature_hash_algorithm, hashes.SHA256)
        assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical and usage.value.digital_signature and usage.value.key_agreement
        assert not usage.value.key_cert_sign
        assert timedelta(days=9) < leaf.not_valid_after_utc - datetime.now(timezone.utc) <= timedelta(days=10)

        # a station certificate is still the built-in CA's
        station_csr = csr("SECC-1", organization=None)
        answer = await cp.call(call201.SignCertificate(csr=station_csr, certificate_type="ChargingStationCertificate"))
        assert answer.status == "Accepted"
        chain_pem, certificate_type = await asyncio.wait_for(cp.signed.get(), 10)
        assert certificate_type == "ChargingStationCertificate"
        assert x509.load_pem_x509_certificates(chain_pem.encode())[0].issuer not in (pki.sub2.subject, pki.sub1.subject)

        # a CSR whose signature is wrong is Rejected at once
        answer = await cp.call(call201.SignCertificate(csr=tampered(csr()), certificate_type="V2GCertificate"))
        assert answer.status == "Rejected" and answer.status_info["reason_code"] == "InvalidCSR"

        # one of another organization is not signed: nothing is sent, the event log says so
        answer = await cp.call(call201.SignCertificate(csr=csr(organization="Other CPO"),
                                                       certificate_type="V2GCertificate"))
        assert answer.status == "Accepted"  # the core's checks pass; the plugin refuses to sign
        for _ in range(100):
            kinds = [(e["kind"], (e.get("details") or {}).get("status")) for e in await events(server, "SECC-1")]
            if ("CertificateSigned", "NotIssued") in kinds:
                break
            await asyncio.sleep(0.05)
        assert ("CertificateSigned", "NotIssued") in kinds
        assert cp.signed.empty()

        # the renewal trigger of a V2G certificate (TriggerMessage SignV2GCertificate)
        r = await server.api.post("/stations/SECC-1/certificates/renew", json={"certificate_type": "V2GCertificate"})
        assert r.status_code == 201 and r.json()["status"] == "Accepted", r.text
        assert cp.triggered == ["SignV2GCertificate"]


async def test_without_the_sub_ca_v2g_csrs_are_rejected(server, settings, tmp_path):
    settings(v2g_signing_cert="", v2g_signing_key="")
    async with station(server, "SECC-2", "2.0.1", cls=V2gStation) as cp:
        answer = await cp.call(call201.SignCertificate(csr=csr(), certificate_type="V2GCertificate"))
        assert answer.status == "Rejected" and answer.status_info["reason_code"] == "InvalidCSR"


@pytest.mark.parametrize(("request_pem", "problem"), [
    (lambda: csr(key=ec.generate_private_key(ec.SECP384R1())), "secp256r1"),
    (lambda: csr(common_name=None), "commonName"),
    (lambda: csr(organization="Other CPO"), "organizationName"),
    (lambda: tampered(csr()), "signature"),
    (lambda: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", "parse"),
])
def test_csrs_that_do_not_suit_an_secc_certificate_are_not_signed(tmp_path, request_pem, problem):
    pki = V2gPki(tmp_path)
    settings = PkiSettings(**pki.settings(v2g_organization=CPO))
    with pytest.raises(v2g.V2gProblem, match=problem):
        v2g.sign(settings, request_pem())
    verify_to_root(v2g.sign(settings, csr()), pki.root)  # the same settings sign a good one


def test_a_sub_ca_that_cannot_sign_is_refused(tmp_path):
    pki = V2gPki(tmp_path)
    other = tmp_path / "other.key"
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(v2g.V2gProblem, match="does not belong"):
        v2g.sign(PkiSettings(**pki.settings(v2g_signing_key=str(other))), csr())
    with pytest.raises(v2g.V2gProblem, match="cannot be read"):
        v2g.sign(PkiSettings(**pki.settings(v2g_signing_cert=str(tmp_path / "missing.pem"))), csr())
    leaf = x509.load_pem_x509_certificates(v2g.sign(PkiSettings(**pki.settings()), csr()).encode())[0]
    leaf_file = tmp_path / "leaf.pem"
    leaf_file.write_bytes(leaf.public_bytes(PEM))
    with pytest.raises(v2g.V2gProblem):  # not a CA (and not the key's certificate)
        v2g.sign(PkiSettings(**pki.settings(v2g_signing_cert=str(leaf_file))), csr())
