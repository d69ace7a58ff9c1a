"""ISO 15118 contract certificates at an Authorize (OCPP C07): the certificateStatus of the
chain the station forwarded (``certificate``, PEM, leaf first; central validation) or of the
OCSP hash data of a chain it checked itself (``iso15118CertificateHashData``).

The PEM chain: every certificate current (else CertificateExpired), each signed by the next
(else SignatureError, CertChainError when the names do not link), the last one a trust anchor or
signed by one when anchors are set (else CertChainError); then each certificate but a root above
the leaf asked about over OCSP (the leaf must be; a sub-CA when it names a responder). The hash data:
each entry asked about over OCSP. A revoked certificate is CertificateRevoked (ContractCancelled
when the reason is cessationOfOperation: the mobility operator ended the contract); no status to
be had (no responder, responder down, an answer that fails its checks, Unknown) is
NoCertificateAvailable."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import AuthorityInformationAccessOID

from plugins.pki.anchors import TrustAnchors
from plugins.pki.ocsp import CertId, OcspAnswer, OcspClient, OcspError

log = logging.getLogger("csms.pki.contract")

NO_STATUS = "NoCertificateAvailable"


def ocsp_url(cert: x509.Certificate) -> str | None:
    """The OCSP responder named in the certificate's Authority Information Access."""
    try:
        access = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    for description in access:
        if description.access_method == AuthorityInformationAccessOID.OCSP and isinstance(
                description.access_location, x509.UniformResourceIdentifier):
            return str(description.access_location.value)
    return None


def revocation_status(answer: OcspAnswer) -> str | None:
    """The certificateStatus an OCSP answer stands for; None for Good."""
    if answer.status == "Good":
        return None
    if answer.status == "Revoked":
        if answer.revocation_reason == x509.ReasonFlags.cessation_of_operation:
            return "ContractCancelled"
        return "CertificateRevoked"
    return NO_STATUS


def chain_problem(chain: list[x509.Certificate], anchors: TrustAnchors,
                  now: datetime) -> tuple[str | None, list[x509.Certificate]]:
    """(the status that rejects ``chain`` or None, the chain with the anchor it leads to)."""
    for cert in chain:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            return "CertificateExpired", chain
    for child, parent in zip(chain, chain[1:]):
        if child.issuer != parent.subject:
            return "CertChainError", chain
        try:
            child.verify_directly_issued_by(parent)
        except InvalidSignature:
            return "SignatureError", chain
        except (ValueError, TypeError):
            return "CertChainError", chain
    if not anchors:
        return None, chain
    top = chain[-1]
    if anchors.contains(top):
        return None, chain
    issuers = anchors.issuers_of(top)
    if not issuers:
        return "CertChainError", chain
    for anchor in issuers:
        try:
            top.verify_directly_issued_by(anchor)
        except (InvalidSignature, ValueError, TypeError):
            continue
        if not anchor.not_valid_before_utc <= now <= anchor.not_valid_after_utc:
            return "CertificateExpired", chain
        return None, [*chain, anchor]
    return "SignatureError", chain


async def pem_chain_status(client: OcspClient, anchors: TrustAnchors, certificate: str) -> str:
    try:
        chain = x509.load_pem_x509_certificates(certificate.encode())
    except ValueError:
        return "CertChainError"
    now = datetime.now(timezone.utc)
    problem, chain = chain_problem(chain, anchors, now)
    if problem is not None:
        return problem
    for index, cert in enumerate(chain):
        if cert.issuer == cert.subject and index > 0:
            break  # a root: nobody to ask
        issuer = cert if cert.issuer == cert.subject else chain[index + 1] if index + 1 < len(chain) else None
        if issuer is None:
            found = anchors.issuers_of(cert)
            issuer = found[0] if found else None
        url = ocsp_url(cert)
        if index > 0 and url is None:
            continue  # a sub-CA that names no responder is vouched for by its signature alone
        if issuer is None:
            return NO_STATUS  # the leaf's issuer is unknown: no OCSP request can name it
        try:
            answer = await client.status(CertId.of(cert, issuer), url, issuer)
        except OcspError as exc:
            log.warning("contract certificate %x: no OCSP status: %s", cert.serial_number, exc)
            return NO_STATUS
        status = revocation_status(answer)
        if status is not None:
            return status
    return "Accepted"


async def hash_data_status(client: OcspClient, anchors: TrustAnchors, hash_data: list[dict[str, Any]]) -> str:
    for entry in hash_data:
        try:
            cert_id = CertId.from_hash_data(entry)
            issuer = anchors.issuer_by_hashes(cert_id.algorithm, cert_id.issuer_name_hash, cert_id.issuer_key_hash)
            answer = await client.status(cert_id, entry.get("responderURL"), issuer)
        except OcspError as exc:
            log.warning("contract certificate %s: no OCSP status: %s", entry.get("serialNumber"), exc)
            return NO_STATUS
        status = revocation_status(answer)
        if status is not None:
            return status
    return "Accepted"


async def contract_status(client: OcspClient, anchors: TrustAnchors, certificate: str | None,
                          hash_data: list[dict[str, Any]]) -> str:
    """The certificateStatus of an Authorize's contract certificate: the PEM chain when sent
    (the station left the validation to the CSMS), else its hash data."""
    if certificate:
        return await pem_chain_status(client, anchors, certificate)
    return await hash_data_status(client, anchors, hash_data)
