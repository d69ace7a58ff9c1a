"""The ISO 15118 PKI plugin's hook implementations (entry point ``pki`` in the ``csms`` group):
OCSP for stations (M06 GetCertificateStatus, 2.1 GetCertificateChainStatus with OCSP or CRL),
A02/A03 V2G (SECC) certificates signed with the CPO's sub-CA,
Plug & Charge contract certificates at Authorize (C07) and the contract certificate provider
(M01/M02 Get15118EVCertificate). No tables: answers are kept in memory until their nextUpdate."""

from __future__ import annotations

import asyncio
import base64
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from csms.plugin_api import hookimpl
from plugins.pki.anchors import trust_anchors
from plugins.pki.config import PkiSettings, pki_settings
from plugins.pki.crl import CrlClient
from plugins.pki import v2g
from plugins.pki.ocsp import CertId, OcspClient, OcspError
from plugins.pki.v2g import V2G_CERTIFICATE, configured

log = logging.getLogger("csms.pki")

SETTINGS_CLASSES = (PkiSettings,)

_state: tuple[PkiSettings, OcspClient, CrlClient] | None = None


def clients() -> tuple[PkiSettings, OcspClient, CrlClient]:
    """The settings and the clients made for them (new ones when the settings were read again)."""
    global _state
    settings = pki_settings()
    if _state is None or _state[0] is not settings:
        _state = (settings, OcspClient(settings), CrlClient(settings))
    return _state


@hookimpl
def check_certificate_status(station_id, ocsp_request):
    """M06: ask the responder the station named (or the configured one); relay its DER answer."""

    async def ask() -> dict[str, Any]:
        settings, client, _ = clients()
        try:
            cert_id = CertId.from_hash_data(ocsp_request)
            anchors = await trust_anchors(settings.anchor_files())
            issuer = anchors.issuer_by_hashes(cert_id.algorithm, cert_id.issuer_name_hash, cert_id.issuer_key_hash)
            answer = await client.status(cert_id, ocsp_request.get("responderURL"), issuer)
        except OcspError as exc:
            log.warning("%s: GetCertificateStatus failed: %s", station_id, exc)
            return {"status": "Failed", "statusInfo": {"reasonCode": exc.reason[:20], "additionalInfo": str(exc)[:512]}}
        return {"status": "Accepted", "ocspResult": base64.b64encode(answer.der).decode()}

    return ask


@hookimpl
def certificate_chain_status(station_id, certificate_hash_data, source, urls):
    """2.1: the certificate's status from its OCSP responder or CRL. A responder or CRL that
    cannot be had leaves the answer to the next (the installation's CA for its own certificates),
    in the end Failed."""

    async def ask() -> dict[str, Any] | None:
        settings, ocsp_client, crl_client = clients()
        try:
            cert_id = CertId.from_hash_data(certificate_hash_data)
            anchors = await trust_anchors(settings.anchor_files())
            if source == "CRL":
                crl = await crl_client.status(cert_id, [str(u) for u in urls or []], anchors)
                return {"status": crl.status, "nextUpdate": crl.next_update or _tomorrow()}
            issuer = anchors.issuer_by_hashes(cert_id.algorithm, cert_id.issuer_name_hash, cert_id.issuer_key_hash)
            candidates = [str(u) for u in urls or []] or [""]
            problem: OcspError | None = None
            for url in candidates:
                try:
                    answer = await ocsp_client.status(cert_id, url, issuer)
                except OcspError as exc:
                    problem = exc
                    continue
                return {"status": answer.status, "nextUpdate": answer.next_update or _tomorrow()}
            raise problem or OcspError("NoOCSPResponder", "no responder")
        except OcspError as exc:
            log.info("%s: certificate chain status (%s) not had: %s", station_id, source, exc)
            return None

    return ask


@hookimpl
def contract_certificate_status(station_id, id_token, certificate, hash_data):
    """C07: the contract certificate's chain and revocation status."""
    from plugins.pki.contract import contract_status

    async def check() -> str:
        settings, client, _ = clients()
        anchors = await trust_anchors(settings.anchor_files())
        status = await contract_status(client, anchors, certificate, hash_data)
        log.info("%s: contract certificate of %s: %s", station_id, id_token, status)
        return status

    return check


@hookimpl
def signed_certificate_types():
    """V2G certificates, while the CPO sub-CA is configured (else the core Rejects their CSRs)."""
    return [V2G_CERTIFICATE] if configured(pki_settings()) else []


@hookimpl
def issue_certificate(station_id, csr_pem, certificate_type):
    """A02/A03 SignCertificate of a V2GCertificate: the SECC certificate, signed with the CPO
    sub-CA (``CSMS_PKI_V2G_SIGNING_CERT`` and ``_KEY``). Other types, or no sub-CA: left to the next (the
    built-in CA signs station certificates)."""
    settings = pki_settings()
    if certificate_type != V2G_CERTIFICATE or not configured(settings):
        return None

    async def issue() -> str | None:  # key files and signing off the event loop
        try:
            return await asyncio.to_thread(v2g.sign, settings, csr_pem)
        except v2g.V2gProblem as exc:
            log.warning("%s: V2G certificate not signed: %s", station_id, exc)
            return None

    return issue


@hookimpl
def get_15118_ev_certificate(station_id, iso15118_schema_version, action, exi_request):
    """M01/M02: forward to the contract certificate provider, when one is set."""
    settings = pki_settings()
    if not settings.provider_url:
        return None
    from plugins.pki.provider import forward

    return forward(settings, station_id=station_id, schema_version=iso15118_schema_version, action=action,
                   exi_request=exi_request)


def _tomorrow() -> datetime:
    return datetime.now(timezone.utc) + timedelta(days=1)
