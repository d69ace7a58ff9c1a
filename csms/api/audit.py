"""The one way handlers add to the audit log (:mod:`csms.core.audit`).

:func:`audited` is what a REST route, an admin page or a plugin's route calls after a change:
it names the caller (user or API key) and finds the organization of the object, which decides
who may read the entry (the tenant rule of :mod:`csms.api.tenancy`).
"""

from __future__ import annotations

from typing import Any, Mapping

from litestar.connection import ASGIConnection

from csms.api.tenancy import KINDS, MISSING, caller_principal
from csms.core import audit

_UNSET: Any = object()


async def actor_of(connection: ASGIConnection) -> tuple[str, int | None]:
    """Who is asking, as the log names it, and their organization."""
    principal = await caller_principal(connection)
    if principal is None:
        return "", None
    return f"{principal.kind}:{principal.name}", principal.organization


async def _organization_of(object_type: str, object_id: Any, row: Mapping[str, Any] | None) -> int | None | object:
    if object_type == "organization":
        return int(object_id) if str(object_id).isdigit() else _UNSET
    if row is not None and "organization" in row:
        return row["organization"]
    if row is not None and row.get("site") is not None:
        owner = await KINDS["site"](row["site"])
        return _UNSET if owner is MISSING else owner
    if object_type in KINDS and object_id not in (None, ""):
        owner = await KINDS[object_type](object_id)
        return _UNSET if owner is MISSING else owner
    return _UNSET


async def audited(connection: ASGIConnection, action: str, object_type: str, object_id: Any, *,
                  before: Mapping[str, Any] | None = None, after: Mapping[str, Any] | None = None,
                  summary: str = "") -> None:
    """Log a change the caller of ``connection`` made to an object (``before``/``after`` are its
    rows; None for a create / a delete)."""
    actor, actor_org = await actor_of(connection)
    organization = await _organization_of(object_type, object_id, after if after is not None else before)
    await audit.record(actor=actor, action=action, object_type=object_type, object_id=object_id, before=before,
                       after=after, organization=actor_org if organization is _UNSET else organization,  # type: ignore[arg-type]
                       actor_organization=actor_org, summary=summary)
