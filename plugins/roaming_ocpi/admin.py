"""Roaming pages of the operator admin (``/admin/roaming``): partners with their status and
roles, invite/register/update/unregister, each partner's endpoints, request log and queued
pushes, and what was exchanged (tokens, sessions, CDRs, commands). Rendered with the admin's
layout (``admin/base.html``); every action goes through the same functions as the REST API."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, get, post
from litestar.exceptions import HTTPException, PermissionDeniedException
from litestar.response import Redirect, Template

from csms.plugin_api import ADMIN_EXCEPTION_HANDLERS, admin_guard, current_user, render
from plugins.roaming_ocpi import sync
from plugins.roaming_ocpi.api import partner_json, pull_from
from plugins.roaming_ocpi.config import ocpi_settings
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
    unregister,
    update_credentials,
)
from plugins.roaming_ocpi.tables import (
    Cdr,
    CommandRecord,
    Outbox,
    Partner,
    RemoteObject,
    RequestLog,
    SessionLink,
)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: str(v).strip() for k, v in form.items() if k != "_csrf_token"}


async def _index(request: Request, *, status_code: int = 200, invited: dict[str, Any] | None = None,
                 error: str = "") -> Template:
    partners = []
    for row in await Partner.select().order_by(Partner.id).output(load_json=True):
        item = partner_json(row)
        item["pending"] = await Outbox.count().where((Outbox.partner == row["id"]) & (Outbox.status == "pending"))
        partners.append(item)
    s = ocpi_settings()
    identity = {"country_code": s.country_code, "party_id": s.party_id, "roles": sorted(s.role_set),
                "versions_url": versions_url(base_url(request))}
    return await render(request, "roaming/index.html", status_code=status_code, title="Roaming", partners=partners,
                        identity=identity, invited=invited, error=error)


@get("/", name="roaming:index")
async def roaming_index(request: Request) -> Template:
    return await _index(request)


@post("/invite", opt={"role": "admin"})
async def roaming_invite(request: Request) -> Any:
    form = await _form(request)
    if not form.get("name"):
        return await _index(request, status_code=400, error="A name is required.")
    partner, token_a = await invite(form["name"], raw_tokens=form.get("raw_tokens") == "on")
    return await _index(request, invited={"partner": partner_json(partner), "token_a": token_a})


@post("/register", opt={"role": "admin"})
async def roaming_register(request: Request) -> Any:
    form = await _form(request)
    if not (form.get("name") and form.get("versions_url") and form.get("token")):
        return await _index(request, status_code=400, error="Name, versions URL and token A are all required.")
    row = Partner(name=form["name"], status="pending", raw_tokens=form.get("raw_tokens") == "on")
    await row.save()
    partners_changed()
    try:
        await register_with(row.id, form["versions_url"], form["token"], base_url(request))
    except RegistrationError as exc:
        return await _index(request, status_code=502, error=f"Registration failed: {exc.message}")
    return Redirect(f"/admin/roaming/partners/{row.id}", status_code=303)


@get("/partners/{partner_id:int}")
async def roaming_partner(request: Request, partner_id: int) -> Template:
    row = await partner_row(partner_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"No roaming partner {partner_id}.")
    log = await RequestLog.select().where(RequestLog.partner == partner_id).order_by(
        RequestLog.id, ascending=False).limit(50)
    outbox = await Outbox.select().where((Outbox.partner == partner_id) & (Outbox.status != "done")).order_by(
        Outbox.id).limit(50)
    return await render(request, "roaming/partner.html", title=f"Roaming partner {row['name']}",
                        partner=partner_json(row), log=log, outbox=outbox, message=request.query_params.get("m", ""))


@post("/partners/{partner_id:int}/{action:str}")
async def roaming_partner_action(request: Request, partner_id: int, action: str) -> Any:
    row = await partner_row(partner_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"No roaming partner {partner_id}.")
    user = await current_user(request)
    if action in ("credentials", "unregister", "raw") and not (user and user.can("admin")):
        raise PermissionDeniedException("This needs the admin role.")
    message = ""
    try:
        if action == "credentials":
            await update_credentials(partner_id, base_url(request))
            message = "Credentials renewed and endpoints fetched again."
        elif action == "unregister":
            message = await unregister(partner_id) or "Unregistered."
        elif action == "push":
            await sync.push_everything(partner_id)
            message = "Everything queued for the partner."
        elif action == "pull":
            result = await pull_from(row)
            message = "Pulled: " + ", ".join(f"{k} {v}" for k, v in result.items())
        elif action == "raw":
            await Partner.update({Partner.raw_tokens: not row["raw_tokens"]}).where(Partner.id == partner_id)
            message = "Token encoding switched."
        else:
            raise HTTPException(status_code=404, detail=f"Unknown action {action!r}.")
    except RegistrationError as exc:
        message = f"Failed: {exc.message}"
    from urllib.parse import quote

    return Redirect(f"/admin/roaming/partners/{partner_id}?m={quote(message)}", status_code=303)


@get("/exchange")
async def roaming_exchange(request: Request) -> Template:
    names = {p["id"]: p["name"] for p in await Partner.select(Partner.id, Partner.name)}
    tokens = await RemoteObject.select().where(RemoteObject.module == "tokens").order_by(
        RemoteObject.id, ascending=False).limit(50).output(load_json=True)
    remote_sessions = await RemoteObject.select().where(RemoteObject.module == "sessions").order_by(
        RemoteObject.id, ascending=False).limit(50).output(load_json=True)
    remote_cdrs = await RemoteObject.select().where(RemoteObject.module == "cdrs").order_by(
        RemoteObject.id, ascending=False).limit(50).output(load_json=True)
    links = await SessionLink.select().order_by(SessionLink.session_id, ascending=False).limit(50).output(
        load_json=True)
    cdrs = await Cdr.select().order_by(Cdr.id, ascending=False).limit(50).output(load_json=True)
    commands = await CommandRecord.select().order_by(CommandRecord.id, ascending=False).limit(50).output(
        load_json=True)
    return await render(request, "roaming/exchange.html", title="Roaming exchange", names=names, tokens=tokens,
                        remote_sessions=remote_sessions, remote_cdrs=remote_cdrs, links=links, cdrs=cdrs,
                        commands=commands)






def roaming_admin_router() -> Router:
    return Router(
        path="/admin/roaming",
        route_handlers=[roaming_index, roaming_invite, roaming_register, roaming_partner, roaming_partner_action,
                        roaming_exchange],
        guards=[admin_guard],
        exception_handlers=ADMIN_EXCEPTION_HANDLERS,
        include_in_schema=False,
    )
