"""Authorization of id tokens through the ``authorize_token`` hook (first answer wins).

Every refusal is stored (``refused_authorization``, through the batched writer, committed with
the other writes of its batch) and then told as ``authorization.refused``: an unknown card that
a station asks about every few seconds is visible in the admin, not only as a flapping connector.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

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
