"""The real peers the PKI plugin is tested against: a test CA (root → sub-CA → contract
certificates, made with ``cryptography``), its OCSP responder and CRL served over HTTP, and a
contract certificate provider."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from litestar import Litestar, Request, Response, get, post

HOUR = timedelta(hours=1)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test MO")])


def _cert(subject: str, key: Any, issuer: x509.Certificate | None, issuer_key: Any, *, ca: bool,
          ocsp_url: str | None = None, not_after: datetime | None = None, ocsp_signing: bool = False,
          ) -> x509.Certificate:
    now = datetime.now(timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject))
               .issuer_name(issuer.subject if issuer else _name(subject)).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - HOUR)
               .not_valid_after(not_after or now + timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ocsp_url:
        builder = builder.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]), critical=False)
    if ocsp_signing:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def pem(*certs: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def hash_data(cert: x509.Certificate, issuer: x509.Certificate, url: str | None = None) -> dict[str, str]:
    """OCPP's OCSPRequestData of ``cert`` (camelCase, as on the wire)."""
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
    data = {"hashAlgorithm": "SHA256", "issuerNameHash": request.issuer_name_hash.hex(),
            "issuerKeyHash": request.issuer_key_hash.hex(), "serialNumber": format(cert.serial_number, "x")}
    if url is not None:
        data["responderURL"] = url
    return data


def snake(data: dict[str, str]) -> dict[str, str]:
    """The same for the ``ocpp`` library's calls (it turns the keys back into camelCase)."""
    names = {"hashAlgorithm": "hash_algorithm", "issuerNameHash": "issuer_name_hash",
             "issuerKeyHash": "issuer_key_hash", "serialNumber": "serial_number", "responderURL": "responder_url"}
    return {names[k]: v for k, v in data.items()}


