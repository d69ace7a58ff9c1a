"""The audit log page: who changed what and when, filtered by actor, object and time, as CSV
too. Read only: no page or route changes or deletes an entry."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from typing import Any, AsyncIterator

from litestar import Request, get
from litestar.response import Stream, Template

from csms.admin.templating import local_day_start, paginate, render
from csms.api.audit_log import audit_query
from csms.api.tenancy import SCOPED, tenant_scope
from csms.core.offload import run_cpu
from csms.core.tables import AuditEntry
from csms.csvexport import csv_text
from csms.i18n import gettext

OBJECT_TYPES = ["station", "site", "hub", "token", "driver", "organization", "session", "api_key", "user", "database"]
CSV_COLUMNS = ["id", "at", "actor", "action", "object_type", "object_id", "summary", "before", "after"]
AUDIT = {"tenant": SCOPED, "role": "admin"}


def _day(value: str) -> datetime | None:
    """The start of a day (``YYYY-MM-DD``) in the viewer's time zone, in UTC."""
    try:
        return local_day_start(date.fromisoformat(value))
    except ValueError:
        return None


def _filters(params: Any) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    shown = {k: params.get(k, "").strip() for k in ("actor", "object_type", "object_id", "from", "to")}
    problems = []
    since = _day(shown["from"]) if shown["from"] else None
    until = _day(shown["to"]) if shown["to"] else None
    for key, value in (("from", since), ("to", until)):
        if shown[key] and value is None:
            problems.append(gettext("“%(value)s” is not a date (YYYY-MM-DD); the %(filter)s filter is ignored.",
                                    value=shown[key], filter=gettext("From") if key == "from" else gettext("To")))
    until_end = local_day_start(date.fromisoformat(shown["to"]) + timedelta(days=1)) if until else None
    return dict(actor=shown["actor"], object_type=shown["object_type"], object_id=shown["object_id"],
                since=since, until=until_end), shown, problems


@get("/admin/audit", include_in_schema=False, opt=AUDIT)
async def audit_page(request: Request) -> Template:
    filters, shown, problems = _filters(request.query_params)
    query, count = audit_query(await tenant_scope(request), **filters)
    page = await paginate(request, query, count, size=50)
    return await render(request, "audit/list.html", title=gettext("Audit log"), page=page, filters=shown,
                        problems=problems, object_types=OBJECT_TYPES, query_string=request.url.query)


def _csv_rows(batch: list[dict[str, Any]]) -> str:
    return csv_text([[r["id"], r["at"].isoformat() if hasattr(r["at"], "isoformat") else r["at"], r["actor"],
                      r["action"], r["object_type"], r["object_id"], r["summary"],
                      json.dumps(r["before"], ensure_ascii=False) if r["before"] is not None else "",
                      json.dumps(r["after"], ensure_ascii=False) if r["after"] is not None else ""]
                     for r in batch])


@get("/admin/audit.csv", include_in_schema=False, opt=AUDIT)
async def audit_csv(request: Request) -> Stream:
    """The filtered entries as CSV, newest first, streamed in chunks formatted off the event loop."""
    filters, _, _ = _filters(request.query_params)
    scope = await tenant_scope(request)

    async def rows() -> AsyncIterator[str]:
        yield csv_text([CSV_COLUMNS])
        last_id: int | None = None
        while True:
            query, _ = audit_query(scope, **filters)
            if last_id is not None:
                query = query.where(AuditEntry.id < last_id)
            batch = await query.limit(1000)
            if batch:
                yield await run_cpu(_csv_rows, batch)
                last_id = batch[-1]["id"]
            if len(batch) < 1000:
                return

    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M")
    return Stream(rows(), media_type="text/csv; charset=utf-8",
                  headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.csv"'})
