"""Roles of admin users: admin (everything), operator (act on stations, cards, sessions), viewer
(read), each held in one organization (or globally: the installation's owner)."""

from __future__ import annotations

from csms.core.tables import UserRole

ROLE_NAMES = ("admin", "operator", "viewer")
_UNSET = object()


async def set_role(user_id: int, role: str, organization: int | None | object = _UNSET) -> None:
    """Give a user ``role``, in ``organization`` when given (None: global); an existing user
    keeps its organization unless one is given."""
    if role not in ROLE_NAMES:
        raise ValueError(f"role must be one of {', '.join(ROLE_NAMES)}")
    values: dict = {UserRole.role: role}
    if organization is not _UNSET:
        values[UserRole.organization] = organization
    if await UserRole.exists().where(UserRole.user_id == user_id):
        await UserRole.update(values).where(UserRole.user_id == user_id)
    else:
        await UserRole(user_id=user_id, role=role,
                       organization=None if organization is _UNSET else organization).save()


async def membership_of(user_id: int, *, superuser: bool = False) -> tuple[str, int | None]:
    """A user's role and organization (None: global); superusers without an explicit role are
    global admins, others global viewers."""
    row = await UserRole.select(UserRole.role, UserRole.organization).where(UserRole.user_id == user_id).first()
    if row is not None:
        return row["role"], row["organization"]
    return ("admin" if superuser else "viewer"), None


async def role_of(user_id: int, *, superuser: bool = False) -> str:
    """A user's role (see :func:`membership_of`)."""
    return (await membership_of(user_id, superuser=superuser))[0]
