"""Login and logout pages (Piccolo users, piccolo_api sessions)."""

from __future__ import annotations

from litestar import Request, get, post
from litestar.response import Redirect, Template
from piccolo_api.rate_limiting.middleware import InMemoryLimitProvider, RateLimitError

from csms import __version__, i18n
from csms.admin.auth import (
    MAX_SESSION_EXPIRY,
    SESSION_COOKIE,
    current_user,
    login,
    logout,
    safe_next,
)
from csms.admin.templating import render
from csms.i18n import gettext


def login_limiter() -> InMemoryLimitProvider:
    """Against password guessing: 20 attempts per client address in 5 minutes, then 5 minutes
    blocked (piccolo_api's limiter, as piccolo-admin uses; one per app)."""
    return InMemoryLimitProvider(timespan=300, limit=20, block_duration=300)


async def _login_page(request: Request, *, next_path: str, error: str = "", username: str = "",
                      status_code: int = 200) -> Template:
    i18n.use_request_language(request)  # nobody is signed in yet: the browser's language
    return await render(request, "login.html", status_code=status_code, title=gettext("Log in"), next=next_path, error=error,
                        username=username, version=__version__)


@get("/login", include_in_schema=False, opt={"public": True, "tenant": "public"})
async def login_page(request: Request) -> Template | Redirect:
    next_path = safe_next(request.query_params.get("next"))
    if await current_user(request) is not None:
        return Redirect(next_path, status_code=303)
    return await _login_page(request, next_path=next_path)


@post("/login", include_in_schema=False, opt={"public": True, "tenant": "public"})
async def login_submit(request: Request) -> Template | Redirect:
    i18n.use_request_language(request)  # nobody is signed in yet: the browser's language, for the errors
    form = await request.form()
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    next_path = safe_next(str(form.get("next", "")))
    client = request.client.host if request.client else "unknown"
    try:
        request.app.state.admin_login_limiter.increment(client)
    except RateLimitError:
        return await _login_page(request, next_path=next_path, username=username, status_code=429,
                                 error=gettext("Too many attempts. Wait five minutes and try again."))
    if not username or not password:
        return await _login_page(request, next_path=next_path, username=username, status_code=422,
                                 error=gettext("Enter your username and password."))
    session = await login(username, password)
    if session is None:
        return await _login_page(request, next_path=next_path, username=username, status_code=401,
                                 error=gettext("The username or password is incorrect, or the account is disabled."))
    response = Redirect(next_path, status_code=303)
    response.set_cookie(SESSION_COOKIE, session.token, httponly=True, samesite="lax", path="/",
                        secure=request.app.state.admin_settings.secure_cookies,
                        max_age=int(MAX_SESSION_EXPIRY.total_seconds()))
    return response


@post("/logout", include_in_schema=False, opt={"public": True, "tenant": "public"})
async def logout_submit(request: Request) -> Redirect:
    await logout(request.cookies.get(SESSION_COOKIE))
    response = Redirect("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
