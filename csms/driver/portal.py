"""The driver portal: sign in by one-time e-mail link or password, My cards (name one, report one
lost), My sessions (energy, duration, cost) and a running session's live figures, and on the
Account page the driver's data as a JSON download and the deletion of their account (GDPR,
:mod:`csms.core.services.driver_data`); starting a charge by QR code is :mod:`csms.driver.start`.

A driver's browser holds its own cookie (:data:`DRIVER_COOKIE`, path ``/driver``): it is never
sent to ``/admin`` or ``/api`` and grants nothing there, and an operator's admin session grants
nothing here. Every route knows no tenant (``{"tenant": PUBLIC}``): a driver is not a user of an
organization; each handler reads only the signed-in driver's own cards and sessions, and any
other id is answered 404, as for an id that does not exist.

Plugins add pages to the portal the same way (the billing plugin's statements): a plugin route
under ``/driver/`` is guarded by :func:`driver_guard` (the core's guard of plugin routes, see
:mod:`csms.plugin_routes`), reads its driver with :func:`current_driver`, renders with
:func:`driver_page` (this look, this navigation) and adds its menu entries through the
``driver_nav`` hook.

Asking for a link answers the same whether or not the address belongs to a driver (the mail goes
out after the answer, so not even the timing tells), and is rate-limited per address and per
client.
"""

from __future__ import annotations

import logging
import re
from typing import Any, cast
from urllib.parse import quote

from litestar import Request, Response, Router, get, post
from litestar.background_tasks import BackgroundTask
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, NotFoundException
from litestar.handlers.base import BaseRouteHandler
from litestar.response import Redirect, Template
from piccolo_api.rate_limiting.middleware import InMemoryLimitProvider, RateLimitError

from csms import i18n
from csms.admin.personal_data import export_download
from csms.admin.sessions import session_costs
from csms.admin.templating import is_htmx, paginate
from csms.api.links import public_base_url
from csms.api.tenancy import PUBLIC
from csms.api.tokens_sessions import session_detail
from csms.core import audit, id_tokens
from csms.core import driver_accounts as accounts
from csms.core.mail import MailError, mail_enabled, send_mail
from csms.core.services import driver_data, oidc_settings, plans
from csms.core.domain import NavItem
from csms.core.tables import ChargingSession, Driver, IdToken
from csms.core.timeutil import utcnow
from csms.i18n import N_, gettext
from csms.plugins import call_sync

log = logging.getLogger("csms.driver")

DRIVER_COOKIE = "csms_driver"
LIVE_INTERVAL_S = 5
PAGE_SIZE = 20


# -- rendering, the signed-in driver, rate limits ----------------------------------------------


PORTAL_NAV = [NavItem(N_("My cards"), "/driver/cards", order=10),
              NavItem(N_("My sessions"), "/driver/sessions", order=20), NavItem(N_("Account"), "/driver/account", order=90)]


def nav_items(request: Request) -> list[NavItem]:
    """The portal's menu: its own pages and what plugins add through ``driver_nav``, by order."""
    items = PORTAL_NAV + [i for i in call_sync("driver_nav", request=request) if hasattr(i, "href")]
    return sorted(items, key=lambda i: (getattr(i, "order", 100), i.label))


def driver_page(request: Request, template: str, *, status_code: int = 200, **context: Any) -> Template:
    """A page of the driver portal: ``template`` (its full name; it extends ``driver/base.html``)
    with the signed-in driver, the menu and the current path in its context."""
    context.setdefault("title", "")
    driver = request.scope.get("csms_driver")
    return Template(template, status_code=status_code, media_type="text/html", context={
        "driver": driver, "path": request.url.path, "nav": nav_items(request) if driver else [],
        "language": i18n.use_request_language(request), **context})


async def use_browser_language(request: Request) -> None:
    """Every portal request speaks the browser's language (``Accept-Language``), else the
    installation's ``admin_language``."""
    i18n.use_request_language(request)


def render(request: Request, template: str, *, status_code: int = 200, **context: Any) -> Template:
    return driver_page(request, f"driver/{template}", status_code=status_code, **context)


class DriverSignInRequired(NotAuthorizedException):
    """No driver is signed in: a page answers with the way to the sign-in page."""


