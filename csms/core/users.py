"""People who use the admin: invitations and password resets by one-time link, roles, disabling.

Passwords are Piccolo's (PBKDF2), hashed in the CPU pool. A link's secret is shown or mailed
once; only its SHA-256 is stored, and it works once, until it expires. Disabling a user or
setting a new password ends the user's open sessions at once.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from piccolo.apps.user.tables import BaseUser
from piccolo_api.session_auth.tables import SessionsBase

from csms.core.offload import run_cpu
from csms.core.services import plans
from csms.core.tables import UserLink, UserRole
from csms.core.timeutil import utcnow
from csms.i18n import gettext

LINK_LIFETIME = {"invite": timedelta(days=7), "reset": timedelta(hours=24)}
MIN_PASSWORD = 10


class UserError(ValueError):
    """A request about a user that cannot be carried out; the text says why (in the request's
    language: the admin's pages set it before they call these functions; English elsewhere, as in
    the command line), and ``field`` names the input it is about."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def new_link(user_id: int, purpose: str) -> str:
    """A fresh one-time secret for ``user_id`` (earlier unused links of the user stop working)."""
    await UserLink.update({UserLink.used_at: utcnow()}).where(
        (UserLink.user_id == user_id) & UserLink.used_at.is_null())
    secret = secrets.token_urlsafe(32)
    await UserLink(user_id=user_id, purpose=purpose, secret_hash=_digest(secret),
                   expires_at=utcnow() + LINK_LIFETIME[purpose]).save()
    return secret


async def link_user(secret: str) -> dict[str, Any] | None:
    """The user a valid, unused, unexpired link is for (with the link's purpose), else None."""
    if not secret or len(secret) > 100:
        return None
    link = await UserLink.select().where(UserLink.secret_hash == _digest(secret)).first()
    if link is None or link["used_at"] is not None or link["expires_at"] < utcnow():
        return None
    user = await BaseUser.select(BaseUser.id, BaseUser.username, BaseUser.active).where(
        BaseUser.id == link["user_id"]).first()
    if user is None or not user["active"]:
        return None
    return {**user, "purpose": link["purpose"], "link_id": link["id"]}


def password_problem(password: str, repeated: str | None = None) -> str | None:
    if len(password) < MIN_PASSWORD:
        return gettext("Use at least %(minimum)s characters.", minimum=MIN_PASSWORD)
    if len(password) > BaseUser._max_password_length:
        return gettext("Use at most %(maximum)s characters.", maximum=BaseUser._max_password_length)
    if repeated is not None and repeated != password:
        return gettext("The two passwords differ.")
    return None


async def set_password(user_id: int, password: str) -> None:
    """Store a new password (hashed off the event loop) and end the user's sessions."""
    problem = password_problem(password)
    if problem:
        raise UserError(problem, "password")
    hashed = await run_cpu(BaseUser.hash_password, password)
    await BaseUser.update({BaseUser.password: hashed}).where(BaseUser.id == user_id)
    await end_sessions(user_id)


async def use_link(secret: str, password: str) -> dict[str, Any]:
    """Set the password through a one-time link; the link is spent."""
    user = await link_user(secret)
    if user is None:
        raise UserError(gettext("This link is not valid any more: ask an administrator for a new one."))
    await set_password(user["id"], password)
    await UserLink.update({UserLink.used_at: utcnow()}).where(UserLink.id == user["link_id"])
    return user


async def end_sessions(user_id: int) -> None:
    await SessionsBase.delete().where(SessionsBase.user_id == user_id)


async def set_active(user_id: int, active: bool) -> None:
    await BaseUser.update({BaseUser.active: active}).where(BaseUser.id == user_id)
    if not active:
        await end_sessions(user_id)


async def create_user(username: str, email: str, role: str, organization: int | None) -> int:
    """A new active user with no usable password yet (it is set through an invitation link)."""
    from csms.roles import set_role

    if await BaseUser.exists().where(BaseUser.username == username):
        raise UserError(gettext("A user named %(name)s exists already.", name=username), "username")
    if email and await BaseUser.exists().where(BaseUser.email == email):
        raise UserError(gettext("Another user has the e-mail address %(email)s.", email=email), "email")
    superuser = role == "admin" and organization is None  # the raw database page: global admins only
    unusable = secrets.token_urlsafe(48)
    hashed = await run_cpu(BaseUser.hash_password, unusable)
    user = BaseUser(username=username, email=email or f"{username}@users.invalid", password=hashed,
                    active=True, admin=superuser, superuser=superuser)
    async with plans.within_limits(organization, "users"):  # a plan without room: no user at all
        await user.save()
        await set_role(user.id, role, organization)
    return int(user.id)


async def user_rows(organizations: list[int] | None) -> list[dict[str, Any]]:
    """Users with their role and organization: all of them, or those of ``organizations``."""
    rows = await BaseUser.select(BaseUser.id, BaseUser.username, BaseUser.email, BaseUser.active,
                                 BaseUser.superuser, BaseUser.last_login).order_by(BaseUser.username)
    roles = {r["user_id"]: r for r in await UserRole.select(UserRole.user_id, UserRole.role, UserRole.organization)}
    out = []
    for row in rows:
        membership = roles.get(row["id"])
        role = membership["role"] if membership else ("admin" if row["superuser"] else "viewer")
        organization = membership["organization"] if membership else None
        if organizations is not None and organization not in organizations:
            continue
        out.append({**row, "role": role, "organization": organization})
    return out
