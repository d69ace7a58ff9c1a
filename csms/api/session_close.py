"""An operator's force-close of a transaction the station will not end (a station that lost it
in a reboot, a broken station): ``POST /api/v1/sessions/{id}/close``; and asking the station
about the transaction first (OCPP 2.0.1/2.1 GetTransactionStatus):
``POST /api/v1/sessions/{id}/transaction-status``."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.exceptions import HTTPException, NotFoundException

from csms.api.audit import audited
from csms.api.auth import caller, require
from csms.api.stations import run_command
from csms.api.tokens_sessions import session_detail
from csms.core.runtime import get_core
from csms.core.services.operations import calls_with
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


async def ask_transaction_status(session_id: int, *, by: str) -> dict[str, Any]:
    """GetTransactionStatus of the session's transaction at its station: ``ongoing`` (None when
    the station does not say) and ``messages_in_queue``."""
    row = await ChargingSession.select(ChargingSession.transaction_id,
                                       ChargingSession.station.station_id.as_alias("station_id")).where(
        ChargingSession.id == session_id).first()
    if row is None or row["station_id"] is None:
        raise NotFoundException(f"no session {session_id}")
    core = get_core()
    calls = await calls_with(core.commands, row["station_id"], "supports_transaction_status",
                             "GetTransactionStatus (OCPP 2.0.1 has)")
    call = calls.get_transaction_status(transaction_id=row["transaction_id"])
    outcome = call.outcome(await core.commands.send(row["station_id"], call.action, call.payload, requested_by=by))
    return {"session_id": session_id, "station_id": row["station_id"], "transaction_id": row["transaction_id"],
            **outcome}


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

    @post("/{session_id:int}/transaction-status", guards=[require("operator")])
    async def transaction_status(self, request: Request, session_id: int) -> dict[str, Any]:
        """Ask the station about the session's transaction (OCPP 2.0.1/2.1 GetTransactionStatus):
        ``ongoing`` (whether it still runs; None when the station does not say) and
        ``messages_in_queue``. Before a force-close, an operator can see whether the station still
        knows the transaction. A 1.6 station: 409 ``NotSupported``; offline: 409."""
        return await run_command(ask_transaction_status(session_id, by=caller(request)))
