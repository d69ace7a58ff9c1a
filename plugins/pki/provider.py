"""The contract certificate provider (M01/M02 Get15118EVCertificate): the EV's EXI request
forwarded as JSON to ``CSMS_PKI_PROVIDER_URL`` (a CPS / CCP, e.g. an adapter in front of
Hubject's Plug & Charge service), with an optional bearer token and client certificate.

Request (POST, JSON)::

    {"schemaVersion": "urn:iso:15118:2:2013:MsgDef", "action": "Install" | "Update",
     "exiRequest": "<base64 EXI>", "stationId": "CS-1"}

Answer (200, JSON)::

    {"status": "Accepted" | "Failed", "exiResponse": "<base64 EXI>"}

Anything else (no answer in time, another HTTP status, not that JSON, an exiResponse that is not
base64 or longer than OCPP allows) is Failed with a reasonCode saying which."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import ssl
from functools import lru_cache
from typing import Any

import httpx

from plugins.pki.config import PkiSettings

log = logging.getLogger("csms.pki.provider")

MAX_EXI_RESPONSE = 17000  # Get15118EVCertificateResponse.exiResponse (2.0.1)
MAX_BODY = 64 * 1024


class ProviderError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@lru_cache(maxsize=4)
def _tls(client_cert: str, client_key: str, ca_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file or None)
    if client_cert:
        context.load_cert_chain(client_cert, client_key or None)
    return context


async def tls_context(settings: PkiSettings) -> ssl.SSLContext:
    """The provider's TLS settings, the files read (off the event loop) once."""
    return await asyncio.to_thread(_tls, settings.provider_client_cert, settings.provider_client_key,
                                   settings.provider_ca_file)


def failed(reason: str, message: str) -> dict[str, Any]:
    return {"status": "Failed", "exiResponse": "",
            "statusInfo": {"reasonCode": reason[:20], "additionalInfo": message[:512]}}


async def forward(settings: PkiSettings, *, station_id: str, schema_version: str, action: str,
                  exi_request: str) -> dict[str, Any]:
    """The provider's answer to one Get15118EVCertificate, as the core's hook wants it."""
    try:
        return await _forward(settings, station_id=station_id, schema_version=schema_version, action=action,
                              exi_request=exi_request)
    except ProviderError as exc:
        log.warning("%s: Get15118EVCertificate %s failed: %s", station_id, action, exc)
        return failed(exc.reason, str(exc))


async def _forward(settings: PkiSettings, *, station_id: str, schema_version: str, action: str,
                   exi_request: str) -> dict[str, Any]:
    headers = {"Accept": "application/json"}
    if settings.provider_token:
        headers["Authorization"] = f"Bearer {settings.provider_token}"
    body = {"schemaVersion": schema_version, "action": action, "exiRequest": exi_request, "stationId": station_id}
    try:
        verify = await tls_context(settings)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ProviderError("ProviderTLS", f"the provider's TLS files are not usable: {exc}") from None
    try:
        async with httpx.AsyncClient(timeout=settings.provider_timeout, verify=verify) as client:
            async with client.stream("POST", settings.provider_url, json=body, headers=headers) as reply:
                raw = bytearray()
                async for chunk in reply.aiter_bytes():
                    raw += chunk
                    if len(raw) > MAX_BODY:
                        raise ProviderError("ProviderError", "the provider's answer is too long")
                status_code = reply.status_code
    except httpx.TimeoutException:
        raise ProviderError("ProviderTimeout", f"the provider did not answer within {settings.provider_timeout:g} s") \
            from None
    except httpx.HTTPError as exc:
        raise ProviderError("ProviderUnreachable", f"the provider could not be reached: {exc}") from None
    if status_code != 200:
        raise ProviderError("ProviderError", f"the provider answered HTTP {status_code}")
    try:
        answer = json.loads(bytes(raw))
    except ValueError:
        raise ProviderError("ProviderError", "the provider's answer is not JSON") from None
    if not isinstance(answer, dict) or answer.get("status") not in ("Accepted", "Failed") \
            or not isinstance(answer.get("exiResponse", ""), str):
        raise ProviderError("ProviderError", "the provider's answer has no status Accepted or Failed")
    exi = answer.get("exiResponse", "")
    if len(exi) > MAX_EXI_RESPONSE:
        raise ProviderError("ProviderError", f"the provider's exiResponse is longer than {MAX_EXI_RESPONSE}")
    try:
        base64.b64decode(exi, validate=True)
    except (binascii.Error, ValueError):
        raise ProviderError("ProviderError", "the provider's exiResponse is not base64") from None
    if answer["status"] == "Accepted" and not exi:
        raise ProviderError("ProviderError", "the provider accepted without an exiResponse")
    out: dict[str, Any] = {"status": answer["status"], "exiResponse": exi}
    if answer["status"] == "Failed":
        out["statusInfo"] = {"reasonCode": "ProviderFailed"}
        if isinstance(answer.get("reason"), str) and answer["reason"]:
            out["statusInfo"]["additionalInfo"] = answer["reason"][:512]
    return out
