"""API keys over REST (admin role): list them (never the keys), create one (the key is shown
once), revoke one (refused at once on every node; the row stays, marked revoked). An admin of an
organization manages the keys of its organization and those below it; only a global admin makes
global keys."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.exceptions import NotFoundException, ValidationException

from csms.api.audit import audited
from csms.api.auth import ROLES, create_api_key, require, revoke_api_key
from csms.api.crud import jsonable, plan_limit
from csms.api.tenancy import owner_for_new, restrict, tenant_scope
from csms.core.services import plans
from csms.core.tables import ApiKey

_COLUMNS = (ApiKey.id, ApiKey.name, ApiKey.prefix, ApiKey.role, ApiKey.organization, ApiKey.revoked,
            ApiKey.created_at, ApiKey.last_used_at)


class ApiKeyIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    role: str = "viewer"
    organization: int | None = None  # default: the caller's (none for a global caller: a global key)


async def _key_row(key_id: int) -> dict[str, Any]:
    row = await ApiKey.select(*_COLUMNS).where(ApiKey.id == key_id).first()
    if row is None:
        raise NotFoundException(f"no API key {key_id}")
    return jsonable(row)


class ApiKeyController(Controller):
    path = "/api-keys"
    tags = ["api keys"]
    guards = [require("admin")]
    opt = {"tenant": {"key_id": "api_key"}}

    @get("/")
    async def list_keys(self, request: Request) -> dict[str, Any]:
        query = restrict(ApiKey.select(*_COLUMNS), ApiKey.organization, await tenant_scope(request))
        return {"items": [jsonable(r) for r in await query.order_by(ApiKey.id)]}

    @post("/")
    async def create_key(self, request: Request, data: ApiKeyIn) -> dict[str, Any]:
        """A new key; ``key`` is in this answer only (send it as ``Authorization: Bearer <key>``)."""
        if not 1 <= len(data.name) <= 100:
            raise ValidationException("name must be 1-100 characters")
        if data.role not in ROLES:
            raise ValidationException(f"role must be one of {sorted(ROLES)}")
        organization = await owner_for_new(await tenant_scope(request), data.organization, what="an API key")
        try:
            key, key_id = await create_api_key(data.name, data.role, organization)
        except plans.PlanLimitReached as exc:
            raise plan_limit(exc) from None
        row = await _key_row(key_id)
        await audited(request, "create", "api_key", key_id, after=row)
        return {**row, "key": key}

    @delete("/{key_id:int}")
    async def revoke_key(self, request: Request, key_id: int) -> None:
        """Revoke the key: every request with it is refused (401) from now on."""
        before = await _key_row(key_id)
        if not await revoke_api_key(key_id):
            raise NotFoundException(f"no API key {key_id}")
        await audited(request, "update", "api_key", key_id, before=before, after=await _key_row(key_id),
                      summary="revoked")
