"""A test contract-certificate PKI for the suite's C07 cases (TC_C_50, TC_C_51, TC_C_52).

The suite's own hash data (``certs/iso15118_cert_hash_data.json``) name a responder at
localhost:19080 that it does not ship, with base64 hashes where OCPP's CertificateHashDataType
carries hexadecimal, and its contract certificate is self-signed with no OCSP responder. So the
run makes its own: a test mobility-operator CA, a contract certificate it signs (eMAID as
commonName, the responder in its Authority Information Access) and a revoked one, the hash
data files of both, and an OCSP responder (RFC 6960, signed by the CA) that answers Good for
the first and Revoked for the second. The CSMS's ``pki`` plugin is pointed at the CA with
``CSMS_PKI_TRUST_ANCHORS``; the suite's files are replaced through its pytest.ini variables.
"""

from __future__ import annotations

import datetime as dt
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
        return {"ISO15118_CERT_HASH_DATA_FILE": str(self.directory / "hash_data.json"),
                "ISO15118_REVOKED_CERT_HASH_DATA_FILE": str(self.directory / "revoked_hash_data.json"),
                "CONTRACT_CERT_FILE": str(self.directory / "contract_chain.pem"),
                "CONTRACT_CERT_EMAID": EMAID}

    def answer(self, der: bytes) -> bytes:
        request = ocsp.load_der_ocsp_request(der)
        known = {c.serial_number: c for c in (self.valid, self.revoked)}
        cert = known.get(request.serial_number)
        if cert is None:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(
                serialization.Encoding.DER)
        now = dt.datetime.now(dt.timezone.utc)
        revoked = cert.serial_number in self.revoked_serials
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=cert, issuer=self.ca, algorithm=request.hash_algorithm,
            cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
            this_update=now - dt.timedelta(minutes=1), next_update=now + dt.timedelta(hours=1),
            revocation_time=now - dt.timedelta(days=1) if revoked else None,
            revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
        ).responder_id(ocsp.OCSPResponderEncoding.HASH, self.ca)
        return builder.sign(self.ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def serve(self) -> ThreadingHTTPServer:
        pki = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
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