async def signed_in_driver(secret: str | None) -> dict[str, Any] | None:
    """The driver a session cookie is for while the plan of the driver's organization includes
    the driver portal (None otherwise)."""
    driver = await accounts.session_driver(secret)
    if driver is None or not await plans.feature_enabled(driver["organization"], plans.DRIVER_PORTAL):
        return None
    return driver


async def driver_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Only a signed-in driver passes (:func:`signed_in_driver`); the driver's row is kept in the
    scope for the handler."""
    driver = await signed_in_driver(connection.cookies.get(DRIVER_COOKIE))
    if driver is None:
        raise DriverSignInRequired("Sign in to the driver portal.")
    connection.scope["csms_driver"] = driver  # type: ignore[typeddict-unknown-key]


SIGNED_IN = [driver_guard]


def me(request: Request) -> dict[str, Any]:
    return request.scope["csms_driver"]  # type: ignore[typeddict-item]


def current_driver(request: Request) -> dict[str, Any]:
    """The signed-in driver (their ``Driver`` row) of a route behind :func:`driver_guard`; every
    plugin route under ``/driver/`` is. Read only this driver's rows: answer 404 for anyone
    else's, as for an id that does not exist."""
    driver = request.scope.get("csms_driver")
    if driver is None:
        raise DriverSignInRequired("Sign in to the driver portal.")
    return cast(dict[str, Any], driver)


def _limiter(request: Request, name: str, *, timespan: int, limit: int) -> InMemoryLimitProvider:
    limiters = request.app.state.setdefault("driver_limiters", {})
    if name not in limiters:
        limiters[name] = InMemoryLimitProvider(timespan=timespan, limit=limit, block_duration=timespan)
    return limiters[name]


def _over_limit(request: Request, name: str, key: str, *, timespan: int, limit: int) -> bool:
    try:
        _limiter(request, name, timespan=timespan, limit=limit).increment(key)
    except RateLimitError:
        return True
    return False


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _sign_in(request: Request, driver_id: int, to: str) -> Template | Redirect:
    """Start the driver's portal session, unless the plan of the driver's organization does not
    include the driver portal (then the sign-in page says so, 403)."""
    driver = await Driver.select(Driver.organization).where(Driver.id == driver_id).first()
    if driver is not None and not await plans.feature_enabled(driver["organization"], plans.DRIVER_PORTAL):
        log.info("driver %s not signed in: the plan of organization %s has no driver portal", driver_id,
                 driver["organization"])
        return await _sign_in_page(request, status_code=403, error=gettext(
            "The driver portal is not offered to the drivers of your organization. Ask its operator."))
    response = Redirect(to, status_code=303)
    response.set_cookie(DRIVER_COOKIE, await accounts.new_session(driver_id), httponly=True, samesite="lax",
                        path="/driver", secure=request.app.state.admin_settings.secure_cookies,
                        max_age=int(accounts.SESSION_LIFETIME.total_seconds()))
    return response


# -- signing in ----------------------------------------------------------------------------------

_NEXT = re.compile(r"/driver/[A-Za-z0-9._~%/-]*")


def safe_next(value: Any) -> str:
    """Where to go after signing in: a path of the portal only (no other site, no other part of
    this one), else ``""``."""
    text = str(value or "")
    if len(text) > 300 or not _NEXT.fullmatch(text) or "//" in text or ".." in text:
        return ""
    return text


def _next_of(request: Request, form: Any = None) -> str:
    return safe_next((form or {}).get("next") or request.query_params.get("next"))


async def _sign_in_page(request: Request, *, status_code: int = 200, error: str = "", email: str = "",
                        next_path: str = "") -> Template:
    """The sign-in page: an e-mail link, a password, and a button for each organization's own
    OpenID Connect provider (:mod:`csms.driver.oidc`) whose plan includes the driver portal."""
    after = f"?next={quote(next_path, safe='')}" if next_path else ""
    providers = [{"label": b["label"], "href": f"/driver/oidc/{b['organization']}/start{after}"}
                 for b in await oidc_settings.sign_in_buttons()
                 if await plans.feature_enabled(b["organization"], plans.DRIVER_PORTAL)]
    return render(request, "sign_in.html", status_code=status_code, title=N_("Sign in"), error=error, email=email,
                  mail=mail_enabled(), next=next_path, starting=next_path.startswith("/driver/start/"),
                  providers=providers)


