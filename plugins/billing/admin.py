"""Billing pages of the operator admin (``/admin/billing/...``) and its panels on core pages.

Rendered with the admin's ``render`` (shared layout, navigation, CSRF) from this plugin's
templates in ``templates/admin/billing``. Every change goes through the same services as the
REST API, so the pages refuse exactly what the API refuses, with the same messages, and keep
to the same tenant rules: an organization's users see their own tree's billing objects and the
installation's tariffs (another organization's object is the 404 page); issuing statements and
running or voiding settlements stay the installation's.
"""

from __future__ import annotations

import json
import re
from typing import Any

from babel.dates import get_day_names
from litestar import Request, Router, get, post
from litestar.response import Redirect, Response, Template
from markupsafe import Markup

from csms.plugin_api import (
    ADMIN_EXCEPTION_HANDLERS, GLOBAL_ONLY, SCOPED, N_, Driver, Organization, Scope, Site, Station, admin_guard, audited,
    caller, current_language, error_page, gettext, is_htmx, paginate, render, restrict, restrict_station_ids,
    tenant_scope, utcnow, visible_station_ids,
)
from plugins.billing import settlements as st
from plugins.billing import statements as stm
from plugins.billing import tariff_form as tf
from plugins.billing.api import (
    ASSIGNMENT, HOME, TARIFF, _preview, audit_settlement_run, check_home_values, period_of, session_cost_json, when,
)
from plugins.billing.assignments import DRIVER_GROUPS, check_assignment, describe, session_context
from plugins.billing.config import billing_settings
from plugins.billing.costing import choose_tariff
from plugins.billing.owners import readable_tariffs, restrict_home_stations
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


async def _choices(scope: Scope) -> dict[str, Any]:
    """What the forms offer: the organizations, sites, stations and drivers ``scope`` sees."""
    return {
        "organizations": await restrict(Organization.select(Organization.id, Organization.name, Organization.kind),
                                        Organization.id, scope).order_by(Organization.name),
        "sites": await restrict(Site.select(Site.id, Site.name), Site.organization, scope).order_by(Site.name),
        "stations": await restrict(Station.select(Station.station_id), Station.organization, scope).order_by(
            Station.station_id).limit(2000),
        "drivers": await restrict(Driver.select(Driver.id, Driver.name, Driver.kind), Driver.organization,
                                  scope).order_by(Driver.name).limit(2000),
        "groups": DRIVER_GROUPS,
    }


# -- form errors --------------------------------------------------------------------------------
#
# Like the core's forms: a refused form comes back as the same page, with what was typed, the
# message next to the field it is about and a summary on top, status 400 (invalid) or 409
# (conflict); never JSON. ``BillingError.field`` names the field; messages about the whole form
# go under "".


def _errors(exc: BillingError) -> dict[str, str]:
    message = exc.message[:1].upper() + exc.message[1:] + ("" if exc.message.endswith(".") else ".")
    if exc.problems and len(exc.problems) > 1:
        message += " " + "; ".join(exc.problems)
    return {exc.field: message}


async def _form_values(request: Request) -> tuple[dict[str, str], Any]:
    form = await request.form()
    return {k: str(v).strip() for k, v in form.items() if k != "_csrf_token"}, lambda key: form.getall(key, [])


# -- tariffs ------------------------------------------------------------------------------------


async def _index_page(request: Request, *, status_code: int = 200, values: dict[str, Any] | None = None,
                      errors: dict[str, str] | None = None) -> Template:
    scope = await tenant_scope(request)
    tariffs = await readable_tariffs(Tariff.select(), scope).where(Tariff.archived == False).order_by(  # noqa: E712
        Tariff.code)
    stations = await visible_station_ids(scope)
    counts = {
        "unsettled": await restrict_station_ids(Settlement.count(), Settlement.station_id, stations).where(
            Settlement.status == "void"),
        "settlements": await restrict_station_ids(Settlement.count(), Settlement.station_id, stations),
        "statements": await restrict(Statement.count(), Statement.organization, scope).where(
            Statement.status == "issued"),
        "home_stations": await (await restrict_home_stations(HomeStation.count(), scope)),
    }
    assignments = await restrict(Assignment.select(), Assignment.organization, scope).order_by(Assignment.id)
    for a in assignments:
        a["scope"] = describe(a)
    return await render(request, "billing/index.html", status_code=status_code, title=gettext("Billing"), tariffs=tariffs,
                        counts=counts, assignments=assignments, values=values or {}, errors=errors or {},
                        **await _choices(scope))


