"""Built-in authorization: local id tokens, then "unknown is rejected" (both registered as plugins)."""

from __future__ import annotations

from csms.core.domain import AuthorizationResult
from csms.core.tables import IdToken
from csms.core.timeutil import utcnow
from csms.plugins import hookimpl

# Tokens that need no lookup: 2.0.1's NoAuthorization type (free vend / plug and charge by station).
_NO_AUTH_TYPES = {"NoAuthorization"}


@hookimpl(trylast=True)
def authorize_token(id_token, token_type):
    if token_type in _NO_AUTH_TYPES:
        return AuthorizationResult("Accepted", source="core")

    async def lookup():
        row = await IdToken.select(
            IdToken.status, IdToken.expires_at, IdToken.group_id, IdToken.driver
        ).where(IdToken.id_token == id_token).first()
        if row is None:
            return None  # not ours: let the next plugin (or the final rejection) answer
        status = row["status"]
        expires = row["expires_at"]
        if status == "Accepted" and expires is not None and expires <= utcnow():
            status = "Expired"
        return AuthorizationResult(status, expires_at=expires, group_id=row["group_id"], driver_id=row["driver"],
                                   source="core.local")

    return lookup


class RejectUnknown:
    """The very last answer: a token nobody knows is rejected."""

    @hookimpl(trylast=True)
    def authorize_token(self):
        return AuthorizationResult("Unknown", source="core.reject_unknown")


reject_unknown = RejectUnknown()
