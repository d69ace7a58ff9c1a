"""The installation's built-in certificate authority, and the checks of a station's CSR.

The CA signs the client certificates of stations (OCPP 2.0.1 SignCertificate of type
ChargingStationCertificate, OCPP 1.6 security extension SignCertificate), so they can connect with
security profile 3. It is made on first use in ``<data_dir>/ca/``:

* ``ca.key``: the CA's private key (PEM, PKCS#8, file mode 0600), ECDSA P-256 or RSA
  (``CSMS_CERTIFICATES_CA_KEY_TYPE``);
* ``ca.pem``: the CA's self-signed certificate;
* ``trust.pem``: every CA certificate that still verifies station certificates, the current one
  first: point ``CSMS_TLS_CA`` at it (with any other CA the stations' certificates come from).

Rotation (``csms ca rotate``, :func:`rotate`): a new key and certificate replace ``ca.key`` and
``ca.pem``; the old certificate moves to ``retired/ca-<serial>.pem`` (its key is deleted) and stays
in ``trust.pem`` until it expires, so certificates it signed keep verifying while the stations
renew theirs with the new CA.

The CA is also the built-in implementation of the ``issue_certificate`` hook, registered ``trylast``
(``csms.plugins.DEFAULT_PLUGINS``), so a plugin of an external PKI answers before it, and of the
``certificate_chain_status`` hook (2.1 GetCertificateChainStatus) for the certificates it made:
its own (current or retired) and those it signed for stations (``issued_certificate`` rows).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from csms.core.tables import IssuedCertificate
from csms.plugins import hookimpl
from csms.settings import CertificateSettings

log = logging.getLogger("csms.certificates")

STATION_CERTIFICATE = "ChargingStationCertificate"
V2G_CERTIFICATE = "V2GCertificate"
ACCEPTED_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
_CLOCK_SKEW = dt.timedelta(minutes=5)
_lock = threading.Lock()
_directory: Path | None = None  # set by the running core (its data directory's ca/)


def use_directory(directory: Path | None) -> None:
    """Keep the installation's CA in ``directory`` (the certificate service of the running core
    sets it to ``<data_dir>/ca``); None: the settings' data directory."""
    global _directory
    _directory = directory


class CsrProblem(ValueError):
    """Why a certificate signing request is refused (the text goes into the station's event log)."""


@dataclass(frozen=True)
class CertificateInfo:
    """What the CSMS keeps of a certificate it issued."""

    serial: str  # hex, upper case, as OCPP's CertificateHashData writes it
    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime


