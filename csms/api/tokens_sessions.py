"""Id tokens (cards, fobs, app tokens) and charging sessions with their meter values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from piccolo.columns.combination import Combinable
from piccolo.query.methods.select import Select

from csms.api.audit import actor_of
from csms.api.auth import require
from csms.api.bounds import Int32
from csms.api.crud import check_references, jsonable, page_params
from csms.api.tenancy import owner_for_new, restrict, tenant_scope
from csms.core import id_tokens
from csms.core.runtime import get_core
from csms.core.tables import ChargingSession, IdToken, MeterValue
from csms.plugins import call_hook
from csms.textsearch import contains


class TokenIn(msgspec.Struct, forbid_unknown_fields=True):
    id_token: str
    type: str = "ISO14443"
    status: str = "Accepted"
    expires_at: datetime | None = None
    group_id: str | None = None
    label: str = ""
    driver: Int32 | None = None
    organization: Int32 | None = None


class TokenPatch(msgspec.Struct, forbid_unknown_fields=True):
    type: str | None = None
    status: str | None = None
    expires_at: datetime | None = None
    clear_expiry: bool = False
    group_id: str | None = None
    label: str | None = None
    driver: Int32 | None = None
    organization: Int32 | None = None


def check_token_fields(type_: str | None, status: str | None, id_token: str | None = None) -> None:
    """The shared token rules (:func:`csms.core.id_tokens.check_fields`) as a 400."""
    try:
        id_tokens.check_fields(type_, status, id_token)
    except id_tokens.InvalidToken as exc:
        raise ValidationException(str(exc)) from None


async def token_row(id_token: str) -> dict[str, Any]:
    row = await IdToken.select().where(IdToken.id_token == id_token).first()
    if row is None:
        raise NotFoundException(f"no id token {id_token!r}")
    return row


class TokenController(Controller):
    path = "/tokens"
    tags = ["id tokens"]
    opt = {"tenant": {"id_token": "token"}}

    @get("/", guards=[require("viewer")])
    async def list_tokens(self, request: Request, q: str | None = None, status: str | None = None, driver: int | None = None,
                          group_id: str | None = None, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        limit, offset = page_params(limit, offset)
        scope = await tenant_scope(request)
        query = restrict(IdToken.select(), IdToken.organization, scope)
        count = restrict(IdToken.count(), IdToken.organization, scope)
        conds: list[Combinable] = []
        if q:
            conds.append(contains(IdToken.id_token, q) | contains(IdToken.label, q))
        if status:
            conds.append(IdToken.status == status)
        if driver is not None:
            conds.append(IdToken.driver == driver)
        if group_id:
            conds.append(IdToken.group_id == group_id)
        for c in conds:
            query, count = query.where(c), count.where(c)
        rows = await query.order_by(IdToken.id_token).limit(limit).offset(offset)
        return {"items": [jsonable(r) for r in rows], "total": await count, "limit": limit, "offset": offset}

    @post("/", guards=[require("operator")])
    async def create_token(self, request: Request, data: TokenIn) -> dict[str, Any]:
        check_token_fields(data.type, data.status, data.id_token)
        scope = await tenant_scope(request)
        values = msgspec.structs.asdict(data)
        values["organization"] = await owner_for_new(scope, data.organization, what="an id token")
        await check_references(IdToken, {"driver": data.driver}, scope)
        actor, actor_organization = await actor_of(request)
        try:
            created = await id_tokens.create(values, actor=actor, actor_organization=actor_organization)
        except id_tokens.TokenExists as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from None
        except id_tokens.InvalidToken as exc:
            raise ValidationException(str(exc)) from None
        return jsonable(created)

    @get("/{id_token:str}", guards=[require("viewer")])
    async def get_token(self, id_token: str) -> dict[str, Any]:
        return jsonable(await token_row(id_token))

    @patch("/{id_token:str}", guards=[require("operator")])
    async def update_token(self, request: Request, id_token: str, data: TokenPatch) -> dict[str, Any]:
        before = await token_row(id_token)
        check_token_fields(data.type, data.status)
        values = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None and k != "clear_expiry"}
        await check_references(IdToken, values, await tenant_scope(request))
        if data.clear_expiry:
            values["expires_at"] = None
        actor, actor_organization = await actor_of(request)
        try:
            _, after = await id_tokens.update(before["id"], values, actor=actor, actor_organization=actor_organization)
        except id_tokens.InvalidToken as exc:
            raise ValidationException(str(exc)) from None
        if after is None:
            raise NotFoundException(f"no id token {id_token!r}")
        return jsonable(after)

    @delete("/{id_token:str}", guards=[require("operator")])
    async def delete_token(self, request: Request, id_token: str) -> None:
        before = await token_row(id_token)
        actor, actor_organization = await actor_of(request)
        await id_tokens.delete(before["id"], actor=actor, actor_organization=actor_organization)


def _session_query(columns: list[Any] | None = None) -> Select:
    return ChargingSession.select(*(columns or [ChargingSession.all_columns()]),
                                  ChargingSession.station.station_id.as_alias("station_id")).output(load_json=True)


async def session_detail(session_id: int) -> dict[str, Any]:
    row = await _session_query().where(ChargingSession.id == session_id).first()
    if row is None:
        raise NotFoundException(f"no session {session_id}")
    detail = jsonable(row)
    live = get_core().sessions.find(row["station_id"], row["transaction_id"])
    if live is not None:  # the running figures, fresher than the last batched write
        detail.update(energy_wh=live.energy_wh, power_w=live.power_w, meter_last_wh=live.meter_last_wh,
                      current_a=live.current_a)
    cost = await call_hook("price_session", session=row, final=row["state"] == "completed")
    detail["cost"] = cost.to_json() if cost is not None else None
    return detail


class SessionController(Controller):
    path = "/sessions"
    tags = ["sessions"]
    opt = {"tenant": {"session_id": "session"}}

    @get("/", guards=[require("viewer")])
    async def list_sessions(self, request: Request, station: str | None = None, token: str | None = None, driver: int | None = None,
                            session_state: str | None = None, started_from: datetime | None = None,
                            started_to: datetime | None = None, limit: int = 100,
                            offset: int = 0) -> dict[str, Any]:
        """Sessions, newest first. The state filter is ``session_state`` (``state`` is reserved by Litestar)."""
        limit, offset = page_params(limit, offset)
        conds: list[Combinable] = []
        if station:
            conds.append(ChargingSession.station.station_id == station)
        if token:
            conds.append(ChargingSession.id_token == token)
        if driver is not None:
            conds.append(ChargingSession.driver == driver)
        if session_state:
            conds.append(ChargingSession.state == session_state)
        if started_from:
            conds.append(ChargingSession.started_at >= started_from)
        if started_to:
            conds.append(ChargingSession.started_at < started_to)
        scope = await tenant_scope(request)
        query = restrict(_session_query(), ChargingSession.station.organization, scope)
        count = restrict(ChargingSession.count(), ChargingSession.station.organization, scope)
        for c in conds:
            query, count = query.where(c), count.where(c)
        rows = await query.order_by(ChargingSession.started_at, ascending=False).limit(limit).offset(offset)
        return {"items": [jsonable(r) for r in rows], "total": await count, "limit": limit, "offset": offset}

    @get("/{session_id:int}", guards=[require("viewer")])
    async def get_session(self, session_id: int) -> dict[str, Any]:
        return await session_detail(session_id)

    @get("/{session_id:int}/meter-values", guards=[require("viewer")])
    async def meter_values(self, session_id: int, measurand: str | None = None, limit: int = 1000,
                           offset: int = 0) -> dict[str, Any]:
        if not 1 <= limit <= 10000 or offset < 0:
            raise ValidationException("limit must be 1-10000 and offset >= 0")
        await get_core().writer.flush()
        query = MeterValue.select().where(MeterValue.session == session_id)
        if measurand:
            query = query.where(MeterValue.measurand == measurand)
        rows = await query.order_by(MeterValue.timestamp).order_by(MeterValue.id).limit(limit).offset(offset)
        return {"items": [jsonable(r) for r in rows], "limit": limit, "offset": offset}


