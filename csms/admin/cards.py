"""Cards and the people and companies behind them: id tokens, drivers, organizations.

Tokens can be blocked and unblocked in place, given an expiry and a group, and imported in
bulk from CSV with a report line for every row that was not taken and why.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from litestar import Request, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import NotFoundException, ValidationException
from litestar.response import Redirect, Stream, Template
from piccolo.columns.combination import Combinable
from piccolo.query.functions.aggregate import Count, Max, Min
from piccolo.table import Table

from csms.admin.auth import current_user
from csms.admin.csvdownload import csv_download
from csms.admin.forms import Field, FormErrors, as_form_values, fk, parse, parse_datetime_local
from csms.admin.plans import limit_message
from csms.admin.templating import as_datetime, choices, is_htmx, paginate, render, translated_choices
from csms.api.audit import actor_of
from csms.api.crud import check_parent
from csms.api.tenancy import SCOPED, Scope, restrict, restrict_station_ids, tenant_scope, visible_station_ids
from csms.core import id_tokens
from csms.core.id_tokens import MAX_TOKEN, TOKEN_STATUSES, TOKEN_TYPES
from csms.core.offload import run_cpu
from csms.core.organizations import new_organization_plan
from csms.core.services import directory, driver_data, oidc_settings, plans
from csms.core.tables import Driver, IdToken, Organization, RefusedAuthorization
from csms.csvexport import csv_text
from csms.i18n import N_, gettext, ngettext
from csms.textsearch import contains

TYPE_CHOICES = [(t, t) for t in sorted(TOKEN_TYPES)]
STATUS_CHOICES = [(s, s) for s in ("Accepted", "Blocked", "Expired", "Invalid")]
DRIVER_KINDS = [("employee", N_("Employee")), ("guest", N_("Guest")), ("customer", N_("Customer")),
                ("leasing", N_("Leasing")), ("public", N_("Public"))]
ORG_KINDS = [("operator", N_("Operator")), ("employer", N_("Employer")), ("leasing_partner", N_("Leasing partner")),
             ("customer", N_("Customer"))]  # labels translated where shown (translated_choices, kind_labels)
OWN = {"tenant": SCOPED}
TOKEN = {"tenant": {"token_pk": "token_pk"}}


async def visible_organizations(scope: Scope) -> list[dict[str, Any]]:
    return await restrict(Organization.select(Organization.id, Organization.name), Organization.id,
                          scope).order_by(Organization.name)


def owner_problem(values: dict[str, Any], scope: Scope, key: str = "organization") -> str | None:
    """Fill in the caller's organization where none was chosen; complain about one it cannot see."""
    if values.get(key) is None:
        if scope.is_global:
            return None
        if key == "organization":
            values[key] = scope.organization
            return None
        return "Choose one of your organizations."
    return None if scope.sees(values[key]) else "Choose one of your organizations."


async def token_fields(scope: Scope) -> list[Field]:
    drivers = await restrict(Driver.select(Driver.id, Driver.name), Driver.organization, scope).order_by(
        Driver.name).limit(2000)
    orgs = await visible_organizations(scope)
    return [
        Field("id_token", N_("Id token"), required=True, maxlength=MAX_TOKEN,
              help=N_("The card's UID or the token text (up to 36 characters; OCPP 1.6 stations read 20).")),
        Field("type", N_("Type"), "select", required=True, choices=TYPE_CHOICES),
        Field("status", N_("Status"), "select", required=True, choices=STATUS_CHOICES),
        Field("label", N_("Label"), maxlength=200, help=N_("Printed number or a note.")),
        Field("group_id", N_("Group"), maxlength=255, help=N_("Tokens of one group may stop each other's sessions.")),
        Field("expires_at", N_("Expires at (UTC)"), "datetime"),
        Field("driver", N_("Driver"), "select", choices=choices(drivers)),
        Field("organization", N_("Organization"), "select", choices=choices(orgs)),
    ]


def token_filters(params: Any) -> tuple[list[Combinable], dict[str, str]]:
    """Conditions of the token list's search (``q``), ``status`` and ``group``, and the values shown back."""
    q, status, group = params.get("q", "").strip(), params.get("status", ""), params.get("group", "").strip()
    conds: list[Combinable] = []
    if q:
        conds.append(contains(IdToken.id_token, q) | contains(IdToken.label, q)
                     | contains(IdToken.driver.name, q))
    if status in TOKEN_STATUSES:
        conds.append(IdToken.status == status)
    if group:
        conds.append(IdToken.group_id == group)
    return conds, {"q": q, "status": status, "group": group}


def _token_columns() -> list[Any]:
    return [*IdToken.all_columns(), IdToken.driver.name.as_alias("driver_name"),
            IdToken.driver.email.as_alias("driver_email"), IdToken.organization.name.as_alias("organization_name")]


