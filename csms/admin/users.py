"""User management: invite (one-time link by e-mail, or shown to pass on), change role and
organization, disable and enable, reset a password; everyone changes their own password and time
zone (the account page); the public page a link opens to set a password.

An admin of an organization manages the users of its organizations; a global admin all of them.
Nobody disables, demotes or moves themself (no locking oneself out).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.response import Redirect, Template

from csms import i18n
from csms.admin.auth import check_password, current_user
from csms.admin.forms import Field, FormErrors, fk, parse
from csms.admin.plans import limit_message
from csms.admin.templating import choices, render, time_zone_names, translated_choices, zone_named
from csms.api.audit import audited
from csms.api.links import public_base_url
from csms.api.tenancy import PUBLIC, SCOPED, Scope, restrict, tenant_scope
from csms.core import audit, users
from csms.core.mail import MailError, mail_enabled, send_mail
from csms.core.services import plans
from csms.core.tables import Organization
from csms.core.timeutil import utcnow
from csms.i18n import N_, gettext
from csms.roles import ROLE_NAMES, membership_of, recipient_language, set_language, set_role, set_time_zone

USERS = {"tenant": SCOPED, "role": "admin"}
ONE_USER = {"tenant": {"user_id": "user"}, "role": "admin"}
# the roles' names as a select shows them (translated where shown: ``translated_choices``)
ROLE_CHOICES = [("admin", N_("Admin")), ("operator", N_("Operator")), ("viewer", N_("Viewer"))]
assert [value for value, _ in ROLE_CHOICES] == list(ROLE_NAMES)


async def _organizations(scope: Scope) -> list[dict[str, Any]]:
    return await restrict(Organization.select(Organization.id, Organization.name), Organization.id,
                          scope).order_by(Organization.name)


async def user_fields(scope: Scope, *, new: bool) -> list[Field]:
    fields = [Field("username", N_("Username"), required=True, maxlength=100, autocomplete="off"),
              Field("email", N_("E-mail"), "email", required=True, maxlength=200,
                    help=N_("The invitation link goes here (or is shown to you when e-mail is off)."))] if new else []
    blank = gettext("— (global: the whole installation)") if scope.is_global else "—"
    return fields + [
        Field("role", N_("Role"), "select", required=True, choices=translated_choices(ROLE_CHOICES),
              help=N_("Viewer reads; operator also acts on stations, cards and sessions; admin also manages users and keys.")),
        Field("organization", N_("Organization"), "select", choices=choices(await _organizations(scope)),
              blank_label=blank, help=N_("What the user sees: this organization and the ones below it.")),
    ]


def _organization_of(values: dict[str, Any], scope: Scope, errors: FormErrors) -> int | None:
    organization = fk(values.get("organization"))
    if organization is None and not scope.is_global:
        organization = scope.organization
    if organization is not None and not scope.sees(organization):
        errors["organization"] = gettext("Choose one of your organizations.")
    return organization


async def _user(user_id: int) -> dict[str, Any]:
    found = [u for u in await users.user_rows(None) if u["id"] == user_id]
    if not found:
        raise NotFoundException(gettext("There is no user %(user)s.", user=user_id))
    return found[0]


async def _list(request: Request, *, link: dict[str, str] | None = None, status_code: int = 200,
                error: str = "") -> Template:
    scope = await tenant_scope(request)
    rows = await users.user_rows(None if scope.is_global else sorted(scope.visible or ()))
    names = {o["id"]: o["name"] for o in await _organizations(scope)}
    me = await current_user(request)
    return await render(request, "users/list.html", status_code=status_code, title=gettext("Users"), users=rows,
                        organizations=names, me=me.id if me else None, link=link, error=error,
                        roles=translated_choices(ROLE_CHOICES), fields=await user_fields(scope, new=False))


@get("/admin/users", include_in_schema=False, opt=USERS)
async def user_list(request: Request) -> Template:
    return await _list(request)


def _link_url(request: Request, secret: str) -> str:
    return f"{public_base_url(request)}/account/password/{secret}"


async def _deliver(request: Request, user: dict[str, Any], secret: str, purpose: str) -> dict[str, str]:
    """Mail the link when e-mail is on; in any case say what happened (and show the link when
    it was not mailed, once, for the admin to pass on)."""
    url = _link_url(request, secret)
    if mail_enabled() and user.get("email") and not user["email"].endswith("@users.invalid"):
        try:
            with i18n.in_language(await recipient_language(user["email"])):  # the recipient's, not the sender's
                words = gettext("You are invited to the charging back office.") if purpose == "invite" else \
                    gettext("A new password was asked for.")
                subject = gettext("Your access to the charging back office")
                text = gettext("Hello %(name)s,\n\n%(words)s Set your password here (the link works once):\n\n%(url)s\n\n"
                               "If you did not expect this message, ignore it.\n", name=user["username"], words=words,
                               url=url)
            await send_mail(user["email"], subject, text)
            return {"username": user["username"], "mailed_to": user["email"]}
        except MailError as exc:
            return {"username": user["username"], "url": url, "mail_error": str(exc)}
    return {"username": user["username"], "url": url}


@get("/admin/users/new", include_in_schema=False, opt=USERS)
async def user_new(request: Request) -> Template:
    scope = await tenant_scope(request)
    return await render(request, "form.html", title=gettext("Invite a user"), fields=await user_fields(scope, new=True),
                        values={"role": "viewer"}, errors={}, action="/admin/users/new", cancel="/admin/users",
                        submit=gettext("Invite"))


@post("/admin/users/new", include_in_schema=False, opt=USERS)
async def user_invite(request: Request) -> Template:
    scope = await tenant_scope(request)
    raw = await request.form()
    fields = await user_fields(scope, new=True)
    values, errors = parse(fields, raw)
    organization = _organization_of(values, scope, errors)
    status = 422
    if not errors:
        try:
            user_id = await users.create_user(values["username"].strip(), values["email"], values["role"], organization)
        except users.UserError as exc:
            errors[exc.field or "email"] = str(exc)
        except plans.PlanLimitReached as exc:
            errors["organization" if "organization" in {f.name for f in fields} else ""] = limit_message(exc)
            status = 409
    if errors:
        return await render(request, "form.html", status_code=status, title=gettext("Invite a user"), fields=fields,
                            values=dict(raw), errors=errors, action="/admin/users/new", cancel="/admin/users",
                            submit=gettext("Invite"))
    user = await _user(user_id)
    await audited(request, "create", "user", user_id, after={k: user[k] for k in ("username", "email", "role",
                                                                                    "organization")},
                  summary="invited")
    return await _list(request, link=await _deliver(request, user, await users.new_link(user_id, "invite"), "invite"))


async def _not_me(request: Request, user_id: int, refusal: str) -> None:
    me = await current_user(request)
    if me is not None and me.id == user_id:
        raise ValidationException(refusal)


@post("/admin/users/{user_id:int}/role", include_in_schema=False, opt=ONE_USER)
async def user_role(request: Request, user_id: int) -> Template | Redirect:
    await _not_me(request, user_id, gettext("You cannot change your own role or organization; ask another admin."))
    scope = await tenant_scope(request)
    before = await _user(user_id)
    values, errors = parse(await user_fields(scope, new=False), await request.form())
    organization = _organization_of(values, scope, errors)
    if errors:
        return await _list(request, status_code=422, error=" ".join(errors.values()))
    try:
        await set_role(user_id, values["role"], organization)
    except plans.PlanLimitReached as exc:
        return await _list(request, status_code=409, error=limit_message(exc))
    from piccolo.apps.user.tables import BaseUser

    superuser = values["role"] == "admin" and organization is None
    await BaseUser.update({BaseUser.superuser: superuser, BaseUser.admin: superuser}).where(BaseUser.id == user_id)
    await users.end_sessions(user_id)  # the next request sees the new rights
    after = await _user(user_id)
    await audited(request, "update", "user", user_id, before={k: before[k] for k in ("role", "organization")},
                  after={k: after[k] for k in ("role", "organization")})
    return Redirect("/admin/users", status_code=303)


@post("/admin/users/{user_id:int}/active", include_in_schema=False, opt=ONE_USER)
async def user_active(request: Request, user_id: int) -> Redirect:
    active = str((await request.form()).get("active", "")) == "true"
    if not active:
        await _not_me(request, user_id, gettext("You cannot disable yourself; ask another admin."))
    before = await _user(user_id)
    await users.set_active(user_id, active)
    await audited(request, "update", "user", user_id, before={"active": before["active"],
                                                              "organization": before["organization"]},
                  after={"active": active, "organization": before["organization"]},
                  summary="enabled" if active else "disabled; sessions ended")
    return Redirect("/admin/users", status_code=303)


@post("/admin/users/{user_id:int}/reset", include_in_schema=False, opt=ONE_USER)
async def user_reset(request: Request, user_id: int) -> Template:
    user = await _user(user_id)
    secret = await users.new_link(user_id, "reset")
    await audited(request, "update", "user", user_id, after={"organization": user["organization"]},
                  summary="password reset link made")
    return await _list(request, link=await _deliver(request, user, secret, "reset"))


# -- one's own password, and the page a link opens ------------------------------------------------

assert users.MIN_PASSWORD == 10, "the password field's help names the minimum: change both"
PASSWORD_FIELDS = [
    Field("password", N_("New password"), "password", required=True, minlength=users.MIN_PASSWORD, maxlength=128,
          autocomplete="new-password", help=N_("At least 10 characters.")),
    Field("repeat", N_("The new password again"), "password", required=True, maxlength=128,
          autocomplete="new-password"),
]
OWN_FIELDS = [Field("current", N_("Current password"), "password", required=True, maxlength=128,
                    autocomplete="current-password"), *PASSWORD_FIELDS]


ACCOUNT = {"tenant": SCOPED, "role": "viewer"}


async def _account_page(request: Request, *, status_code: int = 200, errors: dict[str, str] | None = None,
                        tz_errors: dict[str, str] | None = None, tz_value: str | None = None,
                        language_errors: dict[str, str] | None = None) -> Template:
    """The account page: one's language, time zone and password."""
    me = await current_user(request)
    default = request.app.state.admin_settings.time_zone
    own = me.time_zone if me else ""
    return await render(request, "users/account.html", status_code=status_code, title=gettext("Your account"),
                        fields=OWN_FIELDS, errors=errors or {}, tz_errors=tz_errors or {},
                        tz_value=own if tz_value is None else tz_value, own_zone=own, default_zone=default,
                        own_language=me.language if me else "", language_errors=language_errors or {},
                        browser_language=i18n.language_for(request),
                        zone_names=time_zone_names(), now=utcnow(), saved=request.query_params.get("saved", ""))


