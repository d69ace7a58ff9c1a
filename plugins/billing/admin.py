"""Billing pages of the operator admin (``/admin/billing/...``) and its panels on core pages.

Rendered with the admin's ``render`` (shared layout, navigation, CSRF) from this plugin's
templates in ``templates/admin/billing``. Every change goes through the same services as the
REST API, so the pages refuse exactly what the API refuses, with the same messages.
"""

from __future__ import annotations

import json
from typing import Any

from litestar import Request, Router, get, post
from litestar.response import Redirect, Response, Template
from markupsafe import Markup

from csms.plugin_api import (
    ADMIN_EXCEPTION_HANDLERS, Driver, Organization, Site, Station, admin_guard, caller, current_user,
    error_page, is_htmx, paginate, render, utcnow,
)
from plugins.billing import settlements as st
from plugins.billing import statements as stm
from plugins.billing.api import _preview, check_home_values, period_of, session_cost_json, when
from plugins.billing.assignments import DRIVER_GROUPS, check_assignment, describe, session_context
from plugins.billing.costing import choose_tariff
from plugins.billing.tables import Assignment, HomeStation, Settlement, Statement, Tariff, TariffVersion
from plugins.billing.tariffs import (
    BillingError,
    archive_tariff,
    create_tariff,
    tariff_of,
    tariff_row,
    update_tariff,
    version_row,
)

EXAMPLE_TARIFF = {"id": "STANDARD", "currency": "EUR", "elements": [{"price_components": [
    {"type": "ENERGY", "price": 0.35, "vat": 21, "step_size": 1},
    {"type": "PARKING_TIME", "price": 2.0, "vat": 21, "step_size": 60}]}]}


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: str(v).strip() for k, v in form.items() if k != "_csrf_token"}


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") and str(value).lstrip("-").isdigit() else None


async def _choices() -> dict[str, Any]:
    return {
        "organizations": await Organization.select(Organization.id, Organization.name, Organization.kind).order_by(
            Organization.name),
        "sites": await Site.select(Site.id, Site.name).order_by(Site.name),
        "stations": await Station.select(Station.station_id).order_by(Station.station_id).limit(2000),
        "drivers": await Driver.select(Driver.id, Driver.name, Driver.kind).order_by(Driver.name).limit(2000),
        "groups": DRIVER_GROUPS,
    }


# -- tariffs ------------------------------------------------------------------------------------


@get("/", name="billing:index")
async def billing_index(request: Request) -> Template:
    tariffs = await Tariff.select().where(Tariff.archived == False).order_by(Tariff.code)  # noqa: E712
    counts = {
        "unsettled": await Settlement.count().where(Settlement.status == "void"),
        "settlements": await Settlement.count(),
        "statements": await Statement.count().where(Statement.status == "issued"),
        "home_stations": await HomeStation.count(),
    }
    assignments = await Assignment.select().order_by(Assignment.id)
    for a in assignments:
        a["scope"] = describe(a)
    return await render(request, "billing/index.html", title="Billing", tariffs=tariffs, counts=counts,
                        assignments=assignments, **await _choices())


@get("/tariffs/new")
async def tariff_new(request: Request) -> Template:
    return await render(request, "billing/tariff_form.html", title="New tariff", row=None, name="",
                        ocpi=json.dumps(EXAMPLE_TARIFF, indent=2), problems=[], error="")


async def _tariff_form_error(request: Request, row: dict[str, Any] | None, name: str, text: str,
                             exc: BillingError) -> Template:
    return await render(request, "billing/tariff_form.html", status_code=exc.status,
                        title=f"Tariff {row['code']}" if row else "New tariff", row=row, name=name, ocpi=text,
                        problems=exc.problems, error=exc.message)