@get("/admin/tokens", include_in_schema=False, opt=OWN)
async def token_list(request: Request) -> Template:
    conds, shown = token_filters(request.query_params)
    scope = await tenant_scope(request)
    query = restrict(IdToken.select(*_token_columns()), IdToken.organization, scope)
    count = restrict(IdToken.count(), IdToken.organization, scope)
    for c in conds:
        query, count = query.where(c), count.where(c)
    page = await paginate(request, query.order_by(IdToken.id_token), count)
    return await render(request, "cards/tokens.html", title=gettext("Cards and tokens"), page=page, statuses=STATUS_CHOICES,
                        query_string=request.url.query, q=shown["q"], status=shown["status"], group=shown["group"])


EXPORT_COLUMNS = ["id_token", "type", "status", "label", "group_id", "expires_at", "driver_email", "organization",
                  "driver_name"]


def _iso(value: Any) -> str:
    when = as_datetime(value)
    return when.isoformat() if when else ""


def _token_csv_rows(batch: list[dict[str, Any]]) -> str:
    """Tokens as CSV lines in the import's columns (so an export can be edited and imported again),
    then the driver's name; text made formula-safe."""
    return csv_text([[r["id_token"], r["type"], r["status"], r["label"], r["group_id"] or "",
                      _iso(r["expires_at"]), r["driver_email"] or "",
                      r["organization_name"] or "", r["driver_name"] or ""] for r in batch])


@get("/admin/tokens.csv", include_in_schema=False, opt=OWN)
async def token_csv(request: Request) -> Stream:
    """The filtered tokens of the caller's organizations as CSV, streamed in chunks formatted off
    the event loop."""
    conds, _ = token_filters(request.query_params)
    scope = await tenant_scope(request)

    def query() -> Any:
        q = restrict(IdToken.select(*_token_columns()), IdToken.organization, scope)
        for c in conds:
            q = q.where(c)
        return q.order_by(IdToken.id_token).order_by(IdToken.id)

    return csv_download("tokens", EXPORT_COLUMNS, query, _token_csv_rows)


async def _token(token_pk: int) -> dict[str, Any]:
    row = await IdToken.select(*IdToken.all_columns(), IdToken.driver.name.as_alias("driver_name"),
                               IdToken.organization.name.as_alias("organization_name")).where(
        IdToken.id == token_pk).first()
    if row is None:
        raise NotFoundException(gettext("There is no token %(token)s.", token=token_pk))
    return row


async def _token_form(request: Request, token_pk: int | None, values: dict[str, Any], errors: FormErrors,
                      status_code: int = 200) -> Template:
    extra: dict[str, Any] = {}
    if token_pk is not None:
        token = await IdToken.select(IdToken.id_token).where(IdToken.id == token_pk).first()
        if token is not None:
            extra["refusals"] = await refusals(await tenant_scope(request), id_token=token["id_token"])
    return await render(request, "cards/token_form.html", status_code=status_code, **extra,
                        title=gettext("New token") if token_pk is None else gettext("Edit token %(token)s", token=values.get("id_token", "")),
                        fields=await token_fields(await tenant_scope(request)), values=values, errors=errors,
                        action="/admin/tokens/new" if token_pk is None else f"/admin/tokens/{token_pk}/edit",
                        cancel="/admin/tokens", submit=gettext("Save token"),
                        delete=None if token_pk is None else f"/admin/tokens/{token_pk}/delete")


@get("/admin/tokens/new", include_in_schema=False, opt=OWN)
async def token_new(request: Request) -> Template:
    """The new-token form; ``id_token`` and ``type`` in the query fill it in (a refused token made a card)."""
    params = request.query_params
    token_type = params.get("type", "")
    return await _token_form(request, None, {"id_token": params.get("id_token", "")[:MAX_TOKEN],
                                             "type": token_type if token_type in TOKEN_TYPES else "ISO14443",
                                             "status": "Accepted"}, FormErrors())


