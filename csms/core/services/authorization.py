"""Authorization of id tokens through the ``authorize_token`` hook (first answer wins)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from csms.core.domain import AuthorizationResult
from csms.plugins import call_hook

if TYPE_CHECKING:
    from csms.core.runtime import Core

log = logging.getLogger("csms.auth")

# OCPP 1.6 knows fewer statuses than 2.0.1; the 1.6 adapter maps with this table.
STATUS_TO_16 = {
    "Accepted": "Accepted",
    "Blocked": "Blocked",
    "ConcurrentTx": "ConcurrentTx",
    "Expired": "Expired",
}


class AuthorizationService:
    def __init__(self, core: Core) -> None:
        self.core = core

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
        return result
