"""Authorization of id tokens through the ``authorize_token`` hook (first answer wins).

Every refusal is stored (``refused_authorization``, through the batched writer, committed with
the other writes of its batch) and then told as ``authorization.refused``: an unknown card that
a station asks about every few seconds is visible in the admin, not only as a flapping connector.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from csms.core import events as ev
from csms.core.domain import AuthorizationResult
from csms.core.timeutil import utcnow
from csms.plugins import call_hook

if TYPE_CHECKING:
    from collections.abc import Callable

    from csms.db import BatchWriter

log = logging.getLogger("csms.auth")

_INSERT_REFUSAL = (
    "INSERT INTO refused_authorization (station_id, id_token, token_type, status, purpose, evse_id, source, timestamp) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)

# AuthorizeCertificateStatusEnumType (2.0.1 and 2.1): the answers of contract_certificate_status
CONTRACT_STATUSES = ("Accepted", "SignatureError", "CertificateExpired", "CertificateRevoked",
                     "NoCertificateAvailable", "CertChainError", "ContractCancelled")

# OCPP 1.6 knows fewer statuses than 2.0.1; the 1.6 adapter maps with this table.
STATUS_TO_16 = {
    "Accepted": "Accepted",
    "Blocked": "Blocked",
    "ConcurrentTx": "ConcurrentTx",
    "Expired": "Expired",
}


class AuthorizationService:
    def __init__(self, events: ev.EventDispatcher, writer: Callable[[], BatchWriter]) -> None:
        self.events = events
        self.writer = writer  # the running core's batched writer (it exists once the core started)

    async def authorize(self, station_id: str, id_token: str, token_type: str = "", *, evse_id: int | None = None,
                        purpose: str = "authorize") -> AuthorizationResult:
        result = await call_hook(
            "authorize_token", station_id=station_id, id_token=id_token, token_type=token_type,
            evse_id=evse_id, purpose=purpose,
        )
        if not isinstance(result, AuthorizationResult):
            if result is not None:
                log.error("authorize_token answered %r, not an AuthorizationResult; rejecting", result)
            result = AuthorizationResult("Invalid", source="core")
        if not result.accepted:
            await self.refused(station_id, id_token, token_type, result, evse_id=evse_id, purpose=purpose)
        return result

    async def contract(self, station_id: str, result: AuthorizationResult, *, id_token: str, token_type: str,
                       certificate: str | None, hash_data: list[dict[str, Any]] | None,
                       evse_id: int | None = None) -> tuple[AuthorizationResult, str | None]:
        """ISO 15118 Plug & Charge (C07): the status of the contract certificate of an Authorize
        that carries one (``certificate`` PEM chain or its OCSP ``hash_data``) from the
        ``contract_certificate_status`` hook, and the token's ``result`` with it: a certificate
        that is not Accepted makes an accepted token Invalid (C07.FR.16), a refusal stored as
        any other. ``(result, None)`` when the request has no certificate or no plugin answers."""
        if not certificate and not hash_data:
            return result, None
        answer = await call_hook("contract_certificate_status", station_id=station_id, id_token=id_token,
                                 certificate=certificate or None, hash_data=list(hash_data or []))
        status = answer.get("status") if isinstance(answer, dict) else answer
        if status not in CONTRACT_STATUSES:
            if answer is not None:
                log.error("contract_certificate_status answered %r, not a certificate status; ignored", answer)
            return result, None
        if status != "Accepted" and result.accepted:
            result = AuthorizationResult("Invalid", source=f"contract certificate: {status}"[:64])
            await self.refused(station_id, id_token, token_type, result, evse_id=evse_id, purpose="authorize")
        return result, status

    async def refused(self, station_id: str, id_token: str, token_type: str, result: AuthorizationResult, *,
                      evse_id: int | None = None, purpose: str = "") -> None:
        """Store a refusal (in the writer's next batch) and, once committed, emit
        ``authorization.refused``. A failed write is logged; the station still gets its answer."""
        try:
            await self.writer().submit([(_INSERT_REFUSAL, (
                station_id, id_token[:255], token_type[:24], result.status[:24], purpose[:16], evse_id,
                result.source[:64], utcnow()))])
        except Exception:
            log.exception("%s: refusal of a token could not be stored", station_id)
            return
        self.events.emit(ev.AuthorizationRefused(station_id, id_token=id_token, token_type=token_type,
                                                 status=result.status, purpose=purpose, evse_id=evse_id))