@get("/", name="billing:index", opt={"tenant": SCOPED})
async def billing_index(request: Request) -> Template:
    return await _index_page(request)


async def _tariff_page(request: Request, tariff_id: int, *, editor: str, values: dict[str, Any],
                       ocpi: str, errors: dict[str, str], status_code: int = 200, simple_possible: bool = True,
                       row: dict[str, Any] | None = None) -> Template:
    title = gettext("Tariff %(code)s", code=row["code"]) if row else gettext("New tariff")
    day_names = get_day_names("short", locale=current_language())
    return await render(request, "billing/tariff_form.html", status_code=status_code, title=title, row=row,
                        editor=editor, v=values, ocpi=ocpi, errors=errors, days=tf.DAYS,
                        day_names=[day_names[i].rstrip(".") for i in range(len(tf.DAYS))],
                        simple_possible=simple_possible, tariff_id=tariff_id)


@get("/tariffs/new", opt={"tenant": SCOPED})
async def tariff_new(request: Request) -> Template:
    editor = "json" if request.query_params.get("editor") == "json" else "simple"
    return await _tariff_page(request, 0, editor=editor, values=tf.blank_values(),
                              ocpi=json.dumps(EXAMPLE_TARIFF, indent=2), errors={})


def _json_body(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BillingError(N_("the tariff is not valid JSON: %(error)s"), error=str(exc), field="ocpi") from None


async def _save_tariff(request: Request, row: dict[str, Any] | None) -> Template | Redirect:
    """Create (``row`` None) or change a tariff from the simple form or the JSON editor."""
    form, getall = await _form_values(request)
    editor = form.get("editor") or ("json" if "ocpi" in form else "simple")
    editor = "json" if editor == "json" else "simple"
    values = tf.values_from_form(form, getall)
    if row is not None:
        values["code"] = row["code"]
    name = values["name"] if editor == "simple" else form.get("name", "")
    ocpi_text = form.get("ocpi", "")
    try:
        if editor == "simple":
            data, errors = tf.ocpi_from_values(values)
            if data is None:
                return await _tariff_page(request, row["id"] if row else 0, editor=editor, values=values,
                                          ocpi=ocpi_text, errors=errors, status_code=400, row=row)
            ocpi_text = json.dumps(data, indent=2)
            if row is not None and tf.same_prices(data, json.loads((await version_row(row["id"]))["ocpi"])):
                data = None  # unchanged prices, perhaps in another order: no new version
        else:
            data = _json_body(ocpi_text)
        if row is None:
            saved = await create_tariff(data, name=name, created_by=_who(request),
                                        organization=(await tenant_scope(request)).organization)
            await audited(request, "create", "tariff", saved["id"], after=saved)
        else:
            saved = await update_tariff(row["id"], data, name=name or row["name"], created_by=_who(request))
            await audited(request, "update", "tariff", row["id"], before=row, after=saved)
    except BillingError as exc:
        errors = _errors(exc)
        if exc.status == 409 and "already exists" in exc.text:
            errors = {"code" if editor == "simple" else "ocpi": next(iter(errors.values()))}
        elif not exc.field and editor == "json":
            errors = {"ocpi": next(iter(errors.values()))}
        return await _tariff_page(request, row["id"] if row else 0, editor=editor, values={**values, "name": name},
                                  ocpi=ocpi_text, errors=errors, status_code=exc.status, row=row)
    return Redirect(f"/admin/billing/tariffs/{saved['id']}", status_code=303)


@post("/tariffs/new", opt={"tenant": SCOPED})
async def tariff_create(request: Request) -> Template | Redirect:
    return await _save_tariff(request, None)


def _who(request: Request) -> str:
    user = request.scope.get("csms_admin_user")  # type: ignore[call-overload]
    return f"user:{user.username}" if user else caller(request)


async def _tariff_detail_page(request: Request, tariff_id: int, *, status_code: int = 200,
                              values: dict[str, Any] | None = None, errors: dict[str, str] | None = None) -> Template:
    scope = await tenant_scope(request)
    row = await tariff_row(tariff_id, scope)
    version = await version_row(tariff_id, None, scope)
    versions = await TariffVersion.select().where(TariffVersion.tariff == tariff_id).order_by(
        TariffVersion.version, ascending=False)
    assignments = await restrict(Assignment.select(), Assignment.organization, scope).where(
        Assignment.tariff == tariff_id).order_by(Assignment.id)
    for a in assignments:
        a["scope"] = describe(a)
    return await render(request, "billing/tariff_detail.html", status_code=status_code, title=gettext("Tariff %(code)s", code=row["code"]),
                        row=row, version=version, versions=versions, assignments=assignments,
                        ocpi=json.dumps(json.loads(version["ocpi"]), indent=2), values=values or {},
                        errors=errors or {}, can_change=scope.sees(row["organization"]), **await _choices(scope))


@get("/tariffs/{tariff_id:int}", opt={"tenant": SCOPED})
async def tariff_detail(request: Request, tariff_id: int) -> Template:
    return await _tariff_detail_page(request, tariff_id)


@get("/tariffs/{tariff_id:int}/edit", opt={"tenant": TARIFF})
async def tariff_edit(request: Request, tariff_id: int) -> Template:
    row = await tariff_row(tariff_id)
    version = await version_row(tariff_id)
    ocpi = {k: v for k, v in json.loads(version["ocpi"]).items() if k != "last_updated"}
    simple = tf.values_from_ocpi(ocpi, name=row["name"])
    editor = "json" if simple is None or request.query_params.get("editor") == "json" else "simple"
    return await _tariff_page(request, tariff_id, editor=editor, values=simple or tf.blank_values() | {
        "code": row["code"], "name": row["name"]}, ocpi=json.dumps(ocpi, indent=2), errors={},
        simple_possible=simple is not None, row=row)


@post("/tariffs/{tariff_id:int}/edit", opt={"tenant": TARIFF})
async def tariff_update(request: Request, tariff_id: int) -> Template | Redirect:
    return await _save_tariff(request, await tariff_row(tariff_id))


@post("/tariffs/{tariff_id:int}/archive", opt={"tenant": TARIFF})
async def tariff_archive(request: Request, tariff_id: int) -> Response:
    before = await tariff_row(tariff_id)
    try:
        await archive_tariff(tariff_id)
    except BillingError as exc:
        return await _message(request, exc)
    await audited(request, "update", "tariff", tariff_id, before=before, after=await tariff_row(tariff_id),
                  summary=f"tariff {before['code']} archived")
    return Redirect("/admin/billing", status_code=303)


@get("/tariffs/{tariff_id:int}/preview", opt={"tenant": SCOPED})
async def tariff_preview(request: Request, tariff_id: int) -> Template:
    """The calculator's answer (an HTMX fragment, or a page without JavaScript)."""
    version = await version_row(tariff_id, None, await tenant_scope(request))
    try:
        result = _preview(tariff_of(version), dict(request.query_params))
        error = ""
    except BillingError as exc:
        result, error = None, exc.message
    template = "billing/_preview.html" if is_htmx(request) else "billing/preview_page.html"
    return await render(request, template, title=gettext("Tariff preview"), result=result, error=error, tariff_id=tariff_id)


async def _message(request: Request, exc: BillingError) -> Response:
    return error_page(request, exc.status, exc.message + (" " + "; ".join(exc.problems) if exc.problems else ""))


# -- assignments and home stations --------------------------------------------------------------


@post("/assignments", opt={"tenant": SCOPED})
async def assignment_create(request: Request) -> Template | Redirect:
    form = await _form(request)
    back = form.get("back") or "/admin/billing"
    scope = await tenant_scope(request)
    try:
        values = await check_assignment({
            "tariff": _int(form.get("tariff")), "organization_id": _int(form.get("organization_id")),
            "driver_group": form.get("driver_group", ""), "site_id": _int(form.get("site_id")),
            "station_id": form.get("station_id", ""), "evse_id": _evse(form.get("evse_id", "")),
            "valid_from": when(form.get("valid_from"), "valid_from"), "valid_to": when(form.get("valid_to"), "valid_to"),
            "note": form.get("note", ""), "organization": scope.organization,
        }, scope=scope)
    except BillingError as exc:
        tariff_page = re.fullmatch(r"/admin/billing/tariffs/(\d+)", back)
        if tariff_page:
            return await _tariff_detail_page(request, int(tariff_page.group(1)), status_code=exc.status,
                                             values=form, errors=_errors(exc))
        return await _index_page(request, status_code=exc.status, values=form, errors=_errors(exc))
    row = Assignment(**values)
    await row.save()
    await audited(request, "create", "assignment", row.id,
                  after=await Assignment.select().where(Assignment.id == row.id).first())
    return Redirect(back if back.startswith("/admin/billing") else "/admin/billing", status_code=303)


def _evse(raw: str) -> int | None:
    if raw in ("", None):
        return None
    if not raw.isdigit():
        raise BillingError(N_("EVSE must be a number such as 1, not “%(value)s”"), value=raw, field="evse_id")
    return int(raw)


@post("/assignments/{assignment_id:int}/delete", opt={"tenant": ASSIGNMENT})
async def assignment_delete(request: Request, assignment_id: int) -> Redirect:
    form = await _form(request)
    before = await Assignment.select().where(Assignment.id == assignment_id).first()
    await Assignment.delete().where(Assignment.id == assignment_id)
    if before is not None:
        await audited(request, "delete", "assignment", assignment_id, before=before)
    back = form.get("back") or "/admin/billing"
    return Redirect(back if back.startswith("/admin/billing") else "/admin/billing", status_code=303)


async def _home_page(request: Request, *, status_code: int = 200, values: dict[str, Any] | None = None,
                     errors: dict[str, str] | None = None) -> Template:
    scope = await tenant_scope(request)
    rows = await (await restrict_home_stations(HomeStation.select(), scope)).order_by(HomeStation.id)
    tariffs = await readable_tariffs(Tariff.select(Tariff.id, Tariff.code), scope).where(
        Tariff.archived == False)  # noqa: E712
    return await render(request, "billing/home_stations.html", status_code=status_code,
                        title=gettext("Home stations and reimbursements"), rows=rows, tariffs=tariffs,
                        values=values or {"currency": "EUR"}, errors=errors or {}, **await _choices(scope))


@get("/home-stations", opt={"tenant": SCOPED})
async def home_list(request: Request) -> Template:
    return await _home_page(request)


@post("/home-stations", opt={"tenant": SCOPED})
async def home_create(request: Request) -> Template | Redirect:
    form = await _form(request)
    try:
        values = await check_home_values({
            "station_id": form.get("station_id", ""), "driver_id": _int(form.get("driver_id")),
            "organization_id": _int(form.get("organization_id")), "mode": form.get("mode") or "fixed_rate",
            "rate_per_kwh": form.get("rate_per_kwh") or "0", "currency": form.get("currency") or "EUR",
            "tariff": _int(form.get("tariff")), "valid_from": form.get("valid_from") or None,
            "valid_to": form.get("valid_to") or None,
        }, scope=await tenant_scope(request))
    except BillingError as exc:
        return await _home_page(request, status_code=exc.status, values=form, errors=_errors(exc))
    row = HomeStation(**values)
    await row.save()
    await audited(request, "create", "home_station", row.id,
                  after=await HomeStation.select().where(HomeStation.id == row.id).first())
    return Redirect("/admin/billing/home-stations", status_code=303)


@post("/home-stations/{home_id:int}/delete", opt={"tenant": HOME})
async def home_delete(request: Request, home_id: int) -> Redirect:
    before = await HomeStation.select().where(HomeStation.id == home_id).first()
    await HomeStation.delete().where(HomeStation.id == home_id)
    if before is not None:
        await audited(request, "delete", "home_station", home_id, before=before)
    return Redirect("/admin/billing/home-stations", status_code=303)


# -- settlements --------------------------------------------------------------------------------


async def _settlement_page(request: Request, *, status_code: int = 200, result: Any = None,
                           values: dict[str, Any] | None = None, errors: dict[str, str] | None = None) -> Template:
    params = request.query_params
    shown = {k: params.get(k, "") for k in ("status", "kind", "station_id")}
    scope = await tenant_scope(request)
    stations = await visible_station_ids(scope)
    query = restrict_station_ids(Settlement.select(), Settlement.station_id, stations)
    count = restrict_station_ids(Settlement.count(), Settlement.station_id, stations)
    for key, col in (("status", Settlement.status), ("kind", Settlement.kind), ("station_id", Settlement.station_id)):
        if shown[key]:
            query, count = query.where(col == shown[key]), count.where(col == shown[key])
    page = await paginate(request, query.order_by(Settlement.stopped_at, ascending=False), count)
    page.items = [st.settlement_json(r) for r in page.items]
    return await render(request, "billing/settlements.html", status_code=status_code, title=gettext("Settlements"), page=page,
                        filters=shown, kinds=st.KINDS, result=result, values=values or {}, errors=errors or {},
                        installation=scope.is_global)


@get("/settlements", opt={"tenant": SCOPED})
async def settlement_list(request: Request) -> Template:
    return await _settlement_page(request)


@post("/settlements/run", opt={"tenant": GLOBAL_ONLY})
async def settlement_run(request: Request) -> Template:
    form = await _form(request)
    try:
        start, end = period_of(form)
        result = await st.rerun(start, end)
        await audit_settlement_run(request, result)
    except BillingError as exc:
        errors = _errors(exc)
        errors = {{"period_start": "from", "period_end": "to"}.get(k, k): v for k, v in errors.items()}
        return await _settlement_page(request, status_code=exc.status, values=form, errors=errors)
    return await _settlement_page(request, result=result)


@post("/settlements/{session_id:int}/void", opt={"tenant": GLOBAL_ONLY})
async def settlement_void(request: Request, session_id: int) -> Response:
    form = await _form(request)
    before = await st.settlement_row(session_id)
    try:
        after = await st.void(session_id, form.get("reason", ""))
    except BillingError as exc:
        return await _message(request, exc)
    await audited(request, "update", "settlement", session_id, before=before, after=after,
                  summary=f"settlement of session {session_id} voided")
    return Redirect("/admin/billing/settlements", status_code=303)


# -- statements ---------------------------------------------------------------------------------


async def _statement_list_page(request: Request, *, status_code: int = 200, values: dict[str, Any] | None = None,
                               errors: dict[str, str] | None = None) -> Template:
    scope = await tenant_scope(request)
    page = await paginate(request, restrict(Statement.select(), Statement.organization, scope).order_by(
        Statement.id, ascending=False), restrict(Statement.count(), Statement.organization, scope))
    page.items = [stm.statement_json(r) for r in page.items]
    return await render(request, "billing/statements.html", status_code=status_code, title=gettext("Statements"), page=page,
                        values=values or {"month": stm.last_closed_month()}, errors=errors or {},
                        timezone=billing_settings().statement_timezone, installation=scope.is_global,
                        **await _choices(scope))


@get("/statements", opt={"tenant": SCOPED})
async def statement_list(request: Request) -> Template:
    return await _statement_list_page(request)


@post("/statements", opt={"tenant": GLOBAL_ONLY})
async def statement_create(request: Request) -> Template | Redirect:
    form = await _form(request)
    try:
        kind, _, party = form.get("party", "").partition(":")
        if not party.isdigit():
            raise BillingError(N_("choose a driver, organization or leasing partner"), field="party")
        start, end = period_of(form)
        row = await stm.create_statement(kind, int(party), start, end, currency=form.get("currency") or None,
                                         created_by=_who(request), draft=form.get("mode") == "draft",
                                         close_early=bool(form.get("close_early")))
        await audited(request, "create", "statement", row["id"], after=row)
    except BillingError as exc:
        errors = _errors(exc)
        if form.get("month") and "period_end" in errors:  # the month's end
            errors = {"month": errors["period_end"]}
        return await _statement_list_page(request, status_code=exc.status, values=form, errors=errors)
    return Redirect(f"/admin/billing/statements/{row['id']}", status_code=303)


async def _statement_detail_page(request: Request, statement_id: int, *, status_code: int = 200,
                                 values: dict[str, Any] | None = None,
                                 errors: dict[str, str] | None = None) -> Template:
    row = await stm.statement_row(statement_id)
    lines = await stm.statement_lines(statement_id)
    corrected = await stm.statement_row(row["corrects"]) if row["corrects"] else None
    notes = await Statement.select().where((Statement.corrects == statement_id) & (Statement.kind == "credit_note"))
    cur = row["currency"]
    return await render(request, "billing/statement_detail.html", status_code=status_code, panel_page="statement",
                        title=f"{gettext(stm.document_title(row))} {stm.statement_number(row)}",
                        s=stm.statement_json(row), lines=stm.lines_json(lines, cur),
                        amount=lambda minor: stm.money_text(minor, cur),
                        corrected=stm.statement_json(corrected) if corrected else None,
                        credit_notes=[stm.statement_json(n) for n in notes],
                        period_open=row["period_end"] > utcnow(), values=values or {}, errors=errors or {},
                        installation=(await tenant_scope(request)).is_global)


@get("/statements/{statement_id:int}", opt={"tenant": {"statement_id": "statement"}})
async def statement_detail(request: Request, statement_id: int) -> Template:
    return await _statement_detail_page(request, statement_id)


@post("/statements/{statement_id:int}/void", opt={"tenant": GLOBAL_ONLY})
async def statement_void(request: Request, statement_id: int) -> Response:
    try:
        before = await stm.statement_row(statement_id)
        after = await stm.void_statement(statement_id)
    except BillingError as exc:
        return await _message(request, exc)
    await audited(request, "update", "statement", statement_id, before=before, after=after)
    return Redirect(f"/admin/billing/statements/{statement_id}", status_code=303)


@post("/statements/{statement_id:int}/issue", opt={"tenant": GLOBAL_ONLY})
async def statement_issue(request: Request, statement_id: int) -> Response:
    form = await _form(request)
    try:
        before = await stm.statement_row(statement_id)
        after = await stm.issue_draft(statement_id, close_early=bool(form.get("close_early")))
    except BillingError as exc:
        errors = {"issue": _errors(exc).popitem()[1]}
        return await _statement_detail_page(request, statement_id, status_code=exc.status, values=form,
                                            errors=errors)
    await audited(request, "update", "statement", statement_id, before=before, after=after,
                  summary=f"statement {statement_id} issued as {after['number']}")
    return Redirect(f"/admin/billing/statements/{statement_id}", status_code=303)


@post("/statements/{statement_id:int}/regenerate", opt={"tenant": GLOBAL_ONLY})
async def statement_regenerate(request: Request, statement_id: int) -> Response:
    try:
        before = await stm.statement_row(statement_id)
        after = await stm.regenerate_draft(statement_id)
    except BillingError as exc:
        return await _message(request, exc)
    await audited(request, "update", "statement", statement_id, before=before, after=after)
    return Redirect(f"/admin/billing/statements/{statement_id}", status_code=303)


@post("/statements/{statement_id:int}/discard", opt={"tenant": GLOBAL_ONLY})
async def statement_discard(request: Request, statement_id: int) -> Response:
    try:
        before = await stm.discard_draft(statement_id)
    except BillingError as exc:
        return await _message(request, exc)
    await audited(request, "delete", "statement", statement_id, before=before)
    return Redirect("/admin/billing/statements", status_code=303)


@post("/statements/{statement_id:int}/credit", opt={"tenant": GLOBAL_ONLY})
async def statement_credit(request: Request, statement_id: int) -> Response:
    form = await _form(request)
    try:
        note = await stm.credit_statement(statement_id, reason=form.get("reason", ""), created_by=_who(request))
    except BillingError as exc:
        errors = {"reason": _errors(exc).popitem()[1]}
        return await _statement_detail_page(request, statement_id, status_code=exc.status, values=form,
                                            errors=errors)
    await audited(request, "create", "statement", note["id"], after=note,
                  summary=f"credit note {note['number']} for statement {statement_id}")
    return Redirect(f"/admin/billing/statements/{note['id']}", status_code=303)


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
            statement_void, statement_issue, statement_regenerate, statement_discard, statement_credit,
        ],
        guards=[admin_guard],
        exception_handlers={**ADMIN_EXCEPTION_HANDLERS, BillingError: _billing_error},
        include_in_schema=False,
    )
