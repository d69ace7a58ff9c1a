"""An OCSP client (RFC 6960) for the hash data OCPP carries: the request built with
``cryptography``'s ``OCSPRequestBuilder``, POSTed (``application/ocsp-request``) with ``httpx``,
the answer checked (successful, for the certificate asked about, current, and signed by the
issuer or a responder it delegated to whenever the issuer's certificate is known) and kept until
its nextUpdate in a bounded cache."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from plugins.pki.anchors import issuer_hashes
from plugins.pki.config import PkiSettings
from plugins.pki.tls import default_tls

log = logging.getLogger("csms.pki.ocsp")

HASHES: dict[str, type[hashes.HashAlgorithm]] = {"SHA256": hashes.SHA256, "SHA384": hashes.SHA384,
                                                 "SHA512": hashes.SHA512}
SKEW = timedelta(minutes=5)  # clock difference allowed between us and a responder
MAX_RESPONSE_BYTES = 64 * 1024
STATUSES = {ocsp.OCSPCertStatus.GOOD: "Good", ocsp.OCSPCertStatus.REVOKED: "Revoked",
            ocsp.OCSPCertStatus.UNKNOWN: "Unknown"}


class OcspError(Exception):
    """No usable OCSP answer: ``reason`` is the StatusInfo reasonCode (at most 20 characters)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class CertId:
    """The certificate an OCSP request asks about: OCPP's OCSPRequestData / CertificateHashData."""

    algorithm: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int

    @classmethod
    def from_hash_data(cls, data: dict[str, Any]) -> CertId:
        algorithm = str(data.get("hashAlgorithm", ""))
        if algorithm not in HASHES:
            raise OcspError("InvalidHashData", f"hash algorithm {algorithm!r} is not SHA256, SHA384 or SHA512")
        size = HASHES[algorithm]().digest_size
        try:
            name_hash = bytes.fromhex(str(data["issuerNameHash"]))
            key_hash = bytes.fromhex(str(data["issuerKeyHash"]))
            serial = int(str(data["serialNumber"]), 16)
        except (KeyError, ValueError):
            raise OcspError("InvalidHashData", "issuerNameHash, issuerKeyHash and serialNumber must be hex") from None
        if len(name_hash) != size or len(key_hash) != size:
            raise OcspError("InvalidHashData", f"the issuer hashes are not {algorithm} digests")
        return cls(algorithm, name_hash, key_hash, serial)

    @classmethod
    def of(cls, cert: x509.Certificate, issuer: x509.Certificate, algorithm: str = "SHA256") -> CertId:
        name_hash, key_hash = issuer_hashes(issuer, algorithm)
        return cls(algorithm, name_hash, key_hash, cert.serial_number)

    def request_der(self) -> bytes:
        request = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
            self.issuer_name_hash, self.issuer_key_hash, self.serial, HASHES[self.algorithm]()).build()
        return request.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class OcspAnswer:
    """A checked answer: the whole DER OCSPResponse and what it says about the certificate."""

    der: bytes
    status: str  # Good | Revoked | Unknown
    this_update: datetime
    next_update: datetime | None
    revocation_reason: x509.ReasonFlags | None = None
    verified: bool = False  # its signature was checked against the issuer


def check_response(der: bytes, cert_id: CertId, issuer: x509.Certificate | None, *, verify: bool,
                   now: datetime | None = None) -> OcspAnswer:
    """The answer about ``cert_id`` in the DER OCSPResponse ``der``, or :class:`OcspError`."""
    now = now or datetime.now(timezone.utc)
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        raise OcspError("OCSPResponseError", f"not an OCSP response: {exc}") from None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise OcspError("OCSPResponseError", f"the responder answered {response.response_status.name}")
    single = None
    try:
        for candidate in response.responses:
            same = candidate.serial_number == cert_id.serial
            if same and candidate.hash_algorithm.name.upper() == cert_id.algorithm:
                same = (candidate.issuer_name_hash, candidate.issuer_key_hash) == (
                    cert_id.issuer_name_hash, cert_id.issuer_key_hash)
            if same:
                single = candidate
                break
    except ValueError as exc:
        raise OcspError("OCSPResponseError", f"the OCSP response does not parse: {exc}") from None
    if single is None:
        raise OcspError("OCSPResponseError", "the OCSP response is not about the certificate asked for")
    if single.this_update_utc > now + SKEW:
        raise OcspError("OCSPResponseError", "the OCSP response is from the future")
    if single.next_update_utc is not None and single.next_update_utc < now - SKEW:
        raise OcspError("OCSPResponseError", "the OCSP response is out of date (nextUpdate passed)")
    verified = False
    if verify and issuer is not None:
        verify_signature(response, issuer)
        verified = True
    reason = single.revocation_reason if single.certificate_status == ocsp.OCSPCertStatus.REVOKED else None
    return OcspAnswer(der, STATUSES[single.certificate_status], single.this_update_utc, single.next_update_utc,
                      reason, verified)


