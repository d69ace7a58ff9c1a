"""Station certificates: the built-in CA, SignCertificate → CertificateSigned in both versions,
CSR checks, the PKI hooks, certificate management over REST, and a station onboarded to security
profile 3 with the certificate the CSMS issued."""

from __future__ import annotations

import asyncio
import json
import ssl
import stat
from pathlib import Path
from typing import Any

import pytest
import trustme
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from ocpp.routing import on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from csms.core.certificates import CertificateAuthority, CsrProblem, check_csr, hash_data
from csms.plugins import hookimpl, pm
from csms.settings import CertificateSettings
from csms.testing import running_server
from tests.stations import Station16, Station201
from tests.test_ocpp_rpc_strict import create_token, node_station, strict_station  # noqa: F401 (node_station: a fixture)

TS = "2026-01-01T00:00:00Z"
ROOT_TYPES_16 = {"CentralSystemRootCertificate": "CSMSRootCertificate"}


# ---------------------------------------------------------------------------------------------
# CSRs and the station side


def make_csr(common_name: str, *, organization: str | None = None,
             key: Any = None) -> tuple[Any, str]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    names = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        names.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names)).sign(key, hashes.SHA256())
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


def tampered(csr_pem: str) -> str:
    """The CSR with one byte of its signature changed: it parses, its signature is wrong."""
    der = bytearray(x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01
    import base64

    body = base64.encodebytes(bytes(der)).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"


def root_pem(name: str = "Test Root") -> str:
    return trustme.CA(organization_unit_name=name).cert_pem.bytes().decode()


class CertStore:
    """The certificates a test station holds, and the chains the CSMS signed for it."""

    def __init__(self) -> None:
        self.signed: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue()
        self.installed: dict[str, tuple[str, dict[str, str]]] = {}  # serial → (type, hash data)
        self.triggered: list[str] = []
        self.key: Any = None

    def install(self, certificate_type: str, certificate: str) -> None:
        cert = x509.load_pem_x509_certificate(certificate.encode())
        data = hash_data(cert)
        assert data is not None
        self.installed[data["serialNumber"]] = (certificate_type, data)

    def delete(self, serial: str) -> bool:
        return self.installed.pop(serial, None) is not None


def snake(data: dict[str, str]) -> dict[str, str]:
    return {"hash_algorithm": data["hashAlgorithm"], "issuer_name_hash": data["issuerNameHash"],
            "issuer_key_hash": data["issuerKeyHash"], "serial_number": data["serialNumber"]}


class CertStation201(Station201):
    store: CertStore

    @on(Action201.certificate_signed)
    async def on_certificate_signed(self, certificate_chain, certificate_type=None, **kwargs):
        self.store.signed.put_nowait((certificate_chain, certificate_type))
        return result201.CertificateSigned(status="Accepted")

    @on(Action201.install_certificate)
    async def on_install_certificate(self, certificate_type, certificate, **kwargs):
        self.store.install(certificate_type, certificate)
        return result201.InstallCertificate(status="Accepted")

    @on(Action201.get_installed_certificate_ids)
    async def on_get_installed(self, certificate_type=None, **kwargs):
        chains = [{"certificate_type": t, "certificate_hash_data": snake(d)}
                  for t, d in self.store.installed.values() if not certificate_type or t in certificate_type]
        if not chains:
            return result201.GetInstalledCertificateIds(status="NotFound")
        return result201.GetInstalledCertificateIds(status="Accepted", certificate_hash_data_chain=chains)

    @on(Action201.delete_certificate)
    async def on_delete_certificate(self, certificate_hash_data, **kwargs):
        found = self.store.delete(certificate_hash_data["serial_number"])
        return result201.DeleteCertificate(status="Accepted" if found else "NotFound")

    @on(Action201.trigger_message)
    async def on_trigger(self, requested_message, **kwargs):
        self.store.triggered.append(requested_message)
        if requested_message == "SignChargingStationCertificate":
            asyncio.get_running_loop().call_later(0.1, lambda: asyncio.ensure_future(self.send_csr()))
        return result201.TriggerMessage(status="Accepted")

    async def send_csr(self, csr: str | None = None) -> str:
        if csr is None:
            self.store.key, csr = make_csr(self.id)
        answer = await self.call(call201.SignCertificate(csr=csr, certificate_type="ChargingStationCertificate"))
        return answer.status


class CertStation16(Station16):
    store: CertStore

    @on(Action16.certificate_signed)
    async def on_certificate_signed(self, certificate_chain, **kwargs):
        self.store.signed.put_nowait((certificate_chain, None))
        return result16.CertificateSigned(status="Accepted")

    @on(Action16.install_certificate)
    async def on_install_certificate(self, certificate_type, certificate, **kwargs):
        self.store.install(certificate_type, certificate)
        return result16.InstallCertificate(status="Accepted")

    @on(Action16.get_installed_certificate_ids)
    async def on_get_installed(self, certificate_type, **kwargs):
        found = [snake(d) for t, d in self.store.installed.values() if t == certificate_type]
        if not found:
            return result16.GetInstalledCertificateIds(status="NotFound")
        return result16.GetInstalledCertificateIds(status="Accepted", certificate_hash_data=found)

    @on(Action16.delete_certificate)
    async def on_delete_certificate(self, certificate_hash_data, **kwargs):
        found = self.store.delete(certificate_hash_data["serial_number"])
        return result16.DeleteCertificate(status="Accepted" if found else "NotFound")

    @on(Action16.extended_trigger_message)
    async def on_trigger(self, requested_message, **kwargs):
        self.store.triggered.append(requested_message)
        if requested_message == "SignChargePointCertificate":
            asyncio.get_running_loop().call_later(0.1, lambda: asyncio.ensure_future(self.send_csr()))
        return result16.ExtendedTriggerMessage(status="Accepted")

    async def send_csr(self, csr: str | None = None) -> str:
        if csr is None:
            self.store.key, csr = make_csr(self.id)
        answer = await self.call(call16.SignCertificate(csr=csr))
        return answer.status


class Connected:
    """A station of ``version`` connected to ``url`` with its receive loop running."""

    def __init__(self, url: str, station_id: str, version: str, *, ssl_context: ssl.SSLContext | None = None,
                 ) -> None:
        self.url, self.station_id, self.version, self.ssl = url, station_id, version, ssl_context
        self.store = CertStore()

    async def __aenter__(self) -> CertStation16 | CertStation201:
        subprotocol = "ocpp2.0.1" if self.version == "2.0.1" else "ocpp1.6"
        self.ws = await websockets.connect(self.url, subprotocols=[subprotocol], ssl=self.ssl)
        cls = CertStation201 if self.version == "2.0.1" else CertStation16
        cp = cls(self.station_id, self.ws)
        cp.store = self.store
        self.task = asyncio.create_task(cp.start())
        if self.version == "2.0.1":
            answer = await cp.call(call201.BootNotification(
                charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"))
        else:
            answer = await cp.call(call16.BootNotification(charge_point_model="M", charge_point_vendor="V"))
        assert answer.status == "Accepted"
        return cp

    async def __aexit__(self, *exc: Any) -> None:
        self.task.cancel()
        await self.ws.close()


def ca_of(srv: Any) -> CertificateAuthority:
    return CertificateAuthority(srv.core.settings.data_dir / "ca")


def verify_chain(chain: str, authority: CertificateAuthority, station_id: str) -> x509.Certificate:
    certs = x509.load_pem_x509_certificates(chain.encode())
    leaf = certs[0]
    leaf.verify_directly_issued_by(authority.certificate())
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == station_id
    return leaf


async def events_of(srv: Any, station_id: str) -> list[dict[str, Any]]:
    await srv.core.writer.flush()
    r = await srv.api.get(f"/stations/{station_id}/events", params={"category": "certificate"})
    assert r.status_code == 200, r.text
    return r.json()["items"]


# ---------------------------------------------------------------------------------------------
# the CA at rest


def test_ca_is_made_on_first_use_key_private_and_rotation_keeps_verifying(tmp_path):
    authority = CertificateAuthority(tmp_path / "ca", CertificateSettings(ca_name="Test CA"))
    assert not authority.exists()
    first = authority.certificate()
    assert authority.exists()
    assert stat.S_IMODE(authority.key_path.stat().st_mode) == 0o600
    assert isinstance(first.public_key(), ec.EllipticCurvePublicKey)
    assert first.public_key().curve.name == "secp256r1"
    assert first.extensions.get_extension_for_class(x509.BasicConstraints).value.ca

    _, csr = make_csr("CP-1")
    old_leaf = x509.load_pem_x509_certificates(authority.sign(check_csr(csr, station_id="CP-1")).encode())[0]
    second = authority.rotate()
    assert second.serial_number != first.serial_number
    assert stat.S_IMODE(authority.key_path.stat().st_mode) == 0o600
    trusted = x509.load_pem_x509_certificates(authority.trust_path.read_bytes())
    assert [c.serial_number for c in trusted] == [second.serial_number, first.serial_number]
    # the certificate the old CA signed still verifies against the trust bundle; new ones use the new CA
    old_leaf.verify_directly_issued_by(trusted[1])
    new_leaf = x509.load_pem_x509_certificates(authority.sign(check_csr(csr, station_id="CP-1")).encode())[0]
    new_leaf.verify_directly_issued_by(second)
    assert not list((tmp_path / "ca" / "retired").glob("*.key"))


def test_rsa_ca_and_csr_checks(tmp_path):
    authority = CertificateAuthority(tmp_path / "ca", CertificateSettings(ca_key_type="rsa", ca_validity_days=30))
    assert isinstance(authority.certificate().public_key(), rsa.RSAPublicKey)
    _, good = make_csr("CP-2", organization="ACME")
    leaf = x509.load_pem_x509_certificates(authority.sign(check_csr(good, station_id="CP-2",
                                                                    organization="ACME")).encode())[0]
    # never beyond the CA's own validity
    assert leaf.not_valid_after_utc <= authority.certificate().not_valid_after_utc
    problems = {
        "wrong CN": lambda: check_csr(make_csr("OTHER")[1], station_id="CP-2"),
        "wrong O": lambda: check_csr(good, station_id="CP-2", organization="EVIL"),
        "garbage": lambda: check_csr("not a csr at all", station_id="CP-2"),
        "signature": lambda: check_csr(tampered(good), station_id="CP-2"),
        "small RSA": lambda: check_csr(make_csr("CP-2", key=rsa.generate_private_key(65537, 1024))[1],
                                       station_id="CP-2"),
        "curve": lambda: check_csr(make_csr("CP-2", key=ec.generate_private_key(ec.SECP256K1()))[1],
                                   station_id="CP-2"),
    }
    for what, attempt in problems.items():
        with pytest.raises(CsrProblem):
            attempt()
            pytest.fail(what)


# ---------------------------------------------------------------------------------------------
# SignCertificate → CertificateSigned


async def accepted_listing(srv, station_id: str) -> list[dict]:
    """The certificates issued to the station, once the station's answer to CertificateSigned is
    stored (it arrives just after the station got the chain)."""
    for _ in range(100):
        listing = await srv.api.get(f"/stations/{station_id}/certificates", params={"ask_station": "false"})
        assert listing.status_code == 200, listing.text
        issued = listing.json()["issued"]
        if issued and issued[0]["status"] != "Pending":
            return issued
        await asyncio.sleep(0.1)
    raise AssertionError(f"no answer to CertificateSigned stored: {issued}")


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_csr_is_signed_and_sent_back(tmp_path, version):
    async with running_server(tmp_path, unknown_stations="accept") as srv:
        station_id = f"CERT-{version}"
        async with Connected(srv.ws_url(station_id), station_id, version) as cp:
            assert await cp.send_csr() == "Accepted"
            chain, certificate_type = await asyncio.wait_for(cp.store.signed.get(), 10)
            leaf = verify_chain(chain, ca_of(srv), station_id)
            assert leaf.public_key().public_numbers() == cp.store.key.public_key().public_numbers()
            if version == "2.0.1":
                assert certificate_type == "ChargingStationCertificate"
            issued = await accepted_listing(srv, station_id)
            assert [(i["serial"], i["status"], i["issued_by"]) for i in issued] == \
                [(format(leaf.serial_number, "X"), "Accepted", "csms.core.certificates")]
            assert issued[0]["subject"] == f"CN={station_id}" and not issued[0]["expiring"]
            assert issued[0]["hash_data"]["serialNumber"] == format(leaf.serial_number, "x")
        kinds = [(e["kind"], e["details"].get("status")) for e in await events_of(srv, station_id)]
        assert ("SignCertificate", "Accepted") in kinds and ("CertificateSigned", "Accepted") in kinds
        assert await srv.core.certificates.expiring(within_days=400) and not await srv.core.certificates.expiring()


async def test_an_expiring_certificate_is_flagged_and_reported_at_boot(tmp_path, monkeypatch):
    monkeypatch.setenv("CSMS_CERTIFICATES_CERTIFICATE_VALIDITY_DAYS", "20")
    async with running_server(tmp_path, unknown_stations="accept") as srv:
        async with Connected(srv.ws_url("EXP-1"), "EXP-1", "2.0.1") as cp:
            assert not await srv.core.certificates.check_expiry("EXP-1")  # nothing issued yet
            assert await cp.send_csr() == "Accepted"
            await asyncio.wait_for(cp.store.signed.get(), 10)
            issued = await accepted_listing(srv, "EXP-1")
        assert issued[0]["expiring"] and not issued[0]["expired"]
        async with Connected(srv.ws_url("EXP-1"), "EXP-1", "2.0.1") as cp:  # the next boot reports it
            for _ in range(50):
                expiring = [e for e in await events_of(srv, "EXP-1") if e["kind"] == "expiring"]
                if expiring and cp.store.triggered:
                    break
                await asyncio.sleep(0.1)
            # and asks the station to renew it (auto_renew), once a day at most
            assert cp.store.triggered == ["SignChargingStationCertificate"]
            assert await srv.core.certificates.renew_expiring(await srv.core.certificates.expiring()) == 0
        assert expiring and expiring[0]["details"]["serial"] == issued[0]["serial"], expiring


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_bad_csrs_are_rejected_with_the_reason(tmp_path, monkeypatch, version):
    monkeypatch.setenv("CSMS_CERTIFICATES_ORGANIZATION", "ACME")
    async with running_server(tmp_path, unknown_stations="accept") as srv:
        station_id = f"BAD-{version}"
        _, good = make_csr(station_id, organization="ACME")
        bad = {
            "commonName": make_csr("SOMEONE-ELSE", organization="ACME")[1],
            "signature": tampered(good),
            "does not parse": "-----BEGIN CERTIFICATE REQUEST-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE REQUEST-----",
            "organizationName": make_csr(station_id, organization="OTHER")[1],
        }
        async with Connected(srv.ws_url(station_id), station_id, version) as cp:
            for csr in bad.values():
                assert await cp.send_csr(csr) == "Rejected"
            assert await cp.send_csr(good) == "Accepted"
            chain, _ = await asyncio.wait_for(cp.store.signed.get(), 10)
            verify_chain(chain, ca_of(srv), station_id)
            await asyncio.sleep(0.2)
            assert cp.store.signed.empty()  # only the good CSR was signed
        rejected = [e for e in await events_of(srv, station_id)
                    if e["kind"] == "SignCertificate" and e["details"].get("status") == "Rejected"]
        reasons = " | ".join(e["details"]["reason"] for e in rejected)
        assert len(rejected) == 4
        for why in bad:
            assert why in reasons, reasons


class PluginPki:
    """An external PKI: signs with a CA of its own."""

    def __init__(self, directory: Path) -> None:
        self.authority = CertificateAuthority(directory, CertificateSettings(ca_name="Plugin PKI"))
        self.asked: list[tuple[str, str]] = []

    @hookimpl
    def issue_certificate(self, station_id, csr_pem, certificate_type):
        self.asked.append((station_id, certificate_type))

        async def sign():
            return self.authority.sign(x509.load_pem_x509_csr(csr_pem.encode()))

        return sign

    @hookimpl
    def check_certificate_status(self, station_id, ocsp_request):
        return "MIIBase64OcspResponse" if ocsp_request["serialNumber"] == "abc" else None

    @hookimpl
    def get_15118_ev_certificate(self, station_id, iso15118_schema_version, action, exi_request):
        return {"status": "Accepted", "exiResponse": f"{action}:{exi_request}"}


@pytest.fixture
def without_shipped_pki():
    """The shipped PKI plugin (plugins/pki, installed by make) out of the way while a test plugin
    answers the hooks: these tests are about the hooks' contract with the core."""
    shipped = pm.get_plugin("pki")
    if shipped is not None:
        pm.unregister(name="pki")
    yield
    if shipped is not None:
        pm.register(shipped, name="pki")


@pytest.fixture
def plugin_pki(tmp_path, without_shipped_pki):
    pki = PluginPki(tmp_path / "plugin-ca")
    pm.register(pki, name="test-pki")
    yield pki
    pm.unregister(name="test-pki")


class ContractChecker:
    """Answers contract_certificate_status: revoked for serial "dead", Accepted for a PEM chain,
    nonsense for serial "odd", no answer for the rest."""

    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []

    @hookimpl
    def contract_certificate_status(self, station_id, id_token, certificate, hash_data):
        self.asked.append({"station_id": station_id, "id_token": id_token, "certificate": certificate,
                           "hash_data": hash_data})
        serials = {h["serialNumber"] for h in hash_data}
        if certificate:
            return "Accepted"
        if "dead" in serials:
            async def revoked():
                return {"status": "CertificateRevoked"}

            return revoked
        return "Fine, really" if "odd" in serials else None


@pytest.fixture
def contract_checker(without_shipped_pki):
    checker = ContractChecker()
    pm.register(checker, name="test-contracts")
    yield checker
    pm.unregister(name="test-contracts")


async def test_authorize_with_a_contract_certificate_asks_the_hook(server, contract_checker):
    """C07: the hook's certificateStatus goes into the AuthorizeResponse; any but Accepted turns
    the accepted token Invalid (and is stored as a refusal); no answer, no certificateStatus."""
    from csms.core.tables import RefusedAuthorization

    await server.api.post("/tokens", json={"id_token": "DEC07EMAID001", "type": "eMAID"})
    token = {"id_token": "DEC07EMAID001", "type": "eMAID"}

    def ocsp(serial: str) -> dict[str, str]:
        return {"hash_algorithm": "SHA256", "issuer_name_hash": "ab" * 32, "issuer_key_hash": "cd" * 32,
                "serial_number": serial, "responder_url": "http://ocsp.example/"}

    async with Connected(server.ws_url("C07-1"), "C07-1", "2.0.1") as cp:
        r = await cp.call(call201.Authorize(id_token=token, iso15118_certificate_hash_data=[ocsp("dead")]))
        assert (r.id_token_info["status"], r.certificate_status) == ("Invalid", "CertificateRevoked")
        assert contract_checker.asked[-1]["hash_data"][0]["serialNumber"] == "dead"
        chain = root_pem()
        r = await cp.call(call201.Authorize(id_token=token, certificate=chain))
        assert (r.id_token_info["status"], r.certificate_status) == ("Accepted", "Accepted")
        assert contract_checker.asked[-1]["certificate"] == chain and contract_checker.asked[-1]["hash_data"] == []
        for serial in ("1f", "odd"):  # no answer; an answer that is no status
            r = await cp.call(call201.Authorize(id_token=token, iso15118_certificate_hash_data=[ocsp(serial)]))
            assert r.id_token_info["status"] == "Accepted" and r.certificate_status is None
        asked = len(contract_checker.asked)
        r = await cp.call(call201.Authorize(id_token=token))  # no certificate: the hook is not asked
        assert r.id_token_info["status"] == "Accepted" and r.certificate_status is None
        assert len(contract_checker.asked) == asked
    await server.core.writer.flush()
    refused = await RefusedAuthorization.select().where(RefusedAuthorization.station_id == "C07-1")
    assert [(row["status"], row["source"]) for row in refused] == [
        ("Invalid", "contract certificate: CertificateRevoked")]


async def test_a_plugin_overrides_the_built_in_ca_and_answers_the_15118_hooks(tmp_path, plugin_pki):
    async with running_server(tmp_path / "srv", unknown_stations="accept") as srv:
        async with Connected(srv.ws_url("PKI-1"), "PKI-1", "2.0.1") as cp:
            assert await cp.send_csr() == "Accepted"
            chain, _ = await asyncio.wait_for(cp.store.signed.get(), 10)
            verify_chain(chain, plugin_pki.authority, "PKI-1")
            assert plugin_pki.asked == [("PKI-1", "ChargingStationCertificate")]
            # a V2G CSR goes to the plugin (its commonName is not the station id)
            _, v2g = make_csr("DE*ABC*E12345")
            answer = await cp.call(call201.SignCertificate(csr=v2g, certificate_type="V2GCertificate"))
            assert answer.status == "Accepted"
            chain, certificate_type = await asyncio.wait_for(cp.store.signed.get(), 10)
            assert certificate_type == "V2GCertificate"
            ocsp = {"hash_algorithm": "SHA256", "issuer_name_hash": "a", "issuer_key_hash": "b",
                    "serial_number": "abc", "responder_url": "http://ocsp.example"}
            status = await cp.call(call201.GetCertificateStatus(ocsp_request_data=ocsp))
            assert (status.status, status.ocsp_result) == ("Accepted", "MIIBase64OcspResponse")
            status = await cp.call(call201.GetCertificateStatus(ocsp_request_data={**ocsp, "serial_number": "x"}))
            assert status.status == "Failed" and status.status_info["reason_code"] == "NoOCSPResponder"
            ev = await cp.call(call201.Get15118EVCertificate(iso15118_schema_version="urn:iso:15118:2:2013:MsgDef",
                                                             action="Install", exi_request="RVhJ"))
            assert (ev.status, ev.exi_response) == ("Accepted", "Install:RVhJ")
        issued = (await srv.api.get("/stations/PKI-1/certificates", params={"ask_station": "false"})).json()["issued"]
        assert {i["issued_by"] for i in issued} == {"plugin"} and len(issued) == 2
        assert not ca_of(srv).exists()  # the built-in CA was never needed


async def test_without_a_pki_plugin_v2g_csrs_and_15118_requests_fail(server):
    async with Connected(server.ws_url("NOPKI"), "NOPKI", "2.0.1") as cp:
        _, v2g = make_csr("DE*ABC*E12345")
        answer = await cp.call(call201.SignCertificate(csr=v2g, certificate_type="V2GCertificate"))
        assert answer.status == "Rejected" and answer.status_info["reason_code"] == "InvalidCSR"
        ev = await cp.call(call201.Get15118EVCertificate(iso15118_schema_version="urn:iso:15118:2:2013:MsgDef",
                                                         action="Install", exi_request="RVhJ"))
        assert ev.status == "Failed" and ev.status_info["reason_code"] == "NoProvider"


# ---------------------------------------------------------------------------------------------
# certificate management over REST


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_install_list_delete_renew_over_rest(server, version):
    station_id = f"MGMT-{version}"
    base = f"/stations/{station_id}/certificates"
    async with Connected(server.ws_url(station_id), station_id, version) as cp:
        root = root_pem()
        r = await server.api.post(base, json={"certificate_type": "CSMSRootCertificate", "certificate": root})
        assert r.status_code == 201, r.text
        installed = r.json()
        assert installed["status"] == "Accepted" and installed["hash_data"]["hashAlgorithm"] == "SHA256"
        sent_type = next(iter(cp.store.installed.values()))[0]
        assert sent_type == ("CentralSystemRootCertificate" if version == "1.6" else "CSMSRootCertificate")

        if version == "1.6":  # a type 1.6 does not have: refused before anything is sent
            r = await server.api.post(base, json={"certificate_type": "V2GRootCertificate", "certificate": root})
            assert r.status_code == 400 and "1.6" in r.text, r.text
        r = await server.api.post(base, json={"certificate_type": "CSMSRootCertificate", "certificate": "nope"})
        assert r.status_code == 400, r.text

        listing = (await server.api.get(base)).json()
        assert listing["installed"]["status"] == "Accepted"
        assert [(c["certificate_type"], c["hash_data"]) for c in listing["installed"]["certificates"]] == \
            [("CSMSRootCertificate", installed["hash_data"])]

        r = await server.api.request("DELETE", base, json={"hash_data": installed["hash_data"]})
        assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text
        assert not cp.store.installed
        r = await server.api.request("DELETE", base, json={"hash_data": installed["hash_data"]})
        assert r.json()["status"] == "NotFound"
        assert (await server.api.get(base)).json()["installed"]["status"] == "NotFound"

        r = await server.api.post(f"{base}/renew")
        assert r.status_code == 201 and r.json()["status"] == "Accepted", r.text
        chain, _ = await asyncio.wait_for(cp.store.signed.get(), 10)
        verify_chain(chain, ca_of(server), station_id)
        assert cp.store.triggered == ["SignChargePointCertificate" if version == "1.6"
                                      else "SignChargingStationCertificate"]
        if version == "1.6":  # the generic trigger asks for the Security extension's messages with ExtendedTriggerMessage
            r = await server.api.post(f"/stations/{station_id}/trigger", json={"message": "LogStatusNotification"})
            assert r.status_code == 201 and r.json()["status"] == "Accepted", r.text
            assert cp.store.triggered[-1] == "LogStatusNotification"
            history = (await server.api.get(f"/stations/{station_id}/commands")).json()["items"]
            assert history[0]["action"] == "ExtendedTriggerMessage"
    # offline: what was issued is still listed
    await asyncio.sleep(0.2)
    listing = (await server.api.get(base)).json()
    assert listing["installed"] is None and listing["installed_error"] == "StationOffline"
    assert len(listing["issued"]) == 1
    r = await server.api.post(f"{base}/renew")
    assert r.status_code == 409
    # the station page of the admin shows the certificate issued
    from tests.admin.conftest import create_users, http_login

    await create_users()
    async with http_login(server.base_url, "viewer") as client:
        page = await client.get(f"/admin/stations/{station_id}")
        assert page.status_code == 200
        assert 'id="certificates"' in page.text and listing["issued"][0]["serial"] in page.text


# ---------------------------------------------------------------------------------------------
# security profile 3 onboarding


async def test_profile_3_onboarding_with_the_issued_certificate(tmp_path):
    """A station with a bootstrap certificate (another CA) asks for a certificate and connects
    with the one the CSMS issued (mutual TLS, trust bundle = bootstrap CA + the built-in CA)."""
    bootstrap = trustme.CA()
    server_cert = bootstrap.issue_cert("127.0.0.1", "localhost")
    server_cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    server_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    authority = CertificateAuthority(tmp_path / "ca")
    authority.ensure()  # `csms ca show` does the same before the server starts
    bundle = tmp_path / "clients.pem"
    bundle.write_bytes(bootstrap.cert_pem.bytes() + authority.trust_path.read_bytes())
    async with running_server(tmp_path, unknown_stations="accept", tls_cert=str(tmp_path / "cert.pem"),
                              tls_key=str(tmp_path / "key.pem"), tls_ca=str(bundle)) as srv:
        first = ssl.create_default_context()
        bootstrap.configure_trust(first)
        bootstrap.issue_cert("SP3-NEW", common_name="SP3-NEW").configure_cert(first)
        async with Connected(srv.ws_url("SP3-NEW"), "SP3-NEW", "2.0.1", ssl_context=first) as cp:
            assert await cp.send_csr() == "Accepted"
            chain, _ = await asyncio.wait_for(cp.store.signed.get(), 10)
            key = cp.store.key
        (tmp_path / "station.pem").write_text(chain)
        (tmp_path / "station.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        issued = ssl.create_default_context()
        bootstrap.configure_trust(issued)
        issued.load_cert_chain(str(tmp_path / "station.pem"), str(tmp_path / "station.key"))
        async with websockets.connect(srv.ws_url("SP3-NEW"), subprotocols=["ocpp2.0.1"], ssl=issued) as ws:
            await ws.send(json.dumps([2, "1", "BootNotification", {
                "reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}]))
            assert json.loads(await ws.recv())[2]["status"] == "Accepted"


# ---------------------------------------------------------------------------------------------
# the calls as an independent strict peer (ocpp-rpc, the official schemas) validates them


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_certificate_calls_pass_a_strict_peers_schema_check(server, node_station, protocol):
    """The strict station implements none of the certificate messages: it answers NotImplemented
    *after* ocpp-rpc validated the CALL against the official schema (an invalid one would get a
    validation error and be reported as a violation)."""
    v16 = protocol == "ocpp1.6"
    sid = "STRICT-CERT16" if v16 else "STRICT-CERT201"
    base = f"/stations/{sid}/certificates"
    await create_token(server, f"{sid[-6:]}-TAG")
    async with strict_station(node_station, server, sid, protocol, token=f"{sid[-6:]}-TAG", linger=120) as st:
        await st.wait_event("lingering", timeout=60)
        root = root_pem()
        sent = {
            "InstallCertificate": ("POST", base, {"certificate_type": "ManufacturerRootCertificate",
                                                  "certificate": root}),
            "DeleteCertificate": ("DELETE", base, {"hash_data": {
                "hashAlgorithm": "SHA256", "issuerNameHash": "ab" * 32, "issuerKeyHash": "cd" * 32,
                "serialNumber": "1f"}}),
            "GetInstalledCertificateIds": ("GET", base, None),
        }
        for action, (method, url, body) in sent.items():
            mark = st.mark()
            r = await server.api.request(method, url, json=body)
            call = await st.wait_event("call", action=action, since=mark)
            assert call.get("unhandled"), call
            if action == "GetInstalledCertificateIds":
                assert r.status_code == 200 and r.json()["installed"] is None, r.text
                assert r.json()["installed_error"].startswith("NotImplemented"), r.text
            else:
                assert r.status_code == 502 and "NotImplemented" in r.text, r.text
        mark = st.mark()
        r = await server.api.post(f"{base}/renew")
        trigger = await st.wait_event("call", action="ExtendedTriggerMessage" if v16 else "TriggerMessage",
                                      since=mark)
        if v16:
            assert trigger["params"] == {"requestedMessage": "SignChargePointCertificate"}
            assert r.status_code == 502, r.text
        else:
            assert trigger["params"] == {"requestedMessage": "SignChargingStationCertificate"}
            assert r.status_code == 201 and r.json()["status"] == "NotImplemented", r.text
        assert not st.errors, st.report()


@pytest.mark.parametrize("protocol", ["ocpp2.0.1", "ocpp2.1"])
async def test_contract_certificate_answers_pass_a_strict_peers_schema_check(server, node_station, protocol,
                                                                           contract_checker):
    """C07 through ocpp-rpc in strict mode: the AuthorizeResponse with its certificateStatus (and
    the answers of the other station-initiated certificate messages) fit the official schemas."""
    sid = "STRICT-C07-21" if protocol == "ocpp2.1" else "STRICT-C07-201"
    await create_token(server, f"{sid}-TAG")
    await create_token(server, "DESTRICTEMAID")
    ocsp = {"hashAlgorithm": "SHA256", "issuerNameHash": "ab" * 32, "issuerKeyHash": "cd" * 32,
            "serialNumber": "dead", "responderURL": "http://ocsp.invalid/"}
    emaid = {"idToken": "DESTRICTEMAID", "type": "eMAID"}
    async with strict_station(node_station, server, sid, protocol, token=f"{sid}-TAG", linger=120) as st:
        await st.wait_event("lingering", timeout=60)
        answer = await st.call("Authorize", {"idToken": emaid, "iso15118CertificateHashData": [ocsp]})
        assert answer["certificateStatus"] == "CertificateRevoked" and answer["idTokenInfo"]["status"] == "Invalid"
        answer = await st.call("Authorize", {"idToken": emaid, "certificate": root_pem()})
        assert answer["certificateStatus"] == "Accepted" and answer["idTokenInfo"]["status"] == "Accepted"
        answer = await st.call("GetCertificateStatus", {"ocspRequestData": ocsp})
        assert answer["status"] == "Failed" and answer["statusInfo"]["reasonCode"] == "NoOCSPResponder"
        answer = await st.call("Get15118EVCertificate", {"iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef",
                                                         "action": "Install", "exiRequest": "RVhJ"})
        assert answer["status"] == "Failed" and answer["statusInfo"]["reasonCode"] == "NoProvider"
        assert not st.errors, st.report()
