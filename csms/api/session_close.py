"""An operator's force-close of a transaction the station will not end (a station that lost it
in a reboot, a broken station): ``POST /api/v1/sessions/{id}/close``."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.exceptions import HTTPException, NotFoundException

from csms.api.audit import audited
from csms.api.auth import require
from csms.api.tokens_sessions import session_detail
from csms.core.runtime import get_core
from csms.core.services.sessions import FORCE_CLOSED
from csms.core.tables import ChargingSession

# OCPP's stop reason for "none of the above", in both versions' enumerations; the session's flag
# ``force_closed`` says what happened.
FORCE_CLOSE_REASON = "Other"


async def force_close(session_id: int) -> dict[str, Any]:
    """Close an active session now at its last stored meter reading; the row before it."""
    before = await ChargingSession.select().where(ChargingSession.id == session_id).first()
    if before is None:
        raise NotFoundException(f"no session {session_id}")
    core = get_core()
    live = core.sessions.by_id(session_id)
    if before["state"] != "active" or live is None:
        raise HTTPException(status_code=409, detail=f"session {session_id} is not active")
    await core.sessions.close(live, reason=FORCE_CLOSE_REASON, flag=FORCE_CLOSED)
    return before


class SessionCloseController(Controller):
    path = "/sessions"
    tags = ["sessions"]
    opt = {"tenant": {"session_id": "session"}}

    @post("/{session_id:int}/close", guards=[require("operator")])
    async def close_session(self, request: Request, session_id: int) -> dict[str, Any]:
        """Force-close an active session: it ends now with stop reason ``Other``, flag
        ``force_closed`` and its last stored meter reading as the end meter; plugins hear
        ``session.stopped`` once. Not active: 409. Nothing is sent to the station; a stop it
        sends later replaces this account."""
        before = await force_close(session_id)
        after = await ChargingSession.select().where(ChargingSession.id == session_id).first()
        await audited(request, "update", "session", session_id, before=before, after=after,
                      summary=f"session {session_id} force-closed")
        return await session_detail(session_id)
