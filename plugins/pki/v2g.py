"""SECC certificates signed with the CPO's sub-CA of the ISO 15118 V2G PKI (OCPP A02/A03
SignCertificate of type V2GCertificate).

A CPO under the V2G PKI (Hubject's, or a test PKI) holds a CPO sub-CA: its certificate
(``CSMS_PKI_V2G_SIGNING_CERT``), its key (``CSMS_PKI_V2G_SIGNING_KEY``) and the certificates
above it (``CSMS_PKI_V2G_SIGNING_CHAIN``). The core has already checked the CSR before the
station got Accepted (it parses, its signature is valid, an EC or RSA key); here it must also
suit an ISO 15118-2 SECC certificate: an EC key on P-256 (secp256r1, the only curve of
ISO 15118-2), a commonName (the SECC id: the CSMS knows no SECC ids, so it is not matched
against the station), and the organizationName ``CSMS_PKI_V2G_ORGANIZATION`` when set. The
certificate follows ISO 15118-2's SECC leaf profile: ecdsa-with-SHA256, not a CA, keyUsage
digitalSignature and keyAgreement (critical), subject and authority key identifiers (no
Authority Information Access: the responder for the sub-CA's certificates is the CPO's, not
configured here). A CSR that does not suit is not signed (logged; the core records that nobody signed it)."""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from csms.plugin_api import CsrProblem, check_csr
from plugins.pki.config import PkiSettings

log = logging.getLogger("csms.pki.v2g")

V2G_CERTIFICATE = "V2GCertificate"
CLOCK_SKEW = dt.timedelta(minutes=5)


class V2gProblem(ValueError):
    """Why a V2G CSR is not signed, or why the signing sub-CA cannot be used."""


@dataclass(frozen=True)
class SubCa:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...]  # above ``cert``, roots left out


def configured(settings: PkiSettings) -> bool:
    return bool(settings.v2g_signing_cert and settings.v2g_signing_key)


def _stamp(path: str) -> float:
    return os.stat(path).st_mtime if path else 0.0


def sub_ca(settings: PkiSettings) -> SubCa:
    """The signing sub-CA, read again when one of its files changed (a renewed sub-CA)."""
    files = (settings.v2g_signing_cert, settings.v2g_signing_key, settings.v2g_signing_chain)
    try:
        stamps = tuple(_stamp(f) for f in files)
    except OSError as exc:
        raise V2gProblem(f"the V2G signing files cannot be read: {exc}") from None
    return _load(*files, stamps)  # type: ignore[arg-type]


@lru_cache(maxsize=2)
def _load(cert_file: str, key_file: str, chain_file: str, _stamps: tuple[float, ...]) -> SubCa:
    try:
        with open(cert_file, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        with open(key_file, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        chain: list[x509.Certificate] = []
        if chain_file:
            with open(chain_file, "rb") as f:
                chain = x509.load_pem_x509_certificates(f.read())
    except (OSError, ValueError, TypeError) as exc:
        raise V2gProblem(f"the V2G signing files cannot be used: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise V2gProblem("the V2G signing key is not an EC key (ISO 15118-2: secp256r1)")
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.public_numbers() != key.public_key().public_numbers():
        raise V2gProblem("the V2G signing key does not belong to the signing certificate")
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise V2gProblem("the V2G signing certificate is not a CA certificate")
    return SubCa(cert, key, tuple(c for c in chain if c.subject != c.issuer and c != cert))


def check_secc_csr(csr_pem: str, organization: str) -> x509.CertificateSigningRequest:
    """The CSR when it suits an SECC certificate (the core's checks, with the key EC on secp256r1
    as ISO 15118-2 has it and a commonName, the SECC id); :class:`V2gProblem` says why not."""
    try:
        return check_csr(csr_pem, station_id=None, organization=organization, min_rsa_bits=None,
                         ec_curves=frozenset({"secp256r1"}))
    except CsrProblem as exc:
        raise V2gProblem(str(exc)) from None


def sign(settings: PkiSettings, csr_pem: str, now: dt.datetime | None = None) -> str:
    """The SECC certificate for ``csr_pem`` and the sub-CAs above it, as a PEM chain (leaf first)."""
    ca = sub_ca(settings)
    csr = check_secc_csr(csr_pem, settings.v2g_organization)
    now = now or dt.datetime.now(dt.timezone.utc)
    if not ca.cert.not_valid_before_utc <= now < ca.cert.not_valid_after_utc:
        raise V2gProblem("the V2G signing certificate is not valid now")
    public = csr.public_key()
    not_after = min(now + dt.timedelta(days=settings.v2g_validity_days), ca.cert.not_valid_after_utc)
    builder = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca.cert.subject)
               .public_key(public).serial_number(x509.random_serial_number())
               .not_valid_before(now - CLOCK_SKEW).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False))
    cert = builder.sign(ca.key, hashes.SHA256())
    pem = serialization.Encoding.PEM
    return b"".join(c.public_bytes(pem) for c in (cert, ca.cert, *ca.chain)).decode()

