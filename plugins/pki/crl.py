"""Certificate revocation lists for 2.1 GetCertificateChainStatus (source CRL): downloaded with
``httpx`` (bounded in size), parsed with ``cryptography`` (DER or PEM), checked against the
issuer when the trust anchors hold it, kept per URL until their nextUpdate."""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from plugins.pki.anchors import TrustAnchors
from plugins.pki.config import PkiSettings
from plugins.pki.tls import default_tls
from plugins.pki.ocsp import HASHES, SKEW, CertId, OcspError

log = logging.getLogger("csms.pki.crl")

MAX_CRL_BYTES = 20 * 1024 * 1024
CACHED_CRLS = 16


@dataclass(frozen=True)
class CrlAnswer:
    status: str  # Good | Revoked
    next_update: datetime | None


class CrlClient:
    def __init__(self, settings: PkiSettings) -> None:
        self.settings = settings
        self._crls: OrderedDict[str, x509.CertificateRevocationList] = OrderedDict()

    async def status(self, cert_id: CertId, urls: list[str], anchors: TrustAnchors) -> CrlAnswer:
        """Whether the CRL at the first of ``urls`` that answers revokes ``cert_id``."""
        problems = []
        for url in urls:
            try:
                crl = await self._crl(url)
            except OcspError as exc:
                problems.append(str(exc))
                continue
            name_digest = hashes.Hash(HASHES[cert_id.algorithm]())
            name_digest.update(crl.issuer.public_bytes())
            if name_digest.finalize() != cert_id.issuer_name_hash:
                problems.append(f"the CRL at {url} is not of the certificate's issuer")
                continue
            if self.settings.verify_ocsp_signatures:
                issuer = anchors.issuer_by_hashes(cert_id.algorithm, cert_id.issuer_name_hash, cert_id.issuer_key_hash)
                if issuer is not None and not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                    problems.append(f"the CRL at {url} is not signed by the issuer")
                    continue
            revoked = crl.get_revoked_certificate_by_serial_number(cert_id.serial)
            return CrlAnswer("Revoked" if revoked is not None else "Good", crl.next_update_utc)
        raise OcspError("CRLError", "; ".join(problems) or "no CRL distribution point")

    async def _crl(self, url: str) -> x509.CertificateRevocationList:
        now = datetime.now(timezone.utc)
        crl = self._crls.get(url)
        if crl is not None and crl.next_update_utc is not None and crl.next_update_utc > now:
            self._crls.move_to_end(url)
            return crl
        if not url.lower().startswith(("http://", "https://")):
            raise OcspError("CRLError", f"the CRL URL {url[:200]!r} is not http(s)")
        try:
            async with httpx.AsyncClient(timeout=self.settings.ocsp_timeout, follow_redirects=True,
                                         verify=await default_tls()) as client:
                async with client.stream("GET", url) as reply:
                    if reply.status_code != 200:
                        raise OcspError("CRLError", f"the CRL at {url} answered HTTP {reply.status_code}")
                    body = bytearray()
                    async for chunk in reply.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_CRL_BYTES:
                            raise OcspError("CRLError", f"the CRL at {url} is too long")
        except httpx.HTTPError as exc:
            raise OcspError("CRLError", f"the CRL at {url} could not be fetched: {exc}"[:500]) from None
        try:
            crl = (x509.load_pem_x509_crl(bytes(body)) if body.lstrip().startswith(b"-----")
                   else x509.load_der_x509_crl(bytes(body)))
        except ValueError as exc:
            raise OcspError("CRLError", f"the CRL at {url} does not parse: {exc}") from None
        if crl.next_update_utc is not None and crl.next_update_utc < now - SKEW:
            raise OcspError("CRLError", f"the CRL at {url} is out of date")
        self._crls[url] = crl
        self._crls.move_to_end(url)
        while len(self._crls) > CACHED_CRLS:
            self._crls.popitem(last=False)
        return crl