async def _save_token(request: Request, token_pk: int | None) -> Template | Redirect:
    raw = await request.form()
    scope = await tenant_scope(request)
    values, errors = parse(await token_fields(scope), raw)
    values["driver"], values["organization"] = fk(values.get("driver")), fk(values.get("organization"))
    if problem := owner_problem(values, scope):
        errors["organization"] = problem
    if values["driver"] is not None and not await restrict(
            Driver.exists().where(Driver.id == values["driver"]), Driver.organization, scope):
        errors["driver"] = gettext("Choose one of your drivers.")
    values["group_id"] = values.get("group_id") or None
    token = values.get("id_token")
    if token and "id_token" not in errors and await id_tokens.taken(token, other_than=token_pk):
        errors["id_token"] = f"The token {token} already exists."
    if not errors:
        actor, actor_organization = await actor_of(request)
        try:
            if token_pk is None:
                await id_tokens.create(values, actor=actor, actor_organization=actor_organization)
            else:
                await id_tokens.update(token_pk, values, actor=actor, actor_organization=actor_organization)
        except id_tokens.TokenExists:  # taken since the check above
            errors["id_token"] = f"The token {token} already exists."
        except id_tokens.InvalidToken as exc:  # the form's fields check these first
            errors[exc.field] = str(exc)
    if errors:
        return await _token_form(request, token_pk, {k: raw.get(k, "") for k in raw}, errors, 422)
    return Redirect("/admin/tokens?" + (f"q={token}" if token else ""), status_code=303)


@post("/admin/tokens/new", include_in_schema=False, opt=OWN)
async def token_create(request: Request) -> Template | Redirect:
    return await _save_token(request, None)


@get("/admin/tokens/{token_pk:int}/edit", include_in_schema=False, opt=TOKEN)
async def token_edit(request: Request, token_pk: int) -> Template:
    row = await _token(token_pk)
    return await _token_form(request, token_pk, as_form_values(await token_fields(await tenant_scope(request)), row),
                             FormErrors())


@post("/admin/tokens/{token_pk:int}/edit", include_in_schema=False, opt=TOKEN)
async def token_update(request: Request, token_pk: int) -> Template | Redirect:
    await _token(token_pk)
    return await _save_token(request, token_pk)


@post("/admin/tokens/{token_pk:int}/status", include_in_schema=False, opt=TOKEN)
async def token_set_status(request: Request, token_pk: int) -> Template | Redirect:
    """Block or unblock a token; HTMX swaps the row in place."""
    before = await _token(token_pk)
    status = (await request.form()).get("status", "")
    if status not in ("Accepted", "Blocked"):
        raise NotFoundException(gettext("Tokens are blocked or unblocked here."))
    actor, actor_organization = await actor_of(request)
    await id_tokens.set_status(token_pk, status, actor=actor, actor_organization=actor_organization)
    if is_htmx(request):
        return await render(request, "cards/_token_row.html", t=await _token(token_pk), flash=True)
    return Redirect("/admin/tokens", status_code=303)


@post("/admin/tokens/{token_pk:int}/delete", include_in_schema=False, opt=TOKEN)
async def token_delete(request: Request, token_pk: int) -> Redirect:
    before = await _token(token_pk)
    actor, actor_organization = await actor_of(request)
    await id_tokens.delete(token_pk, actor=actor, actor_organization=actor_organization, shown=before)
    return Redirect("/admin/tokens", status_code=303)


# -- refused authorizations --------------------------------------------------------------------

REFUSALS_SHOWN = 20


async def refusals(scope: Scope, *, station_id: str | None = None, id_token: str | None = None,
                   limit: int = REFUSALS_SHOWN) -> dict[str, Any]:
    """The newest refusals at the stations ``scope`` sees (of one station or one token), each with
    the card it is (``card``: its id, when the caller sees it) or ``unknown`` when no card has it."""
    query = restrict_station_ids(RefusedAuthorization.select(), RefusedAuthorization.station_id,
                                 await visible_station_ids(scope))
    count = restrict_station_ids(RefusedAuthorization.count(), RefusedAuthorization.station_id,
                                 await visible_station_ids(scope))
    for column, value in ((RefusedAuthorization.station_id, station_id), (RefusedAuthorization.id_token, id_token)):
        if value is not None:
            query, count = query.where(column == value), count.where(column == value)
    items = await query.order_by(RefusedAuthorization.id, ascending=False).limit(limit)
    tokens = sorted({r["id_token"] for r in items})
    known = {r["id_token"] for r in await IdToken.select(IdToken.id_token).where(IdToken.id_token.is_in(tokens))} \
        if tokens else set()
    cards = {r["id_token"]: r["id"] for r in await restrict(
        IdToken.select(IdToken.id, IdToken.id_token).where(IdToken.id_token.is_in(tokens)), IdToken.organization,
        scope)} if tokens else {}
    for r in items:
        r["card"], r["unknown"] = cards.get(r["id_token"]), r["id_token"] not in known
        r["add_type"] = r["token_type"] if r["token_type"] in TOKEN_TYPES else ""
    return {"items": items, "total": await count}


