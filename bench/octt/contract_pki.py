"""A test contract-certificate PKI for the suite's C07 cases (TC_C_50, TC_C_51, TC_C_52).

The suite's own hash data (``certs/iso15118_cert_hash_data.json``) name a responder at
localhost:19080 that it does not ship, with base64 hashes where OCPP's CertificateHashDataType
carries hexadecimal, and its contract certificate is self-signed with no OCSP responder. So the
run makes its own: a test mobility-operator CA, a contract certificate it signs (eMAID as
commonName, the responder in its Authority Information Access) and a revoked one, the hash
data files of both, and an OCSP responder (RFC 6960, signed by the CA) that answers Good for
the first and Revoked for the second. The CSMS's ``pki`` plugin is pointed at the CA with
``CSMS_PKI_TRUST_ANCHORS``; the suite's files are replaced through its pytest.ini variables.

The rest of the suite's ISO 15118 cases need the other parties of a V2G PKI, made here too:

* TC_A_12 (SignCertificate of a V2GCertificate): a test V2G root and a CPO sub-CA under it; the
  ``pki`` plugin signs the station's SECC certificate with the sub-CA
  (``CSMS_PKI_V2G_SIGNING_CERT`` / ``_KEY`` / ``_CHAIN``).
* TC_M_24 (GetCertificateStatus): the suite's ``ocspRequestData`` names made-up issuer hashes
  and a responder at ocsp.example.com. The CSMS is pointed at this responder for every OCSP
  request (``CSMS_PKI_OCSP_RESPONDER_URL``, the product setting for a pinned responder), and the
  responder answers ``unknown`` for a certificate it did not issue (RFC 6960 2.2: "the responder
  doesn't know about the certificate being requested"), signed with the test CA's key; the CSMS
  relays that response as it is bound to (M06.FR.02), the station decides what unknown means.
* TC_M_26, TC_M_28 (Get15118EVCertificate): a **test double of a contract certificate provider**
  (a Hubject-style CPS adapter), as the responder is one of an OCSP service: ``POST
  /v1/certificates`` speaking the ``pki`` plugin's provider JSON contract
  (plugins/pki/README.md), checking it (bearer token, schemaVersion, action, base64 exiRequest,
  stationId) and answering ``Accepted``. There is no EXI codec here, and the suite's exiRequest is
  not EXI either (the base64 of the text "testEXIRequestData"), so the double cannot build a real
  CertificateInstallationRes / CertificateUpdateRes: its ``exiResponse`` is a stand-in, the DER of
  the test contract certificate chain. What the two cases check of the CSMS, that it forwards the
  request to its provider and relays the provider's answer, is real.
"""

from __future__ import annotations

import datetime as dt
import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

EMAID = "DE-TZI-C12345-A"
PROVIDER_TOKEN = "octt-provider-token"
SCHEMA_VERSIONS = ("urn:iso:15118:2:2013:MsgDef", "urn:iso:15118:20:2022:MsgDef")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OCTT test PKI")])


