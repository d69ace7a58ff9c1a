"""The CA certificates the plugin trusts (``CSMS_PKI_TRUST_ANCHORS``: V2G root, MO roots, their
sub-CAs), read once per list of files, and the OCSP issuer hashes that find one of them."""

from __future__ import annotations

import asyncio
import logging
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

log = logging.getLogger("csms.pki")

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"SHA256": hashes.SHA256, "SHA384": hashes.SHA384,
                                                  "SHA512": hashes.SHA512}


def issuer_hashes(issuer: x509.Certificate, algorithm: str) -> tuple[bytes, bytes]:
    """(issuerNameHash, issuerKeyHash) of the certificates ``issuer`` signed, as RFC 6960 has
    them: the hash of its subject name and of its subjectPublicKey bits."""
    # a request about the issuer itself: its key hash is the issuer's (its name hash would be
    # the hash of the issuer's own issuer, so that one is computed here)
    request = ocsp.OCSPRequestBuilder().add_certificate(issuer, issuer, _HASHES[algorithm]()).build()
    name_digest = hashes.Hash(_HASHES[algorithm]())
    name_digest.update(issuer.subject.public_bytes())
    return name_digest.finalize(), request.issuer_key_hash


class TrustAnchors:
    def __init__(self, certificates: list[x509.Certificate]) -> None:
        self.certificates = certificates

    def __bool__(self) -> bool:
        return bool(self.certificates)

    def issuer_by_hashes(self, algorithm: str, name_hash: bytes, key_hash: bytes) -> x509.Certificate | None:
        for cert in self.certificates:
            if issuer_hashes(cert, algorithm) == (name_hash, key_hash):
                return cert
        return None

    def issuers_of(self, cert: x509.Certificate) -> list[x509.Certificate]:
        return [c for c in self.certificates if c.subject == cert.issuer]

    def contains(self, cert: x509.Certificate) -> bool:
        return any(c == cert for c in self.certificates)


@lru_cache(maxsize=4)
def _read(paths: tuple[str, ...]) -> TrustAnchors:
    certificates: list[x509.Certificate] = []
    for path in paths:
        try:
            certificates += x509.load_pem_x509_certificates(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            log.error("trust anchor file %s is not read: %s", path, exc)
    return TrustAnchors(certificates)


async def trust_anchors(paths: tuple[str, ...]) -> TrustAnchors:
    """The certificates in the PEM files ``paths``, read (off the event loop) once."""
    if not paths:
        return TrustAnchors([])
    return await asyncio.to_thread(_read, paths)
