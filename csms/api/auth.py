"""Who is calling: bearer API keys for machines (and, through ``principal_resolvers``, the
admin's logged-in users). Roles: admin > operator > viewer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from csms.core.security import api_key_prefix, hash_api_key
from csms.core.tables import ApiKey
from csms.core.timeutil import utcnow

ROLES = {"viewer": 0, "operator": 1, "admin": 2}


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    kind: str  # api_key|user

    def can(self, role: str) -> bool:
        return ROLES.get(self.role, -1) >= ROLES[role]


_cache: dict[str, tuple[float, Principal | None]] = {}
_CACHE_SECONDS = 10.0

# Other ways to identify a caller (the admin adds its session login here).
principal_resolvers: list[Callable[[ASGIConnection], Awaitable[Principal | None]]] = []


async def api_key_principal(connection: ASGIConnection) -> Principal | None:
    header = connection.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    key = header[7:].strip()
    digest = hash_api_key(key)
    hit = _cache.get(digest)
    now = time.monotonic()
    if hit and now - hit[0] < _CACHE_SECONDS:
        return hit[1]
    prefix = api_key_prefix(key)
    principal = None
    if prefix:
        row = await ApiKey.select(ApiKey.id, ApiKey.name, ApiKey.role).where(
            (ApiKey.prefix == prefix) & (ApiKey.key_hash == digest) & (ApiKey.revoked == False)  # noqa: E712
        ).first()
        if row:
            principal = Principal(row["name"], row["role"], "api_key")
            await ApiKey.update({ApiKey.last_used_at: utcnow()}).where(ApiKey.id == row["id"])
    _cache[digest] = (now, principal)
    return principal


async def principal_of(connection: ASGIConnection) -> Principal | None:
    cached = connection.scope.get("csms_principal")
    if cached is not None:
        return cached
    principal = await api_key_principal(connection)
    if principal is None:
        for resolver in principal_resolvers:
            principal = await resolver(connection)
            if principal is not None:
                break
    if principal is not None:
        connection.scope["csms_principal"] = principal  # type: ignore[typeddict-unknown-key]
    return principal


def require(role: str) -> Callable[[ASGIConnection, BaseRouteHandler], Awaitable[None]]:
    """A Litestar guard: the caller must be authenticated with at least ``role``."""

    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        principal = await principal_of(connection)
        if principal is None:
            raise NotAuthorizedException("authentication required: send 'Authorization: Bearer <API key>'")
        if not principal.can(role):
            raise PermissionDeniedException(f"this needs the {role} role; you are {principal.role}")

    return guard


def caller(connection: ASGIConnection) -> str:
    principal: Any = connection.scope.get("csms_principal")
    return f"{principal.kind}:{principal.name}" if principal else ""


def forget_cached_keys() -> None:
    _cache.clear()
