"""Roles of admin users: admin (everything), operator (act on stations, cards, sessions), viewer (read)."""

from __future__ import annotations

from csms.core.tables import UserRole

ROLE_NAMES = ("admin", "operator", "viewer")


async def set_role(user_id: int, role: str) -> None:
    if role not in ROLE_NAMES:
        raise ValueError(f"role must be one of {', '.join(ROLE_NAMES)}")
    if await UserRole.exists().where(UserRole.user_id == user_id):
        await UserRole.update({UserRole.role: role}).where(UserRole.user_id == user_id)
    else:
        await UserRole(user_id=user_id, role=role).save()


async def role_of(user_id: int, *, superuser: bool = False) -> str:
    """A user's role; superusers without an explicit role are admins, others viewers."""
    row = await UserRole.select(UserRole.role).where(UserRole.user_id == user_id).first()
    if row is not None:
        return row["role"]
    return "admin" if superuser else "viewer"