def certificate_settings() -> CertificateSettings:
    return CertificateSettings()


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _common_name(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def load_csr(csr_pem: str) -> x509.CertificateSigningRequest:
    """The CSR in ``csr_pem`` (PEM; the base64 body alone, as some stations send it, too)."""
    text = csr_pem.strip()
    if "-----BEGIN" not in text:
        text = f"-----BEGIN CERTIFICATE REQUEST-----\n{text}\n-----END CERTIFICATE REQUEST-----"
    try:
        return x509.load_pem_x509_csr(text.encode())
    except (ValueError, TypeError) as exc:
        raise CsrProblem(f"the CSR does not parse: {exc}") from None


def check_csr(csr_pem: str, *, station_id: str | None, organization: str = "", min_rsa_bits: int | None = 2048,
              ec_curves: frozenset[str] = ACCEPTED_CURVES) -> x509.CertificateSigningRequest:
    """The parsed CSR when it may be signed: it parses, its signature is valid, its subject's
    commonName is ``station_id`` (None: only that it has exactly one), its organizationName is
    ``organization`` (when set), its key an EC key on one of ``ec_curves`` (by default P-256,
    P-384, P-521) or an RSA key of at least ``min_rsa_bits`` (None: no RSA key).
    :class:`CsrProblem` says why not."""
    csr = load_csr(csr_pem)
    try:
        valid = csr.is_signature_valid
    except (ValueError, InvalidSignature, x509.UnsupportedGeneralNameType):
        valid = False
    if not valid:
        raise CsrProblem("the CSR's signature is not valid")
    try:
        key = csr.public_key()
    except (ValueError, TypeError) as exc:
        raise CsrProblem(f"the CSR's public key is not usable: {exc}") from None
    accepted = ", ".join(sorted(ec_curves)) + ("" if min_rsa_bits is None else f"; RSA of {min_rsa_bits} bits or more")
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ec_curves:
            raise CsrProblem(f"the CSR's EC curve {key.curve.name} is not accepted ({accepted})")
    elif isinstance(key, rsa.RSAPublicKey) and min_rsa_bits is not None:
        if key.key_size < min_rsa_bits:
            raise CsrProblem(f"the CSR's RSA key has {key.key_size} bits; at least {min_rsa_bits} are needed")
    else:
        raise CsrProblem(f"the CSR's key type {type(key).__name__} is not accepted ({accepted})")
    if station_id is None:
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if len(names) != 1 or not str(names[0].value).strip():
            raise CsrProblem("the CSR has no single commonName")
    elif (cn := _common_name(csr.subject)) != station_id:
        raise CsrProblem(f"the CSR's commonName {cn!r} is not the station id {station_id!r}")
    if organization:
        orgs = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        if orgs != [organization]:
            raise CsrProblem(f"the CSR's organizationName {orgs[0] if orgs else None!r} is not {organization!r}")
    return csr


def certificate_info(cert: x509.Certificate) -> CertificateInfo:
    return CertificateInfo(serial=format(cert.serial_number, "X"), subject=cert.subject.rfc4514_string(),
                           issuer=cert.issuer.rfc4514_string(), not_before=cert.not_valid_before_utc,
                           not_after=cert.not_valid_after_utc)


def leaf_of(chain_pem: str) -> x509.Certificate:
    """The first certificate of a PEM chain (the leaf)."""
    return x509.load_pem_x509_certificates(chain_pem.encode())[0]


# ---------------------------------------------------------------------------------------------
# the CA at rest


class CertificateAuthority:
    """The CA in ``directory``: its key and certificate, made on first use."""

    def __init__(self, directory: Path, settings: CertificateSettings | None = None) -> None:
        self.directory = Path(directory)
        self.settings = settings or certificate_settings()

    @classmethod
    def of_installation(cls) -> CertificateAuthority:
        """The CA the running core uses (:func:`use_directory`), else the one in the data
        directory of the settings (the command line)."""
        from csms.settings import get_settings

        return cls(_directory if _directory is not None else get_settings().data_dir / "ca")

    @property
    def key_path(self) -> Path:
        return self.directory / "ca.key"

    @property
    def cert_path(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def trust_path(self) -> Path:
        return self.directory / "trust.pem"

    @property
    def retired_dir(self) -> Path:
        return self.directory / "retired"

    def exists(self) -> bool:
        return self.key_path.exists() and self.cert_path.exists()

    def ensure(self) -> None:
        """Make the CA when there is none yet."""
        with _lock:
            if not self.exists():
                self._create()

    def _new_key(self) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
        if self.settings.ca_key_type == "rsa":
            return rsa.generate_private_key(public_exponent=65537, key_size=max(self.settings.min_rsa_bits, 3072))
        return ec.generate_private_key(ec.SECP256R1())

    def _create(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = self._new_key()
        now = _utcnow()
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, self.settings.ca_name)]
        if self.settings.organization:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.settings.organization))
        name = x509.Name(attributes)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - _CLOCK_SKEW)
                .not_valid_after(now + dt.timedelta(days=self.settings.ca_validity_days))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                             crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        # the key is written with mode 0600 from its first byte
        tmp_key = self.key_path.with_suffix(".key.tmp")
        fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key_pem)
        os.chmod(tmp_key, 0o600)
        tmp_cert = self.cert_path.with_suffix(".pem.tmp")
        tmp_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        os.replace(tmp_key, self.key_path)
        os.replace(tmp_cert, self.cert_path)
        self._write_trust()
        log.info("certificate authority %s created in %s (valid until %s)", self.settings.ca_name,
                 self.directory, cert.not_valid_after_utc.date())

    def certificate(self) -> x509.Certificate:
        self.ensure()
        return x509.load_pem_x509_certificate(self.cert_path.read_bytes())

    def _key(self) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
            raise RuntimeError(f"{self.key_path} holds neither an EC nor an RSA key")
        return key

    def certificate_pem(self) -> str:
        return self.certificate().public_bytes(serialization.Encoding.PEM).decode()

    def retired(self) -> list[x509.Certificate]:
        """The previous CA certificates that have not expired yet."""
        now = _utcnow()
        out = []
        for path in sorted(self.retired_dir.glob("ca-*.pem")) if self.retired_dir.exists() else []:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
            if cert.not_valid_after_utc > now:
                out.append(cert)
        return out

    def trusted(self) -> list[x509.Certificate]:
        """Every CA certificate that verifies station certificates: the current one first."""
        return [self.certificate(), *self.retired()]

    def _write_trust(self) -> None:
        current = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        pems = [c.public_bytes(serialization.Encoding.PEM) for c in [current, *self.retired()]]
        tmp = self.trust_path.with_suffix(".pem.tmp")
        tmp.write_bytes(b"".join(pems))
        os.replace(tmp, self.trust_path)

    def rotate(self) -> x509.Certificate:
        """A new CA replaces the current one, which keeps verifying (``trust.pem``) until it expires."""
        with _lock:
            if self.exists():
                old = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
                self.retired_dir.mkdir(parents=True, exist_ok=True)
                (self.retired_dir / f"ca-{old.serial_number:X}.pem").write_bytes(
                    old.public_bytes(serialization.Encoding.PEM))
                self.key_path.unlink()  # the old key signs nothing any more
                self.cert_path.unlink()
            self._create()
        return self.certificate()

    def sign(self, csr: x509.CertificateSigningRequest) -> str:
        """A certificate for ``csr`` (subject as requested, TLS client and server use) followed by
        the CA's certificate, as a PEM chain."""
        ca_cert = self.certificate()
        key = self._key()
        now = _utcnow()
        not_after = min(now + dt.timedelta(days=self.settings.certificate_validity_days), ca_cert.not_valid_after_utc)
        public = csr.public_key()
        if not isinstance(public, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
            raise CsrProblem("only EC and RSA keys are signed")
        is_ec = isinstance(public, ec.EllipticCurvePublicKey)
        builder = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_cert.subject)
                   .public_key(public).serial_number(x509.random_serial_number())
                   .not_valid_before(now - _CLOCK_SKEW).not_valid_after(not_after)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                key_encipherment=not is_ec, data_encipherment=False,
                                                key_agreement=is_ec, key_cert_sign=False, crl_sign=False,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH,
                                                         ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                       ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value), critical=False))
        cert = builder.sign(key, hashes.SHA256())
        return (cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)).decode()


