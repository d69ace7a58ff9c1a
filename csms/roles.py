"""Roles of admin users: admin (everything), operator (act on stations, cards, sessions), viewer
(read), each held in one organization (or globally: the installation's owner). The user's time
zone (an IANA name, "" for the installation's ``admin_time_zone``) and language (``de``, "" for
the browser's, else the installation's ``admin_language``) are kept with the role."""

from __future__ import annotations

from typing import Any

from csms.core.services import plans
from csms.core.tables import UserRole

ROLE_NAMES = ("admin", "operator", "viewer")
_UNSET = object()


async def set_role(user_id: int, role: str, organization: int | None | object = _UNSET) -> None:
    """Give a user ``role``, in ``organization`` when given (None: global); an existing user
    keeps its organization unless one is given. Putting the user into an organization whose plan
    has no room for another user is refused (:class:`~csms.core.services.plans.PlanLimitReached`)."""
    if role not in ROLE_NAMES:
        raise ValueError(f"role must be one of {', '.join(ROLE_NAMES)}")
    values: dict = {UserRole.role: role}
    if organization is not _UNSET:
        values[UserRole.organization] = organization
    async with plans.within_limits(organization if isinstance(organization, int) else None, "users"):
        if await UserRole.exists().where(UserRole.user_id == user_id):
            await UserRole.update(values).where(UserRole.user_id == user_id)
        else:
            await UserRole(user_id=user_id, role=role,
                           organization=None if organization is _UNSET else organization).save()


async def account_of(user_id: int, *, superuser: bool = False) -> tuple[str, int | None, str, str]:
    """A user's role, organization (None: global), time zone ("": the installation's) and
    language ("": not chosen); superusers without an explicit role are global admins, others
    global viewers."""
    row = await UserRole.select(UserRole.role, UserRole.organization, UserRole.time_zone, UserRole.language).where(
        UserRole.user_id == user_id).first()
    if row is not None:
        return row["role"], row["organization"], row["time_zone"] or "", row["language"] or ""
    return ("admin" if superuser else "viewer"), None, "", ""


async def membership_of(user_id: int, *, superuser: bool = False) -> tuple[str, int | None]:
    """A user's role and organization (see :func:`account_of`)."""
    role, organization, _, _ = await account_of(user_id, superuser=superuser)
    return role, organization


async def set_time_zone(user_id: int, zone: str, *, superuser: bool = False) -> None:
    """Keep ``zone`` (an IANA name, checked by the caller; "" for the installation's) as the
    user's time zone; a user without a role row gets one with the role they hold implicitly."""
    await _set_preference(user_id, UserRole.time_zone, zone, superuser=superuser)


async def set_language(user_id: int, language: str, *, superuser: bool = False) -> None:
    """Keep ``language`` (one of :data:`csms.i18n.LANGUAGES`, checked by the caller; "" for the
    browser's) as the user's language."""
    await _set_preference(user_id, UserRole.language, language, superuser=superuser)


async def _set_preference(user_id: int, column: Any, value: str, *, superuser: bool) -> None:
    """A preference kept on the role row; a user without one gets one with the role they hold
    implicitly."""
    if await UserRole.exists().where(UserRole.user_id == user_id):
        await UserRole.update({column: value}).where(UserRole.user_id == user_id)
    else:
        row = UserRole(user_id=user_id, role="admin" if superuser else "viewer", organization=None)
        setattr(row, column._meta.name, value)
        await row.save()


async def role_of(user_id: int, *, superuser: bool = False) -> str:
    """A user's role (see :func:`membership_of`)."""
    return (await membership_of(user_id, superuser=superuser))[0]


async def recipient_language(address: str) -> str:
    """The language to write to the e-mail address ``address`` in: the one its admin user chose on
    their account page, else the installation's ``admin_language``."""
    from piccolo.apps.user.tables import BaseUser

    from csms import i18n

    user = await BaseUser.select(BaseUser.id).where(BaseUser.email == address.strip()).first() if address else None
    row = await UserRole.select(UserRole.language).where(UserRole.user_id == user["id"]).first() if user else None
    return (row or {}).get("language") or i18n.default_language()
