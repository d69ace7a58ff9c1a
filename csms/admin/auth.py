"""Who is using the admin: Piccolo users logged in with piccolo_api's session store.

The session cookie is piccolo_api's (``id``), the one piccolo-admin reads too, so one login
serves the admin pages, the Piccolo admin at ``/admin/db`` and the REST API (through
``csms.api.auth.principal_resolvers``). Roles come from :mod:`csms.roles`: every admin page
needs a login, every unsafe request the operator role unless its handler asks for more
(``opt={"role": "admin"}``).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from secrets import compare_digest
from typing import TYPE_CHECKING, Any, Awaitable, Callable, cast
from urllib.parse import quote

from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from piccolo.apps.user.tables import BaseUser
from piccolo_api.session_auth.middleware import SessionsAuthBackend
from piccolo_api.session_auth.tables import SessionsBase
from piccolo_api.shared.auth import UnauthenticatedUser
from starlette.authentication import AuthenticationError
from starlette.requests import HTTPConnection

from csms.api.auth import ROLES, Principal
from csms.core.offload import run_cpu
from csms.i18n import gettext
from csms.roles import account_of

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

SESSION_COOKIE = "id"  # piccolo_api's default, shared with piccolo-admin
CSRF_COOKIE = "csms_csrftoken"  # not piccolo-admin's "csrftoken": the two tokens differ in form
CSRF_HEADER = "x-csrftoken"
SESSION_EXPIRY = timedelta(hours=8)
MAX_SESSION_EXPIRY = timedelta(days=7)
INCREASE_EXPIRY = timedelta(hours=1)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_backend = SessionsAuthBackend(admin_only=False, superuser_only=False, active_only=True,
                               allow_unauthenticated=True, increase_expiry=INCREASE_EXPIRY)
_NO_USER = object()


@dataclass(frozen=True)
class AdminUser:
    id: int
    username: str
    role: str
    superuser: bool
    organization: int | None = None  # None: global
    time_zone: str = ""  # the user's own choice (IANA name); "": the installation's admin_time_zone
    language: str = ""  # the user's own choice (en, de, nl, fr); "": the browser's, else admin_language

    def can(self, role: str) -> bool:
        return ROLES.get(self.role, -1) >= ROLES[role]


class LoginRequired(NotAuthorizedException):
    """No valid session: the admin answers with a redirect to the login page."""


async def current_user(connection: ASGIConnection) -> AdminUser | None:
    """The logged-in user of this request (looked up once per request), or None."""
    scope: Any = connection.scope
    cached = scope.get("csms_admin_user", _NO_USER)
    if cached is not _NO_USER:
        return cached
    user = None
    if connection.cookies.get(SESSION_COOKIE):
        try:
            _, found = await _backend.authenticate(HTTPConnection(scope))
        except AuthenticationError:  # e.g. the account was deactivated
            found = None
        if found is not None and not isinstance(found, UnauthenticatedUser):
            row = found.user
            role, organization, zone, language = await account_of(row.id, superuser=row.superuser)
            user = AdminUser(row.id, row.username, role, row.superuser and organization is None, organization, zone,
                             language)
    scope["csms_admin_user"] = user
    return user


async def actor(connection: ASGIConnection) -> str:
    """Who acts, as commands and the audit log name them: ``user:<name>``, or "" without a login."""
    user = await current_user(connection)
    return f"user:{user.username}" if user else ""


def required_role(connection: ASGIConnection, handler: BaseRouteHandler) -> str:
    role = handler.opt.get("role")
    if role:
        return role
    return "viewer" if connection.scope.get("method", "GET") in SAFE_METHODS else "operator"


async def require_login(connection: ASGIConnection, role: str) -> None:
    """A logged-in user with at least ``role``, else ``LoginRequired`` / ``PermissionDeniedException``."""
    user = await current_user(connection)
    if user is None:
        raise LoginRequired("log in first")
    from csms.admin.templating import use_viewer_preferences  # templating imports this module

    use_viewer_preferences(connection, user)  # forms parse times in the user's zone, errors speak their language
    if not user.can(role):
        raise PermissionDeniedException(gettext("This needs the %(role)s role; you are signed in as %(own)s.",
                                                role=role, own=user.role))


async def admin_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Every admin route: a login, and the operator role for anything that changes state."""
    if handler.opt.get("public"):
        return
    await require_login(connection, required_role(connection, handler))