# ---------------------------------------------------------------------------------------------
# the built-in implementation of the issue_certificate hook


@hookimpl(trylast=True)
def issue_certificate(station_id, csr_pem, certificate_type):
    """The built-in CA signs station certificates (not V2G certificates: those need an ISO 15118
    PKI plugin). The CSR was checked before the station got its answer."""
    settings = certificate_settings()
    if certificate_type != STATION_CERTIFICATE or not settings.ca_enabled:
        return None
    authority = CertificateAuthority.of_installation()

    async def sign() -> str:  # key files and signing off the event loop
        return await asyncio.to_thread(lambda: authority.sign(load_csr(csr_pem)))

    return sign


_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "SHA256": hashes.SHA256, "SHA384": hashes.SHA384, "SHA512": hashes.SHA512}
CHAIN_STATUS_VALID_S = 86400  # how long a status given by the built-in CA holds (nextUpdate)


def issuer_hashes(issuer: x509.Certificate, algorithm: str) -> tuple[str, str]:
    """(issuerNameHash, issuerKeyHash) in hex, as OCSP (RFC 6960) computes them, of the
    certificates ``issuer`` signed, with ``algorithm`` (SHA256, SHA384, SHA512)."""
    key_bits = issuer.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    name_digest, key_digest = hashes.Hash(_HASHES[algorithm]()), hashes.Hash(_HASHES[algorithm]())
    name_digest.update(issuer.subject.public_bytes())
    key_digest.update(_subject_public_key_bits(key_bits))
    return name_digest.finalize().hex(), key_digest.finalize().hex()


@hookimpl(trylast=True)
def certificate_chain_status(station_id, certificate_hash_data, source, urls):
    """Good for the CA's own certificates and those it signed for stations, Unknown for another
    serial under its name and key; no answer for a certificate it did not issue."""
    authority = CertificateAuthority.of_installation()
    algorithm = certificate_hash_data["hashAlgorithm"]
    if not authority.exists() or algorithm not in _HASHES:
        return None
    wanted = (certificate_hash_data["issuerNameHash"].lower(), certificate_hash_data["issuerKeyHash"].lower())
    serial = certificate_hash_data["serialNumber"].lower().lstrip("0") or "0"

    async def status() -> dict[str, Any] | None:
        trusted = await asyncio.to_thread(authority.trusted)
        issuers = [c for c in trusted if issuer_hashes(c, algorithm) == wanted]
        if not issuers:
            return None
        next_update = _utcnow() + dt.timedelta(seconds=CHAIN_STATUS_VALID_S)
        if any(format(c.serial_number, "x") == serial for c in trusted):
            return {"status": "Good", "nextUpdate": next_update}  # the CA itself (self-signed)
        issued = await IssuedCertificate.exists().where(IssuedCertificate.serial == serial.upper())
        return {"status": "Good" if issued else "Unknown", "nextUpdate": next_update}

    return status


def hash_data(cert: x509.Certificate, issuer: x509.Certificate | None = None) -> dict[str, str] | None:
    """OCPP's CertificateHashDataType (SHA256) of ``cert``, whose issuer is ``issuer`` (itself when
    self-signed); None when the issuer is not known."""
    if issuer is None:
        if cert.issuer != cert.subject:
            return None
        issuer = cert
    name_hash, key_hash = issuer_hashes(issuer, "SHA256")
    return {"hashAlgorithm": "SHA256", "issuerNameHash": name_hash,
            "issuerKeyHash": key_hash, "serialNumber": format(cert.serial_number, "x")}


def _subject_public_key_bits(spki_der: bytes) -> bytes:
    """The contents of the subjectPublicKey BIT STRING of a DER SubjectPublicKeyInfo."""

    def header(data: bytes, at: int) -> tuple[int, int]:  # (content start, content length)
        length = data[at + 1]
        if length < 0x80:
            return at + 2, length
        count = length & 0x7F
        return at + 2 + count, int.from_bytes(data[at + 2:at + 2 + count], "big")

    start, _ = header(spki_der, 0)  # SEQUENCE
    algo_start, algo_len = header(spki_der, start)  # AlgorithmIdentifier
    bits_start, bits_len = header(spki_der, algo_start + algo_len)  # BIT STRING
    return spki_der[bits_start + 1:bits_start + bits_len]  # without the unused-bits byte
