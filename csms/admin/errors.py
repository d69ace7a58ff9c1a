"""The admin's error answers, shared by the core pages and every plugin's admin router:
``exception_handlers=ADMIN_EXCEPTION_HANDLERS`` (add a plugin's own exceptions with ``{**...}``)."""

from __future__ import annotations

import logging
from typing import Any, cast
from urllib.parse import urlsplit

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.response import Redirect, Template

from csms import i18n
from csms.admin import auth
from csms.admin.templating import is_htmx, nav_items
from csms.i18n import gettext

log = logging.getLogger("csms.admin")


def back_path(request: Request) -> str | None:
    """The admin page a refused form was sent from (its ``Referer``, when it is a page of this
    admin on this host), for the error page's way back; None otherwise."""
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc != request.url.netloc or not referer.path.startswith("/admin/"):
        return None
    if referer.path == request.url.path and request.method == "GET":
        return None  # the page that failed itself
    return referer.path + (f"?{referer.query}" if referer.query else "")


def error_page(request: Request, status_code: int, message: str) -> Response:
    """The admin's error page (a fragment for HTMX requests) with navigation for the user and,
    after a refused form, a way back to the page it was sent from."""
    user = cast("auth.AdminUser | None", request.scope.get("csms_admin_user"))  # set by auth.current_user
    name = "admin/_error.html" if is_htmx(request) else "admin/error.html"
    language = i18n.use_request_language(request, user.language if user else "")
    return Template(name, status_code=status_code, media_type="text/html", context={
        "user": user, "status_code": status_code, "message": message, "title": gettext("Error"),
        "back": back_path(request), "language": language,
        "time_zone": request.scope.get("csms_time_zone") or "UTC",
        "nav": nav_items(request, user) if user else [], "path": request.url.path,
        "can_operate": bool(user and user.can("operator")), "can_admin": bool(user and user.can("admin")),
    })


def login_required(request: Request, exc: Exception) -> Response:
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.url.path.endswith("/stream"):  # an event stream cannot follow a redirect
        return Response("log in first", status_code=401, media_type=MediaType.TEXT)
    if is_htmx(request):  # a fragment request of an expired session: reload the page through the login
        current = request.headers.get("hx-current-url", "/")
        target = current.split("://", 1)[-1]
        target = target[target.find("/"):] if "/" in target else "/"
        return Response("", status_code=401, headers={"HX-Redirect": auth.login_url(target)})
    return Redirect(auth.login_url(path), status_code=303)


def forbidden(request: Request, exc: Exception) -> Response:
    return error_page(request, 403, getattr(exc, "detail", "") or gettext("You may not do this."))


def not_found(request: Request, exc: Exception) -> Response:
    return error_page(request, 404, getattr(exc, "detail", "") or gettext("Not found."))


def http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    return error_page(request, status, getattr(exc, "detail", "") or gettext("Something went wrong."))


def server_error(request: Request, exc: Exception) -> Response:
    log.error("admin page %s failed", request.url.path, exc_info=exc)
    return error_page(request, 500, gettext("Something went wrong on the server; the error is in the server log."))


ADMIN_EXCEPTION_HANDLERS: dict[Any, Any] = {
    auth.LoginRequired: login_required,
    NotAuthorizedException: login_required,
    PermissionDeniedException: forbidden,
    NotFoundException: not_found,
    HTTPException: http_error,
    Exception: server_error,
}