def _json_body(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BillingError(f"the tariff is not valid JSON: {exc}") from None


@post("/tariffs/new")
async def tariff_create(request: Request) -> Any:
    form = await _form(request)
    try:
        row = await create_tariff(_json_body(form.get("ocpi", "")), name=form.get("name", ""),
                                  created_by=_who(request))
    except BillingError as exc:
        return await _tariff_form_error(request, None, form.get("name", ""), form.get("ocpi", ""), exc)
    return Redirect(f"/admin/billing/tariffs/{row['id']}", status_code=303)


def _who(request: Request) -> str:
    user = request.scope.get("csms_admin_user")  # type: ignore[call-overload]
    return f"user:{user.username}" if user else caller(request)


@get("/tariffs/{tariff_id:int}")
async def tariff_detail(request: Request, tariff_id: int) -> Template:
    row = await tariff_row(tariff_id)
    version = await version_row(tariff_id)
    versions = await TariffVersion.select().where(TariffVersion.tariff == tariff_id).order_by(
        TariffVersion.version, ascending=False)
    assignments = await Assignment.select().where(Assignment.tariff == tariff_id).order_by(Assignment.id)
    for a in assignments:
        a["scope"] = describe(a)
    return await render(request, "billing/tariff_detail.html", title=f"Tariff {row['code']}", row=row,
                        version=version, versions=versions, assignments=assignments,
                        ocpi=json.dumps(json.loads(version["ocpi"]), indent=2), **await _choices())


@get("/tariffs/{tariff_id:int}/edit")
async def tariff_edit(request: Request, tariff_id: int) -> Template:
    row = await tariff_row(tariff_id)
    version = await version_row(tariff_id)
    ocpi = {k: v for k, v in json.loads(version["ocpi"]).items() if k != "last_updated"}
    return await render(request, "billing/tariff_form.html", title=f"Tariff {row['code']}", row=row,
                        name=row["name"], ocpi=json.dumps(ocpi, indent=2), problems=[], error="")


@post("/tariffs/{tariff_id:int}/edit")
async def tariff_update(request: Request, tariff_id: int) -> Any:
    row = await tariff_row(tariff_id)
    form = await _form(request)
    try:
        await update_tariff(tariff_id, _json_body(form.get("ocpi", "")), name=form.get("name") or row["name"],
                            created_by=_who(request))
    except BillingError as exc:
        return await _tariff_form_error(request, row, form.get("name", ""), form.get("ocpi", ""), exc)
    return Redirect(f"/admin/billing/tariffs/{tariff_id}", status_code=303)


@post("/tariffs/{tariff_id:int}/archive")
async def tariff_archive(request: Request, tariff_id: int) -> Any:
    try:
        await archive_tariff(tariff_id)
    except BillingError as exc:
        return await _message(request, exc)
    return Redirect("/admin/billing", status_code=303)


@get("/tariffs/{tariff_id:int}/preview")
async def tariff_preview(request: Request, tariff_id: int) -> Template:
    """The calculator's answer (an HTMX fragment, or a page without JavaScript)."""
    version = await version_row(tariff_id)
    try:
        result = _preview(tariff_of(version), dict(request.query_params))
        error = ""
    except BillingError as exc:
        result, error = None, exc.message
    template = "billing/_preview.html" if is_htmx(request) else "billing/preview_page.html"
    return await render(request, template, title="Tariff preview", result=result, error=error, tariff_id=tariff_id)


async def _message(request: Request, exc: BillingError) -> Response:
    return error_page(request, exc.status, exc.message + (" " + "; ".join(exc.problems) if exc.problems else ""))


# -- assignments and home stations --------------------------------------------------------------


@post("/assignments")
async def assignment_create(request: Request) -> Any:
    form = await _form(request)
    try:
        values = await check_assignment({
            "tariff": _int(form.get("tariff")), "organization_id": _int(form.get("organization_id")),
            "driver_group": form.get("driver_group", ""), "site_id": _int(form.get("site_id")),
            "station_id": form.get("station_id", ""), "evse_id": _int(form.get("evse_id")),
            "valid_from": when(form.get("valid_from"), "valid_from"), "valid_to": when(form.get("valid_to"), "valid_to"),
            "note": form.get("note", ""),
        })
    except BillingError as exc:
        return await _message(request, exc)
    await Assignment(**values).save()
    return Redirect(form.get("back") or "/admin/billing", status_code=303)


@post("/assignments/{assignment_id:int}/delete")
async def assignment_delete(request: Request, assignment_id: int) -> Redirect:
    form = await _form(request)
    await Assignment.delete().where(Assignment.id == assignment_id)
    return Redirect(form.get("back") or "/admin/billing", status_code=303)


@get("/home-stations")
async def home_list(request: Request) -> Template:
    rows = await HomeStation.select().order_by(HomeStation.id)
    tariffs = await Tariff.select(Tariff.id, Tariff.code).where(Tariff.archived == False)  # noqa: E712
    return await render(request, "billing/home_stations.html", title="Home stations and reimbursements",
                        rows=rows, tariffs=tariffs, **await _choices())


@post("/home-stations")
async def home_create(request: Request) -> Any:
    form = await _form(request)
    try:
        values = await check_home_values({
            "station_id": form.get("station_id", ""), "driver_id": _int(form.get("driver_id")),
            "organization_id": _int(form.get("organization_id")), "mode": form.get("mode") or "fixed_rate",
            "rate_per_kwh": form.get("rate_per_kwh") or "0", "currency": form.get("currency") or "EUR",
            "tariff": _int(form.get("tariff")), "valid_from": form.get("valid_from") or None,
            "valid_to": form.get("valid_to") or None,
        })
    except BillingError as exc:
        return await _message(request, exc)
    await HomeStation(**values).save()
    return Redirect("/admin/billing/home-stations", status_code=303)


@post("/home-stations/{home_id:int}/delete")
async def home_delete(request: Request, home_id: int) -> Redirect:
    await HomeStation.delete().where(HomeStation.id == home_id)
    return Redirect("/admin/billing/home-stations", status_code=303)


# -- settlements --------------------------------------------------------------------------------


@get("/settlements")
async def settlement_list(request: Request) -> Template:
    params = request.query_params
    shown = {k: params.get(k, "") for k in ("status", "kind", "station_id")}
    query, count = Settlement.select(), Settlement.count()
    for key, col in (("status", Settlement.status), ("kind", Settlement.kind), ("station_id", Settlement.station_id)):
        if shown[key]:
            query, count = query.where(col == shown[key]), count.where(col == shown[key])
    page = await paginate(request, query.order_by(Settlement.stopped_at, ascending=False), count)
    page.items = [st.settlement_json(r) for r in page.items]
    return await render(request, "billing/settlements.html", title="Settlements", page=page, filters=shown,
                        kinds=st.KINDS, result=None)


@post("/settlements/run")
async def settlement_run(request: Request) -> Any:
    form = await _form(request)
    try:
        start, end = period_of(form)
        result = await st.rerun(start, end)
    except BillingError as exc:
        return await _message(request, exc)
    page = await paginate(request, Settlement.select().order_by(Settlement.stopped_at, ascending=False),
                          Settlement.count())
    page.items = [st.settlement_json(r) for r in page.items]
    return await render(request, "billing/settlements.html", title="Settlements", page=page,
                        filters={"status": "", "kind": "", "station_id": ""}, kinds=st.KINDS, result=result)


@post("/settlements/{session_id:int}/void")
async def settlement_void(request: Request, session_id: int) -> Any:
    form = await _form(request)
    try:
        await st.void(session_id, form.get("reason", ""))
    except BillingError as exc:
        return await _message(request, exc)
    return Redirect("/admin/billing/settlements", status_code=303)


# -- statements ---------------------------------------------------------------------------------


@get("/statements")
async def statement_list(request: Request) -> Template:
    page = await paginate(request, Statement.select().order_by(Statement.id, ascending=False), Statement.count())
    page.items = [stm.statement_json(r) for r in page.items]
    return await render(request, "billing/statements.html", title="Statements", page=page, **await _choices())


@post("/statements")
async def statement_create(request: Request) -> Any:
    form = await _form(request)
    try:
        kind, _, party = form.get("party", "").partition(":")
        if not party.isdigit():
            raise BillingError("choose a driver, organization or leasing partner")
        start, end = period_of(form)
        row = await stm.create_statement(kind, int(party), start, end, currency=form.get("currency") or None,
                                         created_by=_who(request))
    except BillingError as exc:
        return await _message(request, exc)
    return Redirect(f"/admin/billing/statements/{row['id']}", status_code=303)


@get("/statements/{statement_id:int}")
async def statement_detail(request: Request, statement_id: int) -> Template:
    row = await stm.statement_row(statement_id)
    lines = await stm.statement_lines(statement_id)
    return await render(request, "billing/statement_detail.html", title=f"Statement {stm.statement_number(row)}",
                        s=stm.statement_json(row), lines=stm.lines_json(lines, row["currency"]))


@post("/statements/{statement_id:int}/void")
async def statement_void(request: Request, statement_id: int) -> Any:
    try:
        await stm.void_statement(statement_id)
    except BillingError as exc:
        return await _message(request, exc)
    return Redirect(f"/admin/billing/statements/{statement_id}", status_code=303)


# -- panels on core pages -----------------------------------------------------------------------


def _fragment(request: Any, template: str, **context: Any) -> Markup:
    return Markup(request.app.template_engine.get_template(template).render(**context))


def panel(page: str, request: Any, context: dict[str, Any]) -> Any:
    """``admin_panels``: the cost breakdown on a session page, the tariff in force on a station page."""

    async def session_panel() -> list[Markup]:
        session = context.get("session")
        if not session or session.get("id") is None:
            return []
        cost = await session_cost_json(session["id"])
        return [_fragment(request, "admin/billing/_session_panel.html", c=cost)]

    async def station_panel() -> list[Markup]:
        station = context.get("station")
        if not station:
            return []
        ctx = await session_context({"id": None, "station_id": station["station_id"], "evse_id": 0,
                                     "id_token": "", "driver": None, "started_at": utcnow()})
        choice = await choose_tariff(ctx)
        related = await Assignment.select().where(Assignment.station_id == station["station_id"])
        if ctx.site_id is not None:
            related += await Assignment.select().where(Assignment.site_id == ctx.site_id)
        for a in related:
            a["scope"] = describe(a)
        return [_fragment(request, "admin/billing/_station_panel.html", choice=choice, related=related,
                          station_id=station["station_id"])]

    if page == "session":
        return session_panel
    if page == "station":
        return station_panel
    return None


# -- the router ---------------------------------------------------------------------------------








def _billing_error(request: Request, exc: BillingError) -> Response:
    return error_page(request, exc.status, exc.message)


def billing_admin_router() -> Router:
    return Router(
        path="/admin/billing",
        route_handlers=[
            billing_index, tariff_new, tariff_create, tariff_detail, tariff_edit, tariff_update, tariff_archive,
            tariff_preview, assignment_create, assignment_delete, home_list, home_create, home_delete,
            settlement_list, settlement_run, settlement_void, statement_list, statement_create, statement_detail,
            statement_void,
        ],
        guards=[admin_guard],
        exception_handlers={**ADMIN_EXCEPTION_HANDLERS, BillingError: _billing_error},
        include_in_schema=False,
    )