@get("/admin/tokens/refused", include_in_schema=False, opt=OWN)
async def refused_tokens(request: Request) -> Template:
    """Tokens no card has that stations were refused, newest first, with where and how often;
    each can be made a card."""
    stations = await visible_station_ids(await tenant_scope(request))
    unknown = RefusedAuthorization.id_token.not_in(IdToken.select(IdToken.id_token))
    query = restrict_station_ids(RefusedAuthorization.select(
        RefusedAuthorization.id_token, Max(RefusedAuthorization.token_type, alias="token_type"),
        Count(RefusedAuthorization.id, alias="refusals"), Min(RefusedAuthorization.timestamp, alias="first_at"),
        Max(RefusedAuthorization.timestamp, alias="last_at"), Max(RefusedAuthorization.id, alias="last_id"),
    ), RefusedAuthorization.station_id, stations).where(unknown).group_by(RefusedAuthorization.id_token)
    count = restrict_station_ids(RefusedAuthorization.count(distinct=[RefusedAuthorization.id_token]),
                                 RefusedAuthorization.station_id, stations).where(unknown)
    page = await paginate(request, query.order_by(Max(RefusedAuthorization.id), ascending=False), count)
    last = {r["id"]: r for r in await RefusedAuthorization.select(
        RefusedAuthorization.id, RefusedAuthorization.station_id, RefusedAuthorization.status).where(
        RefusedAuthorization.id.is_in([r["last_id"] for r in page.items] or [-1]))}
    for r in page.items:
        r["last"] = last.get(r["last_id"], {})
        r["add_type"] = r["token_type"] if r["token_type"] in TOKEN_TYPES else ""
    return await render(request, "cards/refused.html", title=gettext("Refused unknown tokens"), page=page)


# -- bulk import -------------------------------------------------------------------------------

IMPORT_COLUMNS = ["id_token", "type", "status", "label", "group_id", "expires_at", "driver_email", "organization"]


async def import_tokens(text: str, *, update_existing: bool, scope: Scope, actor: str = "",
                        actor_organization: int | None = None) -> list[dict[str, Any]]:
    """Import tokens from CSV text; return one report line per data row. The file is read and
    checked in the CPU pool (it may hold many thousands of rows), then written in one transaction
    (:func:`csms.core.id_tokens.import_rows`, which logs it as one entry of ``actor``). Drivers
    and organizations are looked up among those the caller sees; a token of another tenant is
    never overwritten."""
    drivers = {r["email"].lower(): r["id"] for r in await restrict(Driver.select(Driver.id, Driver.email),
                                                                    Driver.organization, scope) if r["email"]}
    orgs = {r["name"].lower(): r["id"] for r in await visible_organizations(scope)}
    existing = {r["id_token"] for r in await IdToken.select(IdToken.id_token)}
    mine = {r["id_token"] for r in await restrict(IdToken.select(IdToken.id_token), IdToken.organization, scope)}
    report, to_create, to_update = await run_cpu(_check_import, text, drivers, orgs, existing, update_existing,
                                                 existing - mine, scope.organization)
    taken = {values["id_token"]: values for values in [*to_create, *to_update]}
    rows = [(r["result"], taken[r["id_token"]]) for r in report
            if r["result"] in ("created", "updated") and r["id_token"] in taken]
    await id_tokens.import_rows(rows, actor=actor, actor_organization=actor_organization, source="CSV import")
    return report