class TestPki:
    def __init__(self, directory: Path, port: int) -> None:
        self.directory, self.port = directory, port
        self.url = f"http://127.0.0.1:{port}/ocsp"
        now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = (x509.CertificateBuilder().subject_name(_name("OCTT MO Root CA")).issuer_name(_name("OCTT MO Root CA"))
                   .public_key(self.ca_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(now + dt.timedelta(days=30))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                  critical=True)
                   .sign(self.ca_key, hashes.SHA256()))
        self.valid = self._leaf(EMAID, now)
        self.revoked = self._leaf("DE-TZI-C99999-R", now)
        self.revoked_serials = {self.revoked.serial_number}
        # the V2G PKI: root -> CPO sub-CA, whose key signs the stations' SECC certificates
        self.v2g_root_key = ec.generate_private_key(ec.SECP256R1())
        self.v2g_root = self._ca("OCTT V2G Root CA", self.v2g_root_key, None, self.v2g_root_key, now)
        self.cpo_key = ec.generate_private_key(ec.SECP256R1())
        self.cpo = self._ca("OCTT CPO Sub-CA", self.cpo_key, self.v2g_root, self.v2g_root_key, now)
        self.provider_seen: list[dict[str, str]] = []

    @staticmethod
    def _ca(common_name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
            issuer_key: ec.EllipticCurvePrivateKey, now: dt.datetime) -> x509.Certificate:
        return (x509.CertificateBuilder().subject_name(_name(common_name))
                .issuer_name(issuer.subject if issuer else _name(common_name))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(now + dt.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                               critical=True)
                .sign(issuer_key, hashes.SHA256()))

    def _leaf(self, emaid: str, now: dt.datetime) -> x509.Certificate:
        key = ec.generate_private_key(ec.SECP256R1())
        aia = x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(self.url))])
        return (x509.CertificateBuilder().subject_name(_name(emaid)).issuer_name(self.ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(now + dt.timedelta(days=30))
                .add_extension(aia, critical=False).sign(self.ca_key, hashes.SHA256()))

    def hash_data(self, cert: x509.Certificate) -> dict[str, str]:
        """OCPP CertificateHashDataType (+ responderURL) of ``cert``: SHA-256, hexadecimal."""
        key_bits = self.ca.public_key().public_bytes(serialization.Encoding.X962,
                                                     serialization.PublicFormat.UncompressedPoint)
        return {"hash_algorithm": "SHA256",
                "issuer_name_hash": hashlib.sha256(self.ca.subject.public_bytes()).hexdigest(),
                "issuer_key_hash": hashlib.sha256(key_bits).hexdigest(),
                "serial_number": format(cert.serial_number, "x"),
                "responder_url": self.url}

    def write(self) -> dict[str, str]:
        """Write the files; the pytest.ini variables that name them."""
        self.directory.mkdir(parents=True, exist_ok=True)
        pem = serialization.Encoding.PEM
        (self.directory / "mo_root.pem").write_bytes(self.ca.public_bytes(pem))
        (self.directory / "contract_chain.pem").write_bytes(self.valid.public_bytes(pem) + self.ca.public_bytes(pem))
        (self.directory / "hash_data.json").write_text(json.dumps([self.hash_data(self.valid)]))
        (self.directory / "revoked_hash_data.json").write_text(json.dumps([self.hash_data(self.revoked)]))
        (self.directory / "v2g_root.pem").write_bytes(self.v2g_root.public_bytes(pem))
        (self.directory / "cpo_sub_ca.pem").write_bytes(self.cpo.public_bytes(pem))
        (self.directory / "cpo_sub_ca.key").write_bytes(self.cpo_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        (self.directory / "cpo_sub_ca.key").chmod(0o600)
        return {"ISO15118_CERT_HASH_DATA_FILE": str(self.directory / "hash_data.json"),
                "ISO15118_REVOKED_CERT_HASH_DATA_FILE": str(self.directory / "revoked_hash_data.json"),
                "CONTRACT_CERT_FILE": str(self.directory / "contract_chain.pem"),
                "CONTRACT_CERT_EMAID": EMAID}

    def server_env(self) -> dict[str, str]:
        """The CSMS's settings that point its ``pki`` plugin at this test PKI."""
        return {
            "CSMS_PKI_TRUST_ANCHORS": f"{self.directory / 'mo_root.pem'},{self.directory / 'v2g_root.pem'}",
            "CSMS_PKI_OCSP_RESPONDER_URL": self.url,
            "CSMS_PKI_V2G_SIGNING_CERT": str(self.directory / "cpo_sub_ca.pem"),
            "CSMS_PKI_V2G_SIGNING_KEY": str(self.directory / "cpo_sub_ca.key"),
            "CSMS_PKI_V2G_SIGNING_CHAIN": str(self.directory / "v2g_root.pem"),
            "CSMS_PKI_PROVIDER_URL": f"http://127.0.0.1:{self.port}/v1/certificates",
            "CSMS_PKI_PROVIDER_TOKEN": PROVIDER_TOKEN,
        }

    def answer(self, der: bytes) -> bytes:
        request = ocsp.load_der_ocsp_request(der)
        known = {c.serial_number: c for c in (self.valid, self.revoked)}
        cert = known.get(request.serial_number)
        now = dt.datetime.now(dt.timezone.utc)
        if cert is None or request.issuer_key_hash != self._key_hash(request.hash_algorithm):
            # not one of ours: unknown (RFC 6960 2.2), about exactly the certificate asked for
            unknown = ocsp.OCSPResponseBuilder().add_response_by_hash(
                issuer_name_hash=request.issuer_name_hash, issuer_key_hash=request.issuer_key_hash,
                serial_number=request.serial_number, algorithm=request.hash_algorithm,
                cert_status=ocsp.OCSPCertStatus.UNKNOWN, this_update=now - dt.timedelta(minutes=1),
                next_update=now + dt.timedelta(hours=1), revocation_time=None, revocation_reason=None,
            ).responder_id(ocsp.OCSPResponderEncoding.HASH, self.ca)
            return unknown.sign(self.ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        revoked = cert.serial_number in self.revoked_serials
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=cert, issuer=self.ca, algorithm=request.hash_algorithm,
            cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
            this_update=now - dt.timedelta(minutes=1), next_update=now + dt.timedelta(hours=1),
            revocation_time=now - dt.timedelta(days=1) if revoked else None,
            revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
        ).responder_id(ocsp.OCSPResponderEncoding.HASH, self.ca)
        return builder.sign(self.ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def _key_hash(self, algorithm: hashes.HashAlgorithm) -> bytes:
        digest = hashes.Hash(algorithm)
        digest.update(self.ca.public_key().public_bytes(serialization.Encoding.X962,
                                                        serialization.PublicFormat.UncompressedPoint))
        return digest.finalize()

    def provider(self, authorization: str, body: bytes) -> tuple[int, dict[str, str]]:
        """The contract certificate provider double: the ``pki`` plugin's JSON contract checked,
        Accepted with a stand-in exiResponse (no EXI codec here; see the module's text)."""
        if authorization != f"Bearer {PROVIDER_TOKEN}":
            return 401, {"error": "bearer token missing or wrong"}
        try:
            request = json.loads(body)
            base64.b64decode(request["exiRequest"], validate=True)
        except (ValueError, KeyError, TypeError):
            return 400, {"error": "not the provider JSON (exiRequest base64)"}
        if request.get("schemaVersion") not in SCHEMA_VERSIONS or request.get("action") not in ("Install", "Update") \
                or not request.get("stationId") or not request["exiRequest"]:
            return 400, {"error": "schemaVersion, action, stationId or exiRequest missing or unknown"}
        self.provider_seen.append(request)
        stand_in = self.valid.public_bytes(serialization.Encoding.DER) + self.ca.public_bytes(serialization.Encoding.DER)
        return 200, {"status": "Accepted", "exiResponse": base64.b64encode(stand_in).decode()}

    def serve(self) -> ThreadingHTTPServer:
        pki = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/v1/certificates":
                    status, reply = pki.provider(self.headers.get("Authorization", ""), body)
                    data = json.dumps(reply).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                try:
                    answer, status = pki.answer(body), 200
                except ValueError:
                    answer, status = b"not an OCSP request", 400
                self.send_response(status)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server