def login_url(next_path: str) -> str:
    return "/login" if next_path in ("", "/") else f"/login?next={quote(next_path, safe='/')}"


def safe_next(value: str | None) -> str:
    """Only local paths are followed after login (no open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


async def check_password(username: str, password: str) -> int | None:
    """``BaseUser.login`` with its PBKDF2 hashing in the CPU pool instead of on the event loop:
    the user's id if the password is right (``last_login`` updated, an old hash upgraded)."""
    # BaseUser.username is Varchar(length=100): its length is never None
    if len(username) > cast(int, BaseUser.username.length) or len(password) > BaseUser._max_password_length:
        return None
    row = await BaseUser.select(BaseUser.id, BaseUser.password).where(BaseUser.username == username).first()
    if row is None:
        await run_cpu(BaseUser.hash_password, password)  # as long as for a user: no enumeration by timing
        return None
    try:
        _, iterations, salt, _ = BaseUser.split_stored_password(row["password"])
        hashed = await run_cpu(BaseUser.hash_password, password, salt, int(iterations))
    except ValueError:
        return None
    if not compare_digest(hashed, row["password"]):
        return None
    values: dict[Any, Any] = {BaseUser.last_login: datetime.now()}
    if int(iterations) != BaseUser._pbkdf2_iteration_count:
        values[BaseUser.password] = await run_cpu(BaseUser.hash_password, password)
    await BaseUser.update(values).where(BaseUser.id == row["id"])
    return row["id"]


async def login(username: str, password: str) -> SessionsBase | None:
    """Check the password against Piccolo's user table; open a piccolo_api session."""
    user_id = await check_password(username, password)
    if user_id is None:
        return None
    if not await BaseUser.exists().where((BaseUser.id == user_id) & (BaseUser.active == True)):  # noqa: E712
        return None
    now = datetime.now()  # piccolo_api keeps naive local times
    return await SessionsBase.create_session(user_id=user_id, expiry_date=now + SESSION_EXPIRY,
                                             max_expiry_date=now + MAX_SESSION_EXPIRY)


async def logout(token: str | None) -> None:
    if token:
        await SessionsBase.remove_session(token=token)


def csrf_tokens_match(header_token: str, cookie_token: str, secret: str) -> bool:
    """Litestar's double-submit check: both tokens carry the same HMAC-signed secret."""

    def decode(token: str) -> str | None:
        if len(token) < 65:
            return None
        raw, digest = token[:64], token[64:]
        expected = hmac.new(secret.encode(), raw.encode(), hashlib.sha256).hexdigest()
        return raw if compare_digest(digest, expected) else None

    a, b = decode(header_token), decode(cookie_token)
    return a is not None and b is not None and compare_digest(a, b)


def csrf_header_ok(connection: ASGIConnection, secret: str) -> bool:
    """The request carries the CSRF header the admin's pages send, matching its CSRF cookie."""
    header = connection.headers.get(CSRF_HEADER, "")
    cookie = connection.cookies.get(CSRF_COOKIE, "")
    return bool(header and cookie and csrf_tokens_match(header, cookie, secret))


def session_principal_resolver(secret: str) -> Callable[[ASGIConnection], Awaitable[Principal | None]]:
    """A ``principal_resolvers`` entry: the session user for the REST API.

    The API is outside the CSRF middleware (bearer tokens need none), so a write authenticated
    only by the cookie must carry the CSRF header the admin's pages send; otherwise a forged
    cross-site request would ride on the cookie.
    """

    async def session_principal(connection: ASGIConnection) -> Principal | None:
        if not connection.cookies.get(SESSION_COOKIE):
            return None
        if connection.scope.get("method", "GET") not in SAFE_METHODS and not csrf_header_ok(connection, secret):
            return None
        user = await current_user(connection)
        return user_principal(user) if user else None

    return session_principal


def user_principal(user: AdminUser) -> Principal:
    return Principal(user.username, user.role, "user", user.organization)


async def page_principal(connection: ASGIConnection) -> Principal | None:
    """A ``tenancy.page_principal_resolvers`` entry: the logged-in user of an admin page."""
    user = await current_user(connection)
    return user_principal(user) if user else None
