"""The PKI plugin's settings: ``CSMS_PKI_*`` (``[pki]``), as variables or in the config file."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from csms.plugin_api import CsmsSettings

__all__ = ["PkiSettings", "pki_settings"]


class PkiSettings(CsmsSettings):
    """Options of the ISO 15118 PKI plugin."""

    model_config = SettingsConfigDict(env_prefix="CSMS_PKI_", extra="ignore")

    ocsp_responder_url: str = Field("", description="OCSP responder every status request goes to (a test CA's, or a local OCSP proxy); empty: the `responderURL` the station sent, or the one in the certificate's Authority Information Access.")
    ocsp_timeout: float = Field(10.0, description="Seconds an OCSP responder (or a CRL distribution point) has to answer; after that the station gets Failed.")
    ocsp_cache_size: int = Field(1000, description="OCSP responses kept (per issuer and serial number) until their nextUpdate; the oldest are dropped first. 0: no cache.")
    ocsp_cache_max_age: int = Field(86400, description="Seconds an OCSP response is kept at most, even when its nextUpdate is later; a response without nextUpdate is not kept.")
    trust_anchors: str = Field("", description="PEM files (comma separated) of the CA certificates the plugin trusts: V2G root, MO roots and, if known, their sub-CAs. Set, a contract certificate chain must lead to one of them, and OCSP responses and CRLs are checked against them; empty: a chain is only checked link by link.")
    verify_ocsp_signatures: bool = Field(True, description="Check the signature of each OCSP response (by the issuer or a responder it delegated to) whenever the issuer's certificate is known (from the chain or the trust anchors); a response that fails is not used.")
    provider_url: str = Field("", description="The contract certificate provider (a CPS / CCP, e.g. a Hubject Plug & Charge adapter) that Get15118EVCertificate requests are forwarded to, as JSON (README); empty: the station gets Failed (NoProvider).")
    provider_token: str = Field("", description="Bearer token sent to the contract certificate provider; empty: none.", json_schema_extra={"secret": True})
    provider_client_cert: str = Field("", description="PEM file of the client certificate for mutual TLS with the provider (its key in `CSMS_PKI_PROVIDER_CLIENT_KEY`); empty: no client certificate.")
    provider_client_key: str = Field("", description="PEM file of the private key of `CSMS_PKI_PROVIDER_CLIENT_CERT`.")
    provider_ca_file: str = Field("", description="PEM file of the CA certificates the provider's TLS certificate is checked against; empty: the system's.")
    provider_timeout: float = Field(30.0, description="Seconds the contract certificate provider has to answer (the EV waits for it).")
    v2g_signing_cert: str = Field("", description="PEM file of the CPO sub-CA certificate (ISO 15118 V2G PKI) that signs the stations' V2GCertificate CSRs (SignCertificate; the SECC certificates); its key in `CSMS_PKI_V2G_SIGNING_KEY`. Empty: the plugin signs no V2G certificates (they are Rejected unless another plugin does).")
    v2g_signing_key: str = Field("", description="PEM file of the private key of `CSMS_PKI_V2G_SIGNING_CERT` (unencrypted; keep it readable by the CSMS only).")
    v2g_signing_chain: str = Field("", description="PEM file of the certificates above `CSMS_PKI_V2G_SIGNING_CERT` (the other CPO sub-CAs, leaf-side first), sent after it in each CertificateSigned; a V2G root in it is left out (the stations have it). Empty: the chain is the leaf and the signing sub-CA.")
    v2g_validity_days: int = Field(365, description="Days an SECC certificate signed with `CSMS_PKI_V2G_SIGNING_CERT` is valid (at most until the sub-CA expires).")
    v2g_organization: str = Field("", description="organizationName a V2GCertificate CSR must carry (the CPO's, as in its sub-CA); empty: not checked.")

    def anchor_files(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.trust_anchors.split(",") if p.strip())


@lru_cache(maxsize=1)
def pki_settings() -> PkiSettings:
    """Read once; tests call ``pki_settings.cache_clear()`` after changing the environment."""
    return PkiSettings()