@get("/driver")
async def portal_home(request: Request) -> Template | Redirect:
    next_path = _next_of(request)
    if await signed_in_driver(request.cookies.get(DRIVER_COOKIE)) is not None:
        return Redirect(next_path or "/driver/cards", status_code=303)
    return await _sign_in_page(request, next_path=next_path)


async def send_links(base_url: str, email: str, next_path: str = "") -> None:
    """Mail a sign-in link for every driver with this address (none: no mail at all); with
    ``next_path`` (a :func:`safe_next` path) the link leads there after signing in."""
    drivers = await accounts.drivers_with_address(email)
    if not drivers:
        return
    after = f"?next={quote(next_path, safe='')}" if safe_next(next_path) else ""
    links = [(d["name"], f"{base_url}/driver/link/{await accounts.new_link(d['id'])}{after}") for d in drivers]
    minutes = int(accounts.LINK_LIFETIME.total_seconds() // 60)
    text = "\n\n".join(f"{name}:\n{url}" if len(links) > 1 else url for name, url in links)
    try:
        await send_mail(drivers[0]["email"], "Your sign-in link for charging",
                        f"Hello,\n\nopen this link to sign in (it works once, for {minutes} minutes):\n\n{text}\n\n"
                        "If you did not ask for it, ignore this message: nobody can sign in without it.\n")
    except MailError as exc:
        log.warning("driver sign-in link not sent: %s", exc)


@post("/driver/link")
async def link_request(request: Request) -> Template:
    form = await request.form()
    email, next_path = accounts.normal_address(str(form.get("email", "")))[:200], _next_of(request, form)
    if "@" not in email:
        return await _sign_in_page(request, status_code=422, error=gettext("Enter your e-mail address."), email=email,
                             next_path=next_path)
    if not mail_enabled():
        return await _sign_in_page(request, status_code=503, email=email, next_path=next_path,
                             error=gettext("Links by e-mail are not available here: sign in with your password."))
    if (_over_limit(request, "link-client", _client(request), timespan=900, limit=20)
            or _over_limit(request, "link-address", email, timespan=900, limit=3)):
        return await _sign_in_page(request, status_code=429, email=email, next_path=next_path,
                             error=gettext("Too many links were asked for. Wait %(minutes)s minutes and try again.", minutes=15))
    page = render(request, "link_sent.html", title=N_("Check your e-mail"), email=email,
                  minutes=int(accounts.LINK_LIFETIME.total_seconds() // 60))
    page.background = BackgroundTask(send_links, public_base_url(request), email, next_path)
    return page


@get("/driver/link/{secret:str}")
async def link_page(request: Request, secret: str) -> Template:
    """A button, not an immediate sign-in: a mail scanner that opens links does not spend this one."""
    return render(request, "link.html", title=N_("Sign in"), action=f"/driver/link/{secret}", next=_next_of(request))


@post("/driver/link/{secret:str}")
async def link_sign_in(request: Request, secret: str) -> Template | Redirect:
    driver_id = await accounts.use_link(secret)
    if driver_id is None:
        return render(request, "link.html", status_code=404, title=N_("Link not valid"), action=None, next="")
    return await _sign_in(request, driver_id, _next_of(request, await request.form()) or "/driver/cards")


@post("/driver/login")
async def password_sign_in(request: Request) -> Template | Redirect:
    form = await request.form()
    email, password = accounts.normal_address(str(form.get("email", "")))[:200], str(form.get("password", ""))
    next_path = _next_of(request, form)
    if _over_limit(request, "password-client", _client(request), timespan=300, limit=20):
        return await _sign_in_page(request, status_code=429, email=email, next_path=next_path,
                             error=gettext("Too many attempts. Wait five minutes and try again."))
    driver_id = await accounts.check_password(email, password)
    if driver_id is None:
        return await _sign_in_page(request, status_code=401, email=email, next_path=next_path,
                             error=gettext("The e-mail address or password is incorrect."))
    return await _sign_in(request, driver_id, next_path or "/driver/cards")


@post("/driver/signout")
async def sign_out(request: Request) -> Redirect:
    await accounts.end_session(request.cookies.get(DRIVER_COOKIE))
    response = Redirect("/driver", status_code=303)
    response.delete_cookie(DRIVER_COOKIE, path="/driver")
    return response


# -- my cards ------------------------------------------------------------------------------------


async def _card(request: Request, token_pk: int) -> dict[str, Any]:
    card = await IdToken.select(IdToken.id, IdToken.id_token, IdToken.type, IdToken.status, IdToken.label,
                                IdToken.expires_at).where(
        (IdToken.id == token_pk) & (IdToken.driver == me(request)["id"])).first()
    if card is None:
        raise NotFoundException(gettext("There is no such card."))
    return card


async def _organization(request: Request) -> int | None:
    row = await Driver.select(Driver.organization).where(Driver.id == me(request)["id"]).first()
    return row["organization"] if row else None


@get("/driver/cards", guards=SIGNED_IN)
async def cards(request: Request) -> Template:
    rows = await IdToken.select(IdToken.id, IdToken.id_token, IdToken.type, IdToken.status, IdToken.label,
                                IdToken.expires_at).where(IdToken.driver == me(request)["id"]).order_by(IdToken.id)
    return render(request, "cards.html", title=N_("My cards"), cards=rows, notice=request.query_params.get("notice", ""))


async def _card_answer(request: Request, token_pk: int, notice: str) -> Template | Redirect:
    if is_htmx(request):
        return render(request, "_card.html", card=await _card(request, token_pk), notice=notice)
    return Redirect("/driver/cards", status_code=303)


@post("/driver/cards/{token_pk:int}/name", guards=SIGNED_IN)
async def card_name(request: Request, token_pk: int) -> Template | Redirect:
    await _card(request, token_pk)
    label = " ".join(str((await request.form()).get("label", "")).split())[:200]
    await id_tokens.set_label(token_pk, label, actor=f"driver:{me(request)['id']}",
                              actor_organization=await _organization(request))
    return await _card_answer(request, token_pk, gettext("Name saved."))


@post("/driver/cards/{token_pk:int}/lost", guards=SIGNED_IN)
async def card_lost(request: Request, token_pk: int) -> Template | Redirect:
    card = await _card(request, token_pk)
    if card["status"] != "Blocked":
        await id_tokens.set_status(token_pk, "Blocked", actor=f"driver:{me(request)['id']}",
                                   actor_organization=await _organization(request), summary="reported lost by its driver")
    return await _card_answer(request, token_pk, gettext("Blocked: nobody can charge with this card any more."))


# -- my sessions ---------------------------------------------------------------------------------


def _sessions() -> Any:
    return ChargingSession.select(*ChargingSession.all_columns(),
                                  ChargingSession.station.station_id.as_alias("station_id")).output(load_json=True)


@get("/driver/sessions", guards=SIGNED_IN)
async def sessions(request: Request) -> Template:
    mine = ChargingSession.driver == me(request)["id"]
    page = await paginate(request, _sessions().where(mine).order_by(ChargingSession.started_at, ascending=False),
                          ChargingSession.count().where(mine), size=PAGE_SIZE)
    for row, cost in zip(page.items, await session_costs(page.items)):
        row["cost"] = cost.to_json() if cost is not None else None
    return render(request, "sessions.html", title=N_("My sessions"), page=page)


async def _session(request: Request, session_id: int) -> dict[str, Any]:
    if not await ChargingSession.exists().where((ChargingSession.id == session_id)
                                                & (ChargingSession.driver == me(request)["id"])):
        raise NotFoundException(gettext("There is no such session."))
    return await session_detail(session_id)


@get("/driver/sessions/{session_id:int}", guards=SIGNED_IN)
async def session_page(request: Request, session_id: int) -> Template:
    return render(request, "session.html", title=N_("Charging session"), s=await _session(request, session_id),
                  interval=LIVE_INTERVAL_S)


@get("/driver/sessions/{session_id:int}/live", guards=SIGNED_IN)
async def session_live(request: Request, session_id: int) -> Template:
    return render(request, "_live.html", s=await _session(request, session_id), interval=LIVE_INTERVAL_S)


# -- account -------------------------------------------------------------------------------------


@get("/driver/account", guards=SIGNED_IN)
async def account(request: Request) -> Template:
    return render(request, "account.html", title=N_("Account"), has_password=await accounts.has_password(me(request)["id"]),
                  notice=request.query_params.get("notice", ""), error="")


@post("/driver/account", guards=SIGNED_IN)
async def account_password(request: Request) -> Template | Redirect:
    form = await request.form()
    problem = accounts.password_problem(str(form.get("password", "")), str(form.get("repeat", "")))
    if problem:
        return render(request, "account.html", status_code=422, title=N_("Account"), error=problem,
                      has_password=await accounts.has_password(me(request)["id"]), notice="")
    await accounts.set_password(me(request)["id"], str(form["password"]))  # ends every session, this one too
    return await _sign_in(request, me(request)["id"], "/driver/account?notice=Password+saved.")


# -- my data: export and deletion (GDPR) --------------------------------------------------------


@get("/driver/account/export", guards=SIGNED_IN)
async def account_export(request: Request) -> Response:
    driver_id = me(request)["id"]
    organization = await _organization(request)
    data = await driver_data.export(driver_id)
    await audit.record(actor=f"driver:{driver_id}", action="export", object_type="driver", object_id=driver_id,
                       organization=organization, actor_organization=organization,
                       summary="personal data downloaded by the driver")
    return export_download(data, f"my-charging-data-{utcnow().date().isoformat()}.json")


async def _delete_page(request: Request, *, status_code: int = 200, error: str = "") -> Template:
    running = await driver_data.running_session(me(request)["id"])
    return render(request, "delete.html", status_code=status_code, title=N_("Delete my account"), error=error,
                  running=running)


@get("/driver/account/delete", guards=SIGNED_IN)
async def account_delete_page(request: Request) -> Template:
    return await _delete_page(request)


@post("/driver/account/delete", guards=SIGNED_IN)
async def account_delete(request: Request) -> Template | Redirect:
    if (await request.form()).get("confirm") != "yes":
        return await _delete_page(request, status_code=422, error=gettext("Tick the box to confirm that you want this."))
    driver_id = me(request)["id"]
    try:
        await driver_data.erase(driver_id, actor=f"driver:{driver_id}", actor_organization=await _organization(request))
    except driver_data.DriverBusy as exc:
        return await _delete_page(request, status_code=409, error=str(exc))
    response = Redirect("/driver/deleted", status_code=303)
    response.delete_cookie(DRIVER_COOKIE, path="/driver")
    return response


@get("/driver/deleted")
async def account_deleted(request: Request) -> Template:
    return render(request, "deleted.html", title=N_("Account deleted"))


# -- the router ----------------------------------------------------------------------------------


def sign_in_answer(request: Request, _: Exception) -> Response:
    """To the sign-in page (an HTMX request: told to go there)."""
    if is_htmx(request):
        return Response("", status_code=401, headers={"HX-Redirect": "/driver"})
    return Redirect("/driver", status_code=303)


def _not_found(request: Request, exc: Exception) -> Response:
    return render(request, "not_found.html", status_code=404, title=N_("Not found"),
                  message=getattr(exc, "detail", "") or gettext("There is nothing here."))


#: The portal's answers to a missing sign-in (to the sign-in page) and to
#: an unknown id (its "not found" page): a plugin's driver router sets them as its handlers.
DRIVER_EXCEPTION_HANDLERS: dict[Any, Any] = {NotAuthorizedException: sign_in_answer, NotFoundException: _not_found}


def driver_router() -> Router:
    from csms.driver.oidc import OIDC_ROUTES  # these build on this module
    from csms.driver.start import START_ROUTES

    return Router(
        path="/",
        route_handlers=[portal_home, link_request, link_page, link_sign_in, password_sign_in, sign_out, cards,
                        card_name, card_lost, sessions, session_page, session_live, account, account_password,
                        account_export, account_delete_page, account_delete, account_deleted, *START_ROUTES,
                        *OIDC_ROUTES],
        opt={"tenant": PUBLIC},
        before_request=use_browser_language,
        exception_handlers=DRIVER_EXCEPTION_HANDLERS,
        include_in_schema=False,
    )