@get("/admin/account", include_in_schema=False, opt=ACCOUNT)
async def account(request: Request) -> Template:
    return await _account_page(request)


@post("/admin/account/time-zone", include_in_schema=False, opt=ACCOUNT)
async def account_time_zone(request: Request) -> Template | Redirect:
    """Choose the zone the admin shows one's times in (an IANA name; empty: the installation's)."""
    me = await current_user(request)
    assert me is not None  # the admin guard asked for a login
    zone = str((await request.form()).get("time_zone", "")).strip()
    if zone and zone_named(zone) is None:
        shown = zone if len(zone) <= 64 else zone[:64] + "…"
        return await _account_page(request, status_code=422, tz_value=zone, tz_errors={
            "time_zone": f"“{shown}” is not a time zone; choose one from the list (for example Europe/Berlin)."})
    await set_time_zone(me.id, zone, superuser=me.superuser)
    await audited(request, "update", "user", me.id, before={"time_zone": me.time_zone},
                  after={"time_zone": zone, "organization": me.organization}, summary="own time zone set")
    return Redirect("/admin/account?saved=time-zone", status_code=303)


@post("/admin/account/language", include_in_schema=False, opt=ACCOUNT)
async def account_language(request: Request) -> Template | Redirect:
    """Choose the admin's language (one of ``csms.i18n.LANGUAGES``; empty: the browser's)."""
    me = await current_user(request)
    assert me is not None  # the admin guard asked for a login
    language = str((await request.form()).get("language", "")).strip()
    if language and language not in i18n.LANGUAGES:
        return await _account_page(request, status_code=422, language_errors={
            "language": gettext("Choose a language from the list.")})
    await set_language(me.id, language, superuser=me.superuser)
    await audited(request, "update", "user", me.id, before={"language": me.language},
                  after={"language": language, "organization": me.organization}, summary="own language set")
    return Redirect("/admin/account?saved=language", status_code=303)


