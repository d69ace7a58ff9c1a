"""Roaming pages of the operator admin (``/admin/roaming``): partners with their status and
roles, invite/register/update/unregister, each partner's endpoints, request log and queued
pushes, and what was exchanged (tokens, sessions, CDRs, commands). Rendered with the admin's
layout (``admin/base.html``); every action goes through the same functions as the REST API."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Router, get, post
from litestar.exceptions import HTTPException, PermissionDeniedException, ValidationException
from litestar.response import Redirect, Template

from csms.plugin_api import (
    ADMIN_EXCEPTION_HANDLERS, N_, SCOPED, Organization, Scope, admin_guard, audited, current_user,
    gettext, notice_text, notice_url, owner_for_new, render, restrict, tenant_scope,
)
from plugins.roaming_ocpi import outbox, sync
from plugins.roaming_ocpi.api import audit_partner, partner_json, pull_from
from plugins.roaming_ocpi.config import ocpi_settings
from plugins.roaming_ocpi.hubclientinfo import client_infos
from plugins.roaming_ocpi.parties import (
    base_url,
    partner_row,
    partners_changed,
    versions_url,
)
from plugins.roaming_ocpi.registration import (
    RegistrationError,
    invite,
    register_with,
    start_registration,
    unregister,
    update_credentials,
)
from plugins.roaming_ocpi.tenancy import by_partner, restrict_partners
from plugins.roaming_ocpi.v211 import offered
from plugins.roaming_ocpi.tables import (
    Cdr,
    CommandRecord,
    Outbox,
    Partner,
    RemoteObject,
    RequestLog,
    SessionLink,
)


# A partner's status, translated where shown (the stored value stays English).
PARTNER_STATUSES = (N_("invited"), N_("pending"), N_("registered"), N_("failed"), N_("unregistered"))

# What an action did, shown on the page it redirects to: the redirect carries the notice's key
# (``?m=registered``) and its parameters, and the page translates it in the viewer's language.
NOTICES = {
    "credentials": N_("Credentials renewed and endpoints fetched again."),
    "registered": N_("Registered."),
    "unregistered": N_("Unregistered."),
    "unregistered_warning": N_("Unregistered, but %(warning)s."),
    "pushed": N_("Everything queued for the partner."),
    "pulled": N_("Pulled: %(counts)s."),
    "raw": N_("Token encoding switched."),
    "failed": N_("Failed: %(reason)s."),
    "requeued": N_("Push %(push)s queued again."),
}


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: str(v).strip() for k, v in form.items() if k != "_csrf_token"}


async def _organizations(scope: Scope) -> list[dict[str, Any]]:
    """The organizations ``scope`` may give a partner to."""
    return await restrict(Organization.select(Organization.id, Organization.name), Organization.id, scope).order_by(
        Organization.name)


async def _index(request: Request, *, status_code: int = 200, invited: dict[str, Any] | None = None,
                 error: str = "", values: dict[str, str] | None = None) -> Template:
    scope = await tenant_scope(request)
    organizations = await _organizations(scope)
    names = {o["id"]: o["name"] for o in organizations}
    partners = []
    for row in await restrict_partners(Partner.select(), scope).order_by(Partner.id).output(load_json=True):
        item = partner_json(row)
        item["pending"] = await Outbox.count().where((Outbox.partner == row["id"]) & (Outbox.status == "pending"))
        item["organization_name"] = names.get(row["organization"], "")
        partners.append(item)
    s = ocpi_settings()
    identity = {"country_code": s.country_code, "party_id": s.party_id, "roles": sorted(s.role_set),
                "versions": ", ".join(offered()),
                "versions_url": versions_url(base_url(request))}
    return await render(request, "roaming/index.html", status_code=status_code, title=gettext("Roaming"), partners=partners,
                        identity=identity, invited=invited, error=error, organizations=organizations,
                        installation_wide=scope.is_global, own_organization=scope.organization,
                        values=values or {})


async def _owner(request: Request, form: dict[str, str]) -> int | None:
    """The organization the form gives a new partner (checked: one the caller manages; empty:
    the caller's own, for a global user none, the installation's)."""
    chosen = form.get("organization", "")
    if chosen and not chosen.isdigit():
        raise ValidationException(gettext("Choose one of the listed organizations."))
    try:
        return await owner_for_new(await tenant_scope(request), int(chosen) if chosen else None,
                                   what="a roaming partner")
    except ValidationException:
        raise ValidationException(gettext("Choose one of the listed organizations.")) from None


@get("/", name="roaming:index", opt={"tenant": SCOPED})
async def roaming_index(request: Request) -> Template:
    return await _index(request)


# Every form answers HTML (``media_type``): a page, or a redirect to one, with a readable message;
# never the JSON a handler typed ``Any`` would default to.


def _role_211(form: dict[str, Any]) -> str:
    """The partner's role should it speak OCPI 2.1.1 (the form's choice; anything else: the default)."""
    return form.get("role_211", "") if form.get("role_211") in ("CPO", "EMSP") else ""


@post("/invite", opt={"role": "admin", "tenant": SCOPED}, media_type=MediaType.HTML)
async def roaming_invite(request: Request) -> Any:
    form = await _form(request)
    if not form.get("name"):
        return await _index(request, status_code=400, error=gettext("A name is required."), values=form)
    if len(form["name"]) > 200:
        return await _index(request, status_code=400, error=gettext("The name may have at most 200 characters."),
                            values=form)
    try:
        organization = await _owner(request, form)
    except ValidationException as exc:
        return await _index(request, status_code=422, error=str(exc.detail), values=form)
    partner, token_a = await invite(form["name"], raw_tokens=form.get("raw_tokens") == "on", organization=organization,
                                    role_211=_role_211(form))
    await audit_partner(request, "create", partner)
    page = await _index(request, invited={"partner": partner_json(partner), "token_a": token_a})
    page.headers["Cache-Control"] = "no-store"  # token A is shown once: not kept by the browser either
    return page


@post("/register", opt={"role": "admin", "tenant": SCOPED}, media_type=MediaType.HTML)
async def roaming_register(request: Request) -> Any:
    form = await _form(request)
    values = {k: v for k, v in form.items() if k != "token"}  # token A is not shown again
    if not (form.get("name") and form.get("versions_url") and form.get("token")):
        return await _index(request, status_code=400, error=gettext("Name, versions URL and token A are all required."),
                            values=values)
    if len(form["name"]) > 200:
        return await _index(request, status_code=400, error=gettext("The name may have at most 200 characters."),
                            values=values)
    try:
        organization = await _owner(request, form)
    except ValidationException as exc:
        return await _index(request, status_code=422, error=str(exc.detail), values=values)
    partner_id = await start_registration(form["name"], raw_tokens=form.get("raw_tokens") == "on",
                                          organization=organization, role_211=_role_211(form))
    try:
        await register_with(partner_id, form["versions_url"], form["token"], base_url(request))
    except RegistrationError as exc:
        return await _index(request, status_code=502, error=gettext(
            "Registration failed for “%(name)s”: %(reason)s. The partner is kept as failed: register again to retry.",
            name=form["name"], reason=exc.message))
    partner = await partner_row(partner_id)
    assert partner is not None
    await audit_partner(request, "create", partner)
    return Redirect(f"/admin/roaming/partners/{partner_id}", status_code=303)


ONE = {"partner_id": "roaming_partner"}  # another organization's partner: 404


@get("/partners/{partner_id:int}", opt={"tenant": ONE})
async def roaming_partner(request: Request, partner_id: int) -> Template:
    row = await partner_row(partner_id)
    if row is None:
        raise HTTPException(status_code=404, detail=gettext("No roaming partner %(partner)s.", partner=partner_id))
    log = await RequestLog.select().where(RequestLog.partner == partner_id).order_by(
        RequestLog.id, ascending=False).limit(50)
    outbox = await Outbox.select().where((Outbox.partner == partner_id) & (Outbox.status != "done")).order_by(
        Outbox.id).limit(50)
    organization = None
    if row["organization"] is not None:
        organization = await Organization.select(Organization.id, Organization.name).where(
            Organization.id == row["organization"]).first()
    return await render(request, "roaming/partner.html", title=gettext("Roaming partner %(name)s", name=row["name"]),
                        partner=partner_json(row), log=log, outbox=outbox, message=notice_text(request, NOTICES),
                        failed=request.query_params.get("m") == "failed",
                        client_info=await client_infos(partner_id), organization=organization)


@post("/partners/{partner_id:int}/{action:str}", media_type=MediaType.HTML, opt={"tenant": ONE})
async def roaming_partner_action(request: Request, partner_id: int, action: str) -> Any:
    row = await partner_row(partner_id)
    if row is None:
        raise HTTPException(status_code=404, detail=gettext("No roaming partner %(partner)s.", partner=partner_id))
    user = await current_user(request)
    if action in ("credentials", "unregister", "raw", "register") and not (user and user.can("admin")):
        raise PermissionDeniedException(gettext("This needs the admin role."))
    page = f"/admin/roaming/partners/{partner_id}"
    params: dict[str, Any] = {}
    try:
        if action == "credentials":
            await update_credentials(partner_id, base_url(request))
            key = "credentials"
        elif action == "register":
            if row["status"] == "registered":
                raise RegistrationError(gettext("already registered: renew the credentials or unregister first"))
            form = await _form(request)
            if not (form.get("versions_url") and form.get("token")):
                raise RegistrationError(gettext("the partner's versions URL and token A are both required"))
            await register_with(partner_id, form["versions_url"], form["token"], base_url(request))
            key = "registered"
        elif action == "unregister":
            warning = await unregister(partner_id)
            key, params = ("unregistered_warning", {"warning": warning}) if warning else ("unregistered", {})
            after = await partner_row(partner_id)
            assert after is not None
            await audit_partner(request, "unregister", after, before={"status": row["status"]})
        elif action == "push":
            await sync.push_everything(partner_id)
            key = "pushed"
        elif action == "pull":
            result = await pull_from(row)
            key, params = "pulled", {"counts": ", ".join(f"{k} {v}" for k, v in result.items())}
        elif action == "raw":
            await Partner.update({Partner.raw_tokens: not row["raw_tokens"]}).where(Partner.id == partner_id)
            key = "raw"
        else:
            raise HTTPException(status_code=404, detail=gettext("Unknown action %(action)s.", action=repr(action)))
    except RegistrationError as exc:
        key, params = "failed", {"reason": exc.message.rstrip(".")}
    return Redirect(notice_url(page, key, **params), status_code=303)


@get("/deliveries", opt={"tenant": SCOPED})
async def roaming_deliveries(request: Request) -> Template:
    """Pushes not delivered yet (pending, being retried) and those parked as failed, with resend:
    to the partners the caller sees."""
    return await _deliveries_page(request)


async def _deliveries_page(request: Request, *, status_code: int = 200, error: str = "") -> Template:
    scope = await tenant_scope(request)
    names = {p["id"]: p["name"] for p in await restrict_partners(Partner.select(Partner.id, Partner.name), scope)}
    partners = None if scope.is_global else list(names)
    failed = await by_partner(Outbox.select(), Outbox.partner, partners).where(
        Outbox.status.is_in(list(outbox.FAILED))).order_by(Outbox.id, ascending=False).limit(200)
    pending = await by_partner(Outbox.select(), Outbox.partner, partners).where(
        Outbox.status.is_in(["pending", "sending"])).order_by(Outbox.id).limit(200)
    return await render(request, "roaming/deliveries.html", status_code=status_code,
                        title=gettext("Roaming deliveries"), names=names, failed=failed, pending=pending,
                        message=notice_text(request, NOTICES), error=error)


@post("/deliveries/{outbox_id:int}/resend", opt={"role": "operator", "tenant": {"outbox_id": "roaming_push"}},
      media_type=MediaType.HTML)
async def roaming_resend(request: Request, outbox_id: int) -> Redirect | Template:
    try:
        row = await outbox.resend(outbox_id)
    except outbox.ResendRefused as exc:
        return await _deliveries_page(request, status_code=409, error=gettext("Not queued again: %(reason)s.",
                                                                              reason=str(exc)))
    await audited(request, "resend", "ocpi_push", outbox_id, before={"status": "failed"}, after={"status": "pending"},
                  summary=f"{row['method']} {row['object_key']} to partner {row['partner']} queued again")
    return Redirect(notice_url("/admin/roaming/deliveries", "requeued", push=outbox_id), status_code=303)


@get("/exchange", opt={"tenant": SCOPED})
async def roaming_exchange(request: Request) -> Template:
    """What was exchanged with the partners the caller sees."""
    scope = await tenant_scope(request)
    names = {p["id"]: p["name"] for p in await restrict_partners(Partner.select(Partner.id, Partner.name), scope)}
    partners = None if scope.is_global else list(names)

    async def remote(module: str) -> list[dict[str, Any]]:
        return await by_partner(RemoteObject.select(), RemoteObject.partner, partners).where(
            RemoteObject.module == module).order_by(RemoteObject.id, ascending=False).limit(50).output(load_json=True)

    tokens, remote_sessions, remote_cdrs = await remote("tokens"), await remote("sessions"), await remote("cdrs")
    links = await by_partner(SessionLink.select(), SessionLink.partner, partners).order_by(
        SessionLink.session_id, ascending=False).limit(50).output(load_json=True)
    cdrs = await by_partner(Cdr.select(), Cdr.partner, partners).order_by(Cdr.id, ascending=False).limit(50).output(
        load_json=True)
    commands = await by_partner(CommandRecord.select(), CommandRecord.partner, partners).order_by(
        CommandRecord.id, ascending=False).limit(50).output(load_json=True)
    return await render(request, "roaming/exchange.html", title=gettext("Roaming: what was exchanged"), names=names, tokens=tokens,
                        remote_sessions=remote_sessions, remote_cdrs=remote_cdrs, links=links, cdrs=cdrs,
                        commands=commands)

def roaming_admin_router() -> Router:
    return Router(
        path="/admin/roaming",
        route_handlers=[roaming_index, roaming_invite, roaming_register, roaming_partner, roaming_partner_action,
                        roaming_exchange, roaming_deliveries, roaming_resend],
        guards=[admin_guard],
        exception_handlers=ADMIN_EXCEPTION_HANDLERS,
        include_in_schema=False,
    )
