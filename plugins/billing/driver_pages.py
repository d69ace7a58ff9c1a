"""The driver portal's Statements page: a signed-in driver's invoices and credit notes (number,
period, amount, status) and each one's PDF.

The routes live under ``/driver/``, so the core guards them with the driver's sign-in
(``current_driver``); they know no tenant (a driver is no organization's user) and read only the
statements whose party is the signed-in driver. Anyone else's statement, a draft (not issued to
anyone yet) and an id that does not exist all answer the same 404.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Request, Response, Router, get
from litestar.exceptions import NotFoundException
from litestar.response import Template

from csms.plugin_api import DRIVER_EXCEPTION_HANDLERS, N_, PUBLIC, current_driver, driver_page, gettext, paginate
from plugins.billing import statements as stm
from plugins.billing.config import billing_settings
from plugins.billing.tables import Statement

PAGE_SIZE = 20
PAYMENT_WORDS = {"statement_only": ("Issued", "muted"), "pending": ("Payment pending", "warn"),
                 "paid": ("Paid", "ok"), "failed": ("Payment failed", "bad"),
                 "refunded": ("Refunded", "muted"), "partially_refunded": ("Partly refunded", "ok")}


def _mine(driver_id: int) -> Any:
    """The statements issued to the driver: drafts are the operator's work in progress."""
    return (Statement.party_kind == "driver") & (Statement.party_id == driver_id) & (Statement.status != "draft")


def status_of(row: dict[str, Any], credited: set[int]) -> tuple[str, str]:
    """What the driver is told about a statement, and its badge class."""
    if row["status"] == "void":
        return "Void", "muted"
    if row["kind"] == "credit_note":
        return "Credit note", "muted"
    if row["id"] in credited:
        return "Credited", "muted"
    return PAYMENT_WORDS.get(row["payment_status"], (row["payment_status"].replace("_", " "), "muted"))


def listed(row: dict[str, Any], credited: set[int], tz: ZoneInfo) -> dict[str, Any]:
    last_day = (row["period_end"] - timedelta(seconds=1)).astimezone(tz)
    status, badge = status_of(row, credited)
    return {"id": row["id"], "number": stm.statement_number(row), "title": stm.document_title(row),
            "period_start": f"{row['period_start'].astimezone(tz):%Y-%m-%d}", "period_end": f"{last_day:%Y-%m-%d}",
            "amount": stm.money_text(row["total_incl_minor"], row["currency"]), "owed_to_driver":
            row["total_incl_minor"] < 0, "status": status, "badge": badge,
            "pdf": f"/driver/statements/{row['id']}/pdf"}


@get("/driver/statements")
async def my_statements(request: Request) -> Template:
    mine = _mine(current_driver(request)["id"])
    page = await paginate(request, Statement.select().where(mine).order_by(Statement.period_start, ascending=False)
                          .order_by(Statement.id, ascending=False), Statement.count().where(mine), size=PAGE_SIZE)
    ids = [row["id"] for row in page.items]
    credited = {r["corrects"] for r in await Statement.select(Statement.corrects).where(
        (Statement.kind == "credit_note") & (Statement.status == "issued")
        & Statement.corrects.is_in(ids or [-1]))}
    tz = ZoneInfo(billing_settings().statement_timezone)
    page.items = [listed(row, credited, tz) for row in page.items]
    return driver_page(request, "driver/billing/statements.html", title=N_("My statements"), page=page,
                       time_zone=tz.key)


@get("/driver/statements/{statement_id:int}/pdf")
async def my_statement_pdf(request: Request, statement_id: int) -> Response[bytes]:
    row = await Statement.select().where((Statement.id == statement_id)
                                         & _mine(current_driver(request)["id"])).first()
    if row is None:
        raise NotFoundException(gettext("There is no such statement."))
    return Response(await stm.document_pdf(row), media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{stm.document_filename(row, "pdf")}"',
        "Cache-Control": "private, no-store"})


def billing_driver_router() -> Router:
    """The statements pages of the driver portal (the core adds the driver's sign-in)."""
    return Router(path="/", route_handlers=[my_statements, my_statement_pdf], opt={"tenant": PUBLIC},
                  exception_handlers=DRIVER_EXCEPTION_HANDLERS, include_in_schema=False)
