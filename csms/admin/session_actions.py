"""The session page's force-close: an operator ends a transaction the station will not end."""

from __future__ import annotations

from litestar import Request, post
from litestar.exceptions import HTTPException
from litestar.response import Redirect, Response

from csms.admin.errors import error_page
from csms.api.audit import audited
from csms.api.session_close import force_close
from csms.core.tables import ChargingSession


@post("/admin/sessions/{session_id:int}/close", include_in_schema=False,
      opt={"tenant": {"session_id": "session"}, "role": "operator"})
async def session_force_close(request: Request, session_id: int) -> Redirect | Response:
    try:
        before = await force_close(session_id)
    except HTTPException as exc:
        return error_page(request, exc.status_code,
                          f"{exc.detail}: nothing was changed. Reload the session to see its state.")
    after = await ChargingSession.select().where(ChargingSession.id == session_id).first()
    await audited(request, "update", "session", session_id, before=before, after=after,
                  summary=f"session {session_id} force-closed")
    return Redirect(f"/admin/sessions/{session_id}", status_code=303)