def _check_import(text: str, drivers: dict[str, int], orgs: dict[str, int], existing: set[str],
                  update_existing: bool, foreign: frozenset[str] | set[str] = frozenset(),
                  default_org: int | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(report, rows to create, rows to update) of CSV ``text``; no database access."""
    report: list[dict[str, Any]] = []
    delimiter = csv_delimiter(text)
    try:
        reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
        raw_header = [h.strip() for h in (reader.fieldnames or [])]
        header = [h.lower() for h in raw_header]
    except csv.Error as exc:
        return [{"line": 1, "id_token": "", "result": "rejected", "reason": f"not readable as CSV: {exc}"}], [], []
    if "id_token" not in header:
        return [{"line": 1, "id_token": "", "result": "rejected", "reason": _header_problem(raw_header, delimiter)}], [], []
    reader.fieldnames = header
    seen: set[str] = set()
    to_create: list[dict[str, Any]] = []
    to_update: list[dict[str, Any]] = []
    try:
        rows = list(reader)
    except csv.Error as exc:
        return [{"line": reader.line_num, "id_token": "", "result": "rejected", "reason": f"CSV error: {exc}"}], [], []
    for n, row in enumerate(rows, start=2):
        get = lambda k: (row.get(k) or "").strip()  # noqa: E731
        token = get("id_token")
        reasons = []
        if not token:
            reasons.append("id_token is empty")
        elif len(token) > MAX_TOKEN:
            reasons.append(f"id_token is longer than {MAX_TOKEN} characters")
        elif token in seen:
            reasons.append("id_token appears more than once in the file")
        elif token in foreign or (token in existing and not update_existing):
            reasons.append("id_token already exists (tick “update existing tokens” to overwrite)")
        type_ = get("type") or "ISO14443"
        if type_ not in TOKEN_TYPES:
            reasons.append(f"unknown type “{type_}” (one of {', '.join(sorted(TOKEN_TYPES))})")
        status = get("status") or "Accepted"
        if status not in TOKEN_STATUSES:
            reasons.append(f"unknown status “{status}” (one of {', '.join(sorted(TOKEN_STATUSES))})")
        expires_at = None
        if get("expires_at"):
            try:
                expires_at = parse_datetime_local(get("expires_at"))
            except ValueError:
                reasons.append(f"expires_at “{get('expires_at')}” is not a date (YYYY-MM-DD or ISO 8601)")
        driver = None
        if get("driver_email"):
            driver = drivers.get(get("driver_email").lower())
            if driver is None:
                reasons.append(f"no driver with e-mail {get('driver_email')}")
        org = default_org
        if get("organization"):
            org = orgs.get(get("organization").lower())
            if org is None:
                reasons.append(f"no organization named “{get('organization')}”")
        if len(get("label")) > 200:
            reasons.append("label is longer than 200 characters")
        if reasons:
            report.append({"line": n, "id_token": token, "result": "rejected", "reason": "; ".join(reasons)})
            continue
        seen.add(token)
        values = dict(id_token=token, type=type_, status=status, label=get("label"), group_id=get("group_id") or None,
                      expires_at=expires_at, driver=driver, organization=org)
        if token in existing:
            to_update.append(values)
            report.append({"line": n, "id_token": token, "result": "updated", "reason": ""})
        else:
            to_create.append(values)
            report.append({"line": n, "id_token": token, "result": "created", "reason": ""})
    if not rows:
        report.append({"line": 2, "id_token": "", "result": "rejected", "reason": "the file has no data rows"})
    return report, to_create, to_update


DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs"}


def csv_delimiter(text: str) -> str:
    """The delimiter of a CSV text: comma, semicolon (the spreadsheet default in much of Europe)
    or tab, as ``csv.Sniffer`` reads the first lines; a comma when it cannot tell."""
    sample = "\n".join(text.lstrip("\ufeff").splitlines()[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t").delimiter
    except csv.Error:
        return ","


def _header_problem(header: list[str], delimiter: str) -> str:
    """Why the first line is not a usable header, in words."""
    known = [h.lower() for h in header if h.lower() in IMPORT_COLUMNS]
    expected = f"id_token (and optionally: {', '.join(IMPORT_COLUMNS[1:])})"
    if not [h for h in header if h]:
        return f"the first line is empty: it must be the header naming the columns, {expected}"
    if not known:
        return (f"the first line must be a header naming the columns, {expected}; it reads "
                f"“{delimiter.join(header)[:80]}” (separated by {DELIMITER_NAMES.get(delimiter, delimiter)}), "
                "which names none of them: add the header line")
    return (f"the header has no id_token column (it names {', '.join(known)}); "
            f"the columns are {expected}")


@get("/admin/tokens/import", include_in_schema=False, opt=OWN)
async def token_import_form(request: Request) -> Template:
    return await render(request, "cards/import.html", title=gettext("Import tokens"), columns=IMPORT_COLUMNS, report=None)


@post("/admin/tokens/import", include_in_schema=False, opt=OWN)
async def token_import(request: Request) -> Template:
    form = await request.form()
    upload = form.get("file")
    text = ""
    if isinstance(upload, UploadFile):
        data = await upload.read()
        text = data.decode("utf-8-sig", errors="replace")
    if not text.strip():
        text = str(form.get("text", "") or "")
    if not text.strip():
        return await render(request, "cards/import.html", status_code=422, title=gettext("Import tokens"),
                            columns=IMPORT_COLUMNS, report=None, error=gettext("Choose a CSV file or paste CSV text."))
    actor, actor_organization = await actor_of(request)
    report = await import_tokens(text, update_existing=str(form.get("update_existing", "")) in ("on", "true", "1"),
                                 scope=await tenant_scope(request), actor=actor, actor_organization=actor_organization)
    summary = {k: sum(1 for r in report if r["result"] == k) for k in ("created", "updated", "rejected")}
    return await render(request, "cards/import.html", title=gettext("Import tokens"), columns=IMPORT_COLUMNS, report=report,
                        summary=summary)


# -- drivers and organizations ------------------------------------------------------------------

async def driver_fields(scope: Scope) -> list[Field]:
    orgs = await visible_organizations(scope)
    return [
        Field("name", N_("Name"), required=True, maxlength=200, autocomplete="name"),
        Field("email", N_("E-mail"), "email", maxlength=200, autocomplete="email"),
        Field("phone", N_("Phone"), maxlength=64, autocomplete="tel"),
        Field("kind", N_("Kind"), "select", required=True, choices=translated_choices(DRIVER_KINDS)),
        Field("organization", N_("Organization"), "select", choices=choices(orgs)),
        Field("notes", N_("Notes"), "textarea"),
    ]


async def org_fields(scope: Scope) -> list[Field]:
    return [
        Field("name", N_("Name"), required=True, maxlength=200, autocomplete="organization"),
        Field("kind", N_("Kind"), "select", required=True, choices=translated_choices(ORG_KINDS)),
        Field("parent", N_("Part of"), "select", choices=choices(await visible_organizations(scope)),
              help=N_("The organization above this one: its users see this one's stations, cards and sessions.")),
        Field("vat_id", N_("VAT id"), maxlength=64),
        Field("email", N_("E-mail"), "email", maxlength=200),
        Field("address", N_("Address"), "textarea"),
        Field("publish", N_("Publish its sites"), "checkbox",
              help=N_("Off: none of this organization's sites is shown on the public map, in the public "
                      "Locations feed or to roaming partners, whatever each site's own setting says.")),
        *([Field("plan", N_("Plan"), "select", choices=[(str(p["id"]), p["name"]) for p in await plans.plans()],
                 blank_label=gettext("None (inherited)"),
                 help=N_("Its features and limits. A plan with fewer stations, hubs, users or API keys than "
                         "the organization has is refused."))] if scope.is_global else []),
    ]


OIDC_GROUP = N_("Drivers sign in with OpenID Connect")


def oidc_fields(has_secret: bool) -> list[Field]:
    """An organization's own OpenID Connect provider for the driver portal
    (:mod:`csms.core.services.oidc_settings`): on the organization form of admins only."""
    return [
        Field("oidc_issuer", N_("Issuer URL"), "url", maxlength=300, group=OIDC_GROUP,
              placeholder="https://login.example.org",
              help=N_("Empty: none. Register the address /driver/oidc/callback of this site as the redirect URI at "
                      "the provider.")),
        Field("oidc_client_id", N_("Client id"), maxlength=200, group=OIDC_GROUP),
        Field("oidc_client_secret", N_("Client secret"), "password", maxlength=500, group=OIDC_GROUP,
              autocomplete="new-password",
              help=N_("A secret is stored; it is never shown. Leave empty to keep it.") if has_secret else
              N_("Never shown after saving. Empty: a public client (PKCE only).")),
        Field("oidc_email_domain", N_("Allowed e-mail domain"), maxlength=200, group=OIDC_GROUP,
              placeholder="example.org", help=N_("Optional: only addresses of this domain sign in this way.")),
        Field("oidc_label", N_("Button label"), maxlength=100, group=OIDC_GROUP,
              help=N_("The driver portal shows “Sign in with” and this; empty: the organization's name.")),
    ]


async def may_set_oidc(request: Request) -> bool:
    user = await current_user(request)
    return user is not None and user.can("admin")


def oidc_errors(values: dict[str, Any]) -> FormErrors:
    """What is wrong with the ``oidc_*`` values of the organization form."""
    errors = FormErrors()
    if not values.get("oidc_issuer"):
        return errors
    problem = oidc_settings.issuer_problem(str(values["oidc_issuer"]))
    if problem == "not_https":
        errors["oidc_issuer"] = gettext("The issuer URL must start with https:// (plain http:// only for this "
                                        "machine, to try a provider out).")
    elif problem:
        errors["oidc_issuer"] = gettext("The issuer URL must be a web address without ? or #, such as "
                                        "https://login.example.org.")
    if not values.get("oidc_client_id"):
        errors["oidc_client_id"] = gettext("%(label)s is required.", label=gettext("Client id"))
    if not oidc_settings.domain_ok(oidc_settings.normal_domain(str(values.get("oidc_email_domain") or ""))):
        errors["oidc_email_domain"] = gettext("“%(value)s” is not a domain name such as example.org.",
                                              value=values.get("oidc_email_domain"))
    return errors


class _Entity:
    """The list, form and save steps shared by drivers and organizations."""

    # what the form says of each kind (whole sentences, for the translations)
    WORDS = {"driver": (N_("New driver"), N_("Edit driver %(name)s"), N_("Save driver"), N_("There is no driver %(pk)s.")),
             "organization": (N_("New organization"), N_("Edit organization %(name)s"), N_("Save organization"),
                              N_("There is no organization %(pk)s."))}

    def __init__(self, table: type[Table], kind: directory.Kind, slug: str, singular: str, plural: str,
                 fields: Any) -> None:
        self.table, self.slug, self.singular, self.plural, self._fields = table, slug, singular, plural, fields
        self.kind = kind
        self.pk = table._meta.primary_key  # ``table.id``: Piccolo's default primary key

    async def fields(self, scope: Scope) -> list[Field]:
        return await self._fields(scope)

    async def form_fields(self, request: Request, pk: int | None) -> list[Field]:
        """The form's fields: for an admin, an organization's OpenID Connect provider too."""
        fields = await self.fields(await tenant_scope(request))
        if self.table is Organization and await may_set_oidc(request):
            has_secret = pk is not None and (await oidc_settings.settings_of(pk))["has_secret"]
            fields += oidc_fields(has_secret)
        return fields

    async def form_values(self, request: Request, pk: int) -> dict[str, Any]:
        """A stored row as the form shows it (an organization's provider without its secret)."""
        values = as_form_values(await self.form_fields(request, pk), await self.row(pk))
        if self.table is Organization and await may_set_oidc(request):
            values.update({f"oidc_{k}": v for k, v in (await oidc_settings.settings_of(pk)).items() if k != "has_secret"})
        return values

    async def row(self, pk: int) -> dict[str, Any]:
        row = await self.table.select().where(self.pk == pk).first()
        if row is None:
            raise NotFoundException(gettext(self.WORDS[self.singular][3], pk=pk))
        return row

    async def form(self, request: Request, pk: int | None, values: dict[str, Any], errors: FormErrors,
                   status_code: int = 200) -> Template:
        base = f"/admin/{self.slug}"
        new, edit, save, _missing = self.WORDS[self.singular]
        title = gettext(new) if pk is None else gettext(edit, name=values.get("name", ""))
        usage = await plans.usage(pk) if self.table is Organization and pk is not None else None
        return await render(request, "cards/organization_form.html" if usage else "form.html",
                            status_code=status_code, title=title, usage=usage, limit_words=plans.LIMIT_WORDS,
                            fields=await self.form_fields(request, pk), values=values, errors=errors,
                            action=f"{base}/new" if pk is None else f"{base}/{pk}/edit", cancel=base,
                            submit=gettext(save),
                            delete=None if pk is None else f"{base}/{pk}/delete")

    async def save(self, request: Request, pk: int | None) -> Template | Redirect:
        raw = await request.form()
        scope = await tenant_scope(request)
        values, errors = parse(await self.form_fields(request, pk), raw)
        oidc = {k.removeprefix("oidc_"): values.pop(k) for k in list(values) if k.startswith("oidc_")}
        if oidc:
            errors.update(oidc_errors({f"oidc_{k}": v for k, v in oidc.items()}))
        if "organization" in values:
            values["organization"] = fk(values["organization"])
            if problem := owner_problem(values, scope):
                errors["organization"] = problem
        if "plan" in values:
            values["plan"] = fk(values["plan"])
        if "parent" in values:
            values["parent"] = fk(values["parent"])
            if pk is not None and pk == scope.organization:
                values.pop("parent")  # one's own organization stays where it is
            elif pk is None and values["parent"] is None and not scope.is_global:
                values["parent"] = scope.organization
            elif problem := owner_problem(values, scope, "parent"):
                errors["parent"] = problem
            if "parent" in values and pk is not None and "parent" not in errors:
                try:
                    await check_parent(pk, values["parent"])
                except Exception as exc:  # ValidationException: shown on the form
                    errors["parent"] = str(getattr(exc, "detail", exc))
        for key in ("email", "vat_id", "phone"):
            if key in values and not values[key]:
                values[key] = None
        if self.table is Organization and values.get("name") and "name" not in errors:
            clash = Organization.exists().where(Organization.name == values["name"])
            if pk is not None:
                clash = clash.where(Organization.id != pk)
            if await clash:
                errors["name"] = f"An organization named {values['name']} already exists."
        if errors:
            form_values = {k: raw.get(k, "") for k in raw if k != "oidc_client_secret"}  # a secret is never sent back
            if "publish" in values:
                form_values["publish"] = values["publish"]
            return await self.form(request, pk, form_values, errors, 422)
        actor, actor_organization = await actor_of(request)
        if pk is None:
            pk = await directory.create(self.kind, values, actor=actor, actor_organization=actor_organization)
        else:
            await self.row(pk)
            try:
                await directory.update(self.kind, pk, values, actor=actor, actor_organization=actor_organization)
            except plans.PlanLimitReached as exc:
                errors["plan" if "plan" in values else "parent"] = limit_message(exc)
                return await self.form(request, pk, {k: raw.get(k, "") for k in raw if k != "oidc_client_secret"},
                                       errors, 409)
        if oidc:
            await oidc_settings.save(pk, oidc, actor=actor, actor_organization=actor_organization)
        return Redirect(f"/admin/{self.slug}", status_code=303)


DRIVERS = _Entity(Driver, "driver", "drivers", "driver", "Drivers", driver_fields)
ORGANIZATIONS = _Entity(Organization, "organization", "organizations", "organization", "Organizations", org_fields)


@get("/admin/drivers", include_in_schema=False, opt=OWN)
async def driver_list(request: Request) -> Template:
    q = request.query_params.get("q", "").strip()
    scope = await tenant_scope(request)
    query = restrict(Driver.select(*Driver.all_columns(), Driver.organization.name.as_alias("organization_name")),
                     Driver.organization, scope)
    count = restrict(Driver.count(), Driver.organization, scope)
    if q:
        cond = contains(Driver.name, q) | contains(Driver.email, q)
        query, count = query.where(cond), count.where(cond)
    page = await paginate(request, query.order_by(Driver.name), count)
    token_counts: dict[int, int] = {}
    ids = [r["id"] for r in page.items]
    if ids:
        for r in await IdToken.select(IdToken.driver).where(IdToken.driver.is_in(ids)):
            token_counts[r["driver"]] = token_counts.get(r["driver"], 0) + 1
    return await render(request, "cards/drivers.html", title=gettext("Drivers"), page=page, q=q, token_counts=token_counts,
                        kind_labels=dict(DRIVER_KINDS))


@get("/admin/organizations", include_in_schema=False, opt=OWN)
async def organization_list(request: Request) -> Template:
    q = request.query_params.get("q", "").strip()
    scope = await tenant_scope(request)
    query = restrict(Organization.select(*Organization.all_columns(),
                                         Organization.parent.name.as_alias("parent_name")), Organization.id, scope)
    count = restrict(Organization.count(), Organization.id, scope)
    if q:
        cond = contains(Organization.name, q)
        query, count = query.where(cond), count.where(cond)
    page = await paginate(request, query.order_by(Organization.name), count)
    return await render(request, "cards/organizations.html", title=gettext("Organizations"), page=page, q=q,
                        kind_labels=dict(ORG_KINDS), plan_names=await plans.plan_names())


def _entity_routes(entity: _Entity) -> list[Any]:
    base = f"/admin/{entity.slug}"
    one = {"tenant": {"pk": entity.singular}}

    @get(f"{base}/new", include_in_schema=False, name=f"{entity.slug}:new", opt=OWN)
    async def new(request: Request) -> Template:
        defaults: dict[str, Any] = {"kind": "guest"} if entity.table is Driver else {
            "kind": "customer", "publish": True, "plan": str(await new_organization_plan() or "")}
        return await entity.form(request, None, defaults, FormErrors())

    @post(f"{base}/new", include_in_schema=False, name=f"{entity.slug}:create", opt=OWN)
    async def create(request: Request) -> Template | Redirect:
        return await entity.save(request, None)

    @get(f"{base}/{{pk:int}}/edit", include_in_schema=False, name=f"{entity.slug}:edit", opt=one)
    async def edit(request: Request, pk: int) -> Template:
        return await entity.form(request, pk, await entity.form_values(request, pk), FormErrors())

    @post(f"{base}/{{pk:int}}/edit", include_in_schema=False, name=f"{entity.slug}:update", opt=one)
    async def update(request: Request, pk: int) -> Template | Redirect:
        await entity.row(pk)
        return await entity.save(request, pk)

    @post(f"{base}/{{pk:int}}/delete", include_in_schema=False, name=f"{entity.slug}:delete", opt=one)
    async def remove(request: Request, pk: int) -> Redirect:
        before = await entity.row(pk)
        if entity.table is Organization and pk == (await tenant_scope(request)).organization:
            raise ValidationException(gettext("You cannot delete your own organization."))
        # sessions and tokens keep their history: their foreign keys are set to NULL
        actor, actor_organization = await actor_of(request)
        try:
            await directory.delete(entity.kind, pk, actor=actor, actor_organization=actor_organization)
        except directory.OrganizationInUse as exc:
            raise ValidationException(
                gettext("Organizations below this one come first: move or delete them.") if exc.what == "organizations"
                else gettext("Users or API keys belong to this organization: move or revoke them.")) from None
        except driver_data.DriverHasSessions as exc:
            raise ValidationException(ngettext(
                "This driver has %(num)s charging session, so the record stays with it: use Erase… on the Drivers "
                "page to remove their personal data (the session stays, with an anonymised driver).",
                "This driver has %(num)s charging sessions, so the record stays with them: use Erase… on the "
                "Drivers page to remove their personal data (the sessions stay, with an anonymised driver).",
                exc.sessions)) from None
        return Redirect(base, status_code=303)

    return [new, create, edit, update, remove]


ENTITY_ROUTES = [*_entity_routes(DRIVERS), *_entity_routes(ORGANIZATIONS)]
