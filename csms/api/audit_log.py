"""The audit log over REST: read only, admin role, an organization's admins see their own."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Controller, Request, get
from piccolo.query.methods.select import Select

from csms.api.auth import require
from csms.api.crud import jsonable, page_params
from csms.api.tenancy import SCOPED, Scope, restrict, tenant_scope
from csms.core.tables import AuditEntry
from csms.textsearch import contains


def audit_query(scope: Scope, *, actor: str = "", object_type: str = "", object_id: str = "",
                since: datetime | None = None, until: datetime | None = None) -> tuple[Select, Any]:
    """The entries ``scope`` may read, filtered, newest first, with their count."""
    query = restrict(AuditEntry.select(), AuditEntry.organization, scope).output(load_json=True)
    count = restrict(AuditEntry.count(), AuditEntry.organization, scope)
    conds = []
    if actor:
        conds.append(contains(AuditEntry.actor, actor))
    if object_type:
        conds.append(AuditEntry.object_type == object_type)
    if object_id:
        conds.append(AuditEntry.object_id == object_id)
    if since is not None:
        conds.append(AuditEntry.at >= since)
    if until is not None:
        conds.append(AuditEntry.at < until)
    for c in conds:
        query, count = query.where(c), count.where(c)
    return query.order_by(AuditEntry.id, ascending=False), count


class AuditController(Controller):
    path = "/audit"
    tags = ["audit"]
    guards = [require("admin")]
    opt = {"tenant": SCOPED}

    @get("/")
    async def list_entries(self, request: Request, actor: str = "", object_type: str = "", object_id: str = "",
                           since: datetime | None = None, until: datetime | None = None, limit: int = 100,
                           offset: int = 0) -> dict[str, Any]:
        """Audit entries the caller may read (its organizations' objects), newest first. Entries
        are never changed or deleted."""
        limit, offset = page_params(limit, offset)
        query, count = audit_query(await tenant_scope(request), actor=actor, object_type=object_type,
                                   object_id=object_id, since=since, until=until)
        rows = await query.limit(limit).offset(offset)
        return {"items": [jsonable(r) for r in rows], "total": await count, "limit": limit, "offset": offset}
