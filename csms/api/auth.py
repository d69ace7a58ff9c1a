"""Who is calling: bearer API keys for machines (and, through ``principal_resolvers``, the
admin's logged-in users). Roles: admin > operator > viewer.

A key's lookup is remembered for :data:`CACHE_SECONDS` in a bounded LRU (good and bad keys
alike, at most :data:`CACHE_SIZE` of them). Revoking a key through :func:`revoke_api_key` (the
REST API) drops it at once on this node and, in multi-node mode, on every other node through
Redis; a key revoked by another process (``csms apikey revoke``) is refused once the entry
expires, within :data:`CACHE_SECONDS`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Awaitable, Callable, cast

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from csms.core import cluster, runtime
from csms.core.security import api_key_prefix, hash_api_key, new_api_key
from csms.core.services import plans
from csms.core.tables import ApiKey
from csms.core.timeutil import utcnow

ROLES = {"viewer": 0, "operator": 1, "admin": 2}
CACHE_SECONDS = 1.0
CACHE_SIZE = 4096
KEY_REVOKED = "api-key-revoked"  # the broadcast topic; its payload is the key's hash
_LAST_USED_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    kind: str  # api_key|user
    organization: int | None = None  # None: global (the installation's owner)

    def can(self, role: str) -> bool:
        return ROLES.get(self.role, -1) >= ROLES[role]


_cache: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()  # key hash → (looked up at, who)
_forgotten = 0  # counts forget_key calls: a lookup that raced a revocation is not remembered

# Other ways to identify a caller (the admin adds its session login here).
principal_resolvers: list[Callable[[ASGIConnection], Awaitable[Principal | None]]] = []


async def api_key_principal(connection: ASGIConnection) -> Principal | None:
    header = connection.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    key = header[7:].strip()
    digest = hash_api_key(key)
    now = time.monotonic()
    hit = _cache.get(digest)
    if hit and now - hit[0] < CACHE_SECONDS:
        _cache.move_to_end(digest)
        return hit[1]
    forgotten = _forgotten
    prefix = api_key_prefix(key)
    principal = None
    if prefix:
        row = await ApiKey.select(ApiKey.id, ApiKey.name, ApiKey.role, ApiKey.organization,
                                  ApiKey.last_used_at).where(
            (ApiKey.prefix == prefix) & (ApiKey.key_hash == digest) & (ApiKey.revoked == False)  # noqa: E712
        ).first()
        if row:
            principal = Principal(row["name"], row["role"], "api_key", row["organization"])
            if row["last_used_at"] is None or utcnow() - row["last_used_at"] > _LAST_USED_EVERY:
                await ApiKey.update({ApiKey.last_used_at: utcnow()}).where(ApiKey.id == row["id"])
    if forgotten == _forgotten:
        _cache[digest] = (now, principal)
        _cache.move_to_end(digest)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return principal


async def principal_of(connection: ASGIConnection) -> Principal | None:
    cached = cast("Principal | None", connection.scope.get("csms_principal"))  # set below
    if cached is not None:
        return cached
    principal = await api_key_principal(connection)
    if principal is not None and principal.organization is not None:
        try:
            await plans.require_feature(principal.organization, plans.API_ACCESS)
        except plans.FeatureNotInPlan as exc:
            raise PermissionDeniedException(
                f"API keys are refused: plan {exc.plan} of organization {exc.organization} does not include "
                "API access", extra={"error": "FeatureNotInPlan", "plan": exc.plan, "feature": exc.feature}) from None
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

    guard.csms_role = role  # type: ignore[attr-defined]  # how a route's own API guard is recognised
    return guard


def caller(connection: ASGIConnection) -> str:
    principal: Any = connection.scope.get("csms_principal")
    return f"{principal.kind}:{principal.name}" if principal else ""


def forget_cached_keys() -> None:
    global _forgotten
    _forgotten += 1
    _cache.clear()


def forget_key(digest: str) -> None:
    """Drop one key (by its hash) from this node's cache."""
    global _forgotten
    _forgotten += 1
    _cache.pop(digest, None)


cluster.BROADCAST_HANDLERS[KEY_REVOKED] = forget_key


async def create_api_key(name: str, role: str, organization: int | None = None) -> tuple[str, int]:
    """A new key for ``name`` with ``role`` in ``organization`` (None: global): (the key, shown
    once; its row id)."""
    key, prefix, digest = new_api_key()
    row = ApiKey(name=name, prefix=prefix, key_hash=digest, role=role, organization=organization)
    async with plans.within_limits(organization, "api_keys"):
        await row.save()
    return key, row.id


async def revoke_api_key(key_id: int) -> bool:
    """Revoke key ``key_id`` (False if there is none): refused from now on by this node, and by
    every node of a cluster as soon as Redis delivers the news."""
    row = await ApiKey.select(ApiKey.key_hash).where(ApiKey.id == key_id).first()
    if row is None:
        return False
    await ApiKey.update({ApiKey.revoked: True}).where(ApiKey.id == key_id)
    forget_key(row["key_hash"])
    await runtime.broadcast(KEY_REVOKED, row["key_hash"])
    return True