@post("/admin/account", include_in_schema=False, opt=ACCOUNT)
async def account_save(request: Request) -> Template | Redirect:
    me = await current_user(request)
    assert me is not None  # the admin guard asked for a login
    values, errors = parse(OWN_FIELDS, await request.form())
    if not errors and await check_password(me.username, values["current"]) is None:
        errors["current"] = gettext("This is not your current password.")
    if not errors and (problem := users.password_problem(values["password"], values["repeat"])):
        errors["password" if users.password_problem(values["password"]) else "repeat"] = problem
    if errors:
        return await _account_page(request, status_code=422, errors=errors)
    await users.set_password(me.id, values["password"])  # ends every session, this one too
    await audited(request, "update", "user", me.id, after={"organization": me.organization},
                  summary="own password changed")
    return Redirect("/login", status_code=303)


LINK = {"public": True, "tenant": PUBLIC}


@get("/account/password/{secret:str}", include_in_schema=False, opt=LINK)
async def link_page(request: Request, secret: str) -> Template:
    i18n.use_request_language(request)  # a page without a login: the browser's language
    user = await users.link_user(secret)
    if user is None:
        return await render(request, "users/link.html", status_code=404, title=gettext("Link not valid"), link_user=None,
                            fields=PASSWORD_FIELDS, errors={})
    return await render(request, "users/link.html", title=gettext("Set your password"), link_user=user,
                        fields=PASSWORD_FIELDS, errors={}, action=f"/account/password/{secret}")


@post("/account/password/{secret:str}", include_in_schema=False, opt=LINK)
async def link_save(request: Request, secret: str) -> Template | Redirect:
    i18n.use_request_language(request)  # a page without a login: the browser's language
    user = await users.link_user(secret)
    if user is None:
        return await render(request, "users/link.html", status_code=404, title=gettext("Link not valid"), link_user=None,
                            fields=PASSWORD_FIELDS, errors={})
    values, errors = parse(PASSWORD_FIELDS, await request.form())
    if not errors and (problem := users.password_problem(values["password"], values["repeat"])):
        errors["password" if users.password_problem(values["password"]) else "repeat"] = problem
    if errors:
        return await render(request, "users/link.html", status_code=422, title=gettext("Set your password"), link_user=user,
                            fields=PASSWORD_FIELDS, errors=errors, action=f"/account/password/{secret}")
    await users.use_link(secret, values["password"])
    _, organization = await membership_of(user["id"])
    await audit.record(actor=f"user:{user['username']}", action="update", object_type="user", object_id=user["id"],
                       organization=organization, actor_organization=organization,
                       summary=f"password set through an {user['purpose']} link")
    return Redirect("/login", status_code=303)