def verify_signature(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> None:
    """The response is signed by ``issuer`` itself or by a responder certificate (in the
    response) that ``issuer`` signed for OCSP signing (RFC 6960 4.2.2.2); else OcspError."""
    signer = _signer(response, issuer)
    if signer is None:
        raise OcspError("OCSPSignature", "the OCSP response is not signed by the issuer or a responder it named")
    if signer.public_key() != issuer.public_key():
        try:
            signer.verify_directly_issued_by(issuer)
            usages = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (InvalidSignature, ValueError, TypeError, x509.ExtensionNotFound):
            raise OcspError("OCSPSignature", "the OCSP responder's certificate is not the issuer's") from None
        if ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
            raise OcspError("OCSPSignature", "the OCSP responder's certificate is not for OCSP signing")
        now = datetime.now(timezone.utc)
        if not signer.not_valid_before_utc - SKEW <= now <= signer.not_valid_after_utc + SKEW:
            raise OcspError("OCSPSignature", "the OCSP responder's certificate is not valid now")
    try:
        _verify(signer.public_key(), response.signature, response.tbs_response_bytes,
                response.signature_hash_algorithm)
    except (InvalidSignature, ValueError, TypeError):
        raise OcspError("OCSPSignature", "the OCSP response's signature is wrong") from None


def _signer(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> x509.Certificate | None:
    for cert in (issuer, *response.certificates):
        if response.responder_name is not None and cert.subject == response.responder_name:
            return cert
        key_hash = response.responder_key_hash
        if key_hash is not None and x509.SubjectKeyIdentifier.from_public_key(
                cert.public_key()).digest == key_hash:
            return cert
    return None


def _verify(key: Any, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None) -> None:
    if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
        key.verify(signature, data, padding.PKCS1v15(), algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
        key.verify(signature, data, ec.ECDSA(algorithm))
    elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        key.verify(signature, data)
    elif isinstance(key, dsa.DSAPublicKey) and algorithm is not None:
        key.verify(signature, data, algorithm)
    else:
        raise TypeError(f"no way to check a signature with {type(key).__name__}")


class OcspCache:
    """Checked answers per certificate until their nextUpdate (at most ``max_age``), the least
    recently used dropped past ``size``; answers without a nextUpdate are not kept."""

    def __init__(self, size: int, max_age: float) -> None:
        self.size, self.max_age = size, max_age
        self._entries: OrderedDict[tuple[Any, ...], tuple[datetime, OcspAnswer]] = OrderedDict()

    @staticmethod
    def key(cert_id: CertId) -> tuple[Any, ...]:
        return (cert_id.algorithm, cert_id.issuer_name_hash, cert_id.issuer_key_hash, cert_id.serial)

    def get(self, cert_id: CertId, now: datetime) -> OcspAnswer | None:
        key = self.key(cert_id)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, cert_id: CertId, answer: OcspAnswer, now: datetime) -> None:
        if self.size <= 0 or answer.next_update is None:
            return
        until = min(answer.next_update, now + timedelta(seconds=self.max_age))
        if until <= now:
            return
        key = self.key(cert_id)
        self._entries[key] = (until, answer)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class OcspClient:
    """Asks responders about certificates; the settings say where, how long, what is trusted."""

    def __init__(self, settings: PkiSettings) -> None:
        self.settings = settings
        self.cache = OcspCache(settings.ocsp_cache_size, settings.ocsp_cache_max_age)
        self._inflight: dict[tuple[Any, ...], asyncio.Future[OcspAnswer]] = {}

    def responder(self, url: str | None) -> str:
        chosen = self.settings.ocsp_responder_url or (url or "").strip()
        if not chosen:
            raise OcspError("NoOCSPResponder", "no OCSP responder URL: none sent, none in the certificate, none set")
        if not chosen.lower().startswith(("http://", "https://")):
            raise OcspError("NoOCSPResponder", f"the OCSP responder URL {chosen[:200]!r} is not http(s)")
        return chosen

    async def status(self, cert_id: CertId, url: str | None, issuer: x509.Certificate | None = None) -> OcspAnswer:
        """The checked answer about ``cert_id`` (from the cache while current); concurrent asks
        about the same certificate share one request."""
        now = datetime.now(timezone.utc)
        cached = self.cache.get(cert_id, now)
        if cached is not None and (cached.verified or issuer is None or not self.settings.verify_ocsp_signatures):
            return cached
        where = self.responder(url)
        key = (*OcspCache.key(cert_id), where, issuer is not None)
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[OcspAnswer] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            answer = await self._ask(cert_id, where, issuer)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a future nobody else awaited does not warn
            raise
        else:
            future.set_result(answer)
            self.cache.put(cert_id, answer, datetime.now(timezone.utc))
            return answer
        finally:
            del self._inflight[key]

    async def _ask(self, cert_id: CertId, url: str, issuer: x509.Certificate | None) -> OcspAnswer:
        try:
            async with httpx.AsyncClient(timeout=self.settings.ocsp_timeout, follow_redirects=True,
                                         verify=await default_tls()) as client:
                async with client.stream("POST", url, content=cert_id.request_der(),
                                         headers={"Content-Type": "application/ocsp-request",
                                                  "Accept": "application/ocsp-response"}) as reply:
                    if reply.status_code != 200:
                        raise OcspError("OCSPResponseError", f"the OCSP responder answered HTTP {reply.status_code}")
                    body = bytearray()
                    async for chunk in reply.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_RESPONSE_BYTES:
                            raise OcspError("OCSPResponseError", "the OCSP response is too long")
        except httpx.TimeoutException:
            raise OcspError("OCSPTimeout", f"the OCSP responder did not answer within {self.settings.ocsp_timeout:g} s") \
                from None
        except httpx.HTTPError as exc:
            raise OcspError("OCSPUnreachable", f"the OCSP responder could not be reached: {exc}"[:500]) from None
        answer = check_response(bytes(body), cert_id, issuer, verify=self.settings.verify_ocsp_signatures)
        log.info("OCSP %s serial %x: %s", url, cert_id.serial, answer.status)
        return answer