@dataclass
class TestCa:
    __test__ = False  # not a test class
    """Root → sub-CA → contract certificates; the responder answers for the sub-CA's (signed by
    the sub-CA) and for the sub-CA (signed by the root)."""

    base_url: str
    root_key: Any = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    sub_key: Any = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    revoked: dict[int, x509.ReasonFlags] = field(default_factory=dict)
    requests: int = 0
    crl_requests: int = 0
    next_update: timedelta = HOUR
    name: str = "Test"

    def __post_init__(self) -> None:
        self.root = _cert(f"{self.name} V2G Root", self.root_key, None, self.root_key, ca=True)
        self.sub = _cert(f"{self.name} MO Sub-CA", self.sub_key, self.root, self.root_key, ca=True)
        self.issued: dict[int, x509.Certificate] = {}

    @property
    def ocsp_url(self) -> str:
        return f"{self.base_url}/ocsp"

    def contract(self, emaid: str, *, revoked: x509.ReasonFlags | None = None, expired: bool = False,
                 ocsp_url: str | None = None, known: bool = True) -> x509.Certificate:
        key = ec.generate_private_key(ec.SECP256R1())
        not_after = datetime.now(timezone.utc) - timedelta(minutes=30) if expired else None
        cert = _cert(emaid, key, self.sub, self.sub_key, ca=False, ocsp_url=ocsp_url or self.ocsp_url,
                     not_after=not_after)
        if known:
            self.issued[cert.serial_number] = cert
        if revoked is not None:
            self.revoked[cert.serial_number] = revoked
        return cert

    def write_anchor(self, path: Path) -> str:
        path.write_text(pem(self.root))
        return str(path)

    def ocsp_response(self, request_der: bytes, *, signer: str = "issuer") -> bytes:
        request = ocsp.load_der_ocsp_request(request_der)
        now = datetime.now(timezone.utc)
        serial = request.serial_number
        builder = ocsp.OCSPResponseBuilder()
        signing_ca, signing_key = self.sub, self.sub_key
        if serial == self.sub.serial_number:  # the root's responder answers for the sub-CA
            signing_ca, signing_key = self.root, self.root_key
            builder = builder.add_response(
                cert=self.sub, issuer=self.root, algorithm=hashes.SHA256(), cert_status=ocsp.OCSPCertStatus.GOOD,
                this_update=now - timedelta(minutes=1), next_update=now + self.next_update,
                revocation_time=None, revocation_reason=None)
        elif serial in self.issued:
            reason = self.revoked.get(serial)
            builder = builder.add_response(
                cert=self.issued[serial], issuer=self.sub, algorithm=hashes.SHA256(),
                cert_status=ocsp.OCSPCertStatus.REVOKED if reason else ocsp.OCSPCertStatus.GOOD,
                this_update=now - timedelta(minutes=1), next_update=now + self.next_update,
                revocation_time=now - HOUR if reason else None, revocation_reason=reason)
        else:
            builder = builder.add_response_by_hash(
                issuer_name_hash=request.issuer_name_hash, issuer_key_hash=request.issuer_key_hash,
                serial_number=serial, algorithm=hashes.SHA256(), cert_status=ocsp.OCSPCertStatus.UNKNOWN,
                this_update=now - timedelta(minutes=1), next_update=now + self.next_update,
                revocation_time=None, revocation_reason=None)
        if signer == "issuer":
            builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, signing_ca)
            return builder.sign(signing_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        if signer == "delegate":
            key = ec.generate_private_key(ec.SECP256R1())
            responder = _cert("Test MO OCSP", key, self.sub, self.sub_key, ca=False, ocsp_signing=True)
            builder = builder.responder_id(ocsp.OCSPResponderEncoding.NAME, responder).certificates([responder])
            return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        # a stranger signs: well formed, the wrong key
        key = ec.generate_private_key(ec.SECP256R1())
        stranger = _cert("Test MO Sub-CA", key, None, key, ca=True)
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.NAME, stranger).certificates([stranger])
        return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def crl_der(self, *, forged: bool = False) -> bytes:
        """The sub-CA's CRL; ``forged``: the same list signed by a stranger's key."""
        now = datetime.now(timezone.utc)
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.sub.subject)
                   .last_update(now - timedelta(minutes=1)).next_update(now + HOUR))
        for serial in self.revoked:
            builder = builder.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                                      .revocation_date(now - HOUR).build())
        key = ec.generate_private_key(ec.SECP256R1()) if forged else self.sub_key
        return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def app(self) -> Litestar:
        """/ocsp (signed by the sub-CA), /ocsp/delegated (by a responder it certified),
        /ocsp/forged (by a stranger), /ocsp/broken (not OCSP), /ocsp/unauthorized (an
        unsuccessful OCSP status), /ocsp/slow (answers after 3 s), /crl, /crl/forged (signed by a
        stranger)."""
        ca = self

        def reply(der: bytes) -> Response[bytes]:
            return Response(der, media_type="application/ocsp-response")

        @post("/ocsp", status_code=200)
        async def responder(request: Request) -> Response[bytes]:
            ca.requests += 1
            return reply(ca.ocsp_response(await request.body()))

        @post("/ocsp/delegated", status_code=200)
        async def delegated(request: Request) -> Response[bytes]:
            ca.requests += 1
            return reply(ca.ocsp_response(await request.body(), signer="delegate"))

        @post("/ocsp/forged", status_code=200)
        async def forged(request: Request) -> Response[bytes]:
            ca.requests += 1
            return reply(ca.ocsp_response(await request.body(), signer="stranger"))

        @post("/ocsp/broken", status_code=200)
        async def broken(request: Request) -> Response[bytes]:
            ca.requests += 1
            return reply(b"\x30\x03\x0a\x01")

        @post("/ocsp/unauthorized", status_code=200)
        async def unauthorized(request: Request) -> Response[bytes]:
            ca.requests += 1
            return reply(ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
                         .public_bytes(serialization.Encoding.DER))

        @post("/ocsp/slow", status_code=200)
        async def slow(request: Request) -> Response[bytes]:
            ca.requests += 1
            await asyncio.sleep(3)
            return reply(ca.ocsp_response(await request.body()))

        @get("/crl")
        async def crl() -> Response[bytes]:
            ca.crl_requests += 1
            return Response(ca.crl_der(), media_type="application/pkix-crl")

        @get("/crl/forged")
        async def forged_crl() -> Response[bytes]:
            ca.crl_requests += 1
            return Response(ca.crl_der(forged=True), media_type="application/pkix-crl")

        return Litestar([responder, delegated, forged, broken, unauthorized, slow, crl, forged_crl])


@dataclass
class Provider:
    """A contract certificate provider: checks the bearer token, answers the EXI request with
    an EXI response derived from it (or Failed for an EXI request it refuses)."""

    token: str
    seen: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Litestar:
        provider = self

        @post("/v1/certificates", status_code=200)
        async def certificates(request: Request) -> Response[dict[str, Any]]:
            if request.headers.get("authorization") != f"Bearer {provider.token}":
                return Response({"error": "unauthorized"}, status_code=401)
            body = await request.json()
            provider.seen.append(body)
            exi = base64.b64decode(body["exiRequest"])
            if exi == b"REFUSE":
                return Response({"status": "Failed", "exiResponse": "", "reason": "contract unknown"})
            answer = base64.b64encode(b"EXI-RESPONSE:" + body["action"].encode() + b":" + exi).decode()
            return Response({"status": "Accepted", "exiResponse": answer})

        @post("/v1/slow", status_code=200)
        async def slow(request: Request) -> Response[dict[str, Any]]:
            await asyncio.sleep(3)
            return Response({"status": "Accepted", "exiResponse": "RVhJ"})

        @post("/v1/garbage", status_code=200)
        async def garbage(request: Request) -> Response[str]:
            return Response("<html>gateway</html>", media_type="text/html")

        return Litestar([certificates, slow, garbage])
