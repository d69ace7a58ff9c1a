"""API keys over REST (admin role): list them (never the keys), create one (the key is shown
once), revoke one (refused at once on every node; the row stays, marked revoked)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, delete, get, post
from litestar.exceptions import NotFoundException, ValidationException

from csms.api.auth import ROLES, create_api_key, require, revoke_api_key
from csms.api.crud import jsonable
from csms.core.tables import ApiKey

_COLUMNS = (ApiKey.id, ApiKey.name, ApiKey.prefix, ApiKey.role, ApiKey.revoked, ApiKey.created_at,
            ApiKey.last_used_at)


class ApiKeyIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    role: str = "viewer"


async def _key_row(key_id: int) -> dict[str, Any]:
    row = await ApiKey.select(*_COLUMNS).where(ApiKey.id == key_id).first()
    if row is None:
        raise NotFoundException(f"no API key {key_id}")
    return jsonable(row)


class ApiKeyController(Controller):
    path = "/api-keys"
    tags = ["api keys"]
    guards = [require("admin")]

    @get("/")
    async def list_keys(self) -> dict[str, Any]:
        return {"items": [jsonable(r) for r in await ApiKey.select(*_COLUMNS).order_by(ApiKey.id)]}

    @post("/")
    async def create_key(self, data: ApiKeyIn) -> dict[str, Any]:
        """A new key; ``key`` is in this answer only (send it as ``Authorization: Bearer <key>``)."""
        if not 1 <= len(data.name) <= 100:
            raise ValidationException("name must be 1-100 characters")
        if data.role not in ROLES:
            raise ValidationException(f"role must be one of {sorted(ROLES)}")
        key, key_id = await create_api_key(data.name, data.role)
        return {**await _key_row(key_id), "key": key}

    @delete("/{key_id:int}")
    async def revoke_key(self, key_id: int) -> None:
        """Revoke the key: every request with it is refused (401) from now on."""
        if not await revoke_api_key(key_id):
            raise NotFoundException(f"no API key {key_id}")
