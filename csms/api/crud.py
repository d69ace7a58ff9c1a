"""One way to expose a core table as a REST collection: list (filter, page), create, read,
update, delete, with bodies validated against a pydantic model derived from the table, each
limited to the caller's tenant (:mod:`csms.api.tenancy`). Writes go through the table's service
(:data:`WRITERS`), which also adds the audit entry."""

from __future__ import annotations

from functools import partial
from typing import Any, Awaitable, Callable, NamedTuple

from litestar import Controller, Request, delete, get, patch, post
from litestar.exceptions import HTTPException, NotFoundException, PermissionDeniedException, ValidationException
from piccolo.table import Table
from piccolo.utils.pydantic import create_pydantic_model
from pydantic import ValidationError

from csms.api.audit import actor_of
from csms.api.auth import require
from csms.api.bounds import column_range, range_message
from csms.api.drivers import DriverDataRoutes, driver_has_sessions
from csms.api.tenancy import KINDS, MISSING, Scope, check_assignable, descendants, organization_tree, \
    owner_for_new, restrict, tenant_scope
from csms.core.services import directory, driver_data, hubs, plans, sites
from csms.core.tables import Driver, Hub, Organization, Plan, Site


class Writer(NamedTuple):
    """A collection's service functions, each called with ``actor=`` and ``actor_organization=``
    and adding the audit entry: ``create(values)`` (its id), ``update(id, values)``, ``delete(id)``."""

    create: Callable[..., Awaitable[int]]
    update: Callable[..., Awaitable[None]]
    delete: Callable[..., Awaitable[None]]


def _directory(kind: directory.Kind) -> Writer:
    return Writer(partial(directory.create, kind), partial(directory.update, kind), partial(directory.delete, kind))


WRITERS: dict[type[Table], Writer] = {
    Organization: _directory("organization"),
    Driver: _directory("driver"),
    Site: Writer(sites.create_site, sites.update_site, sites.delete_site),
    Hub: Writer(sites.create_hub, sites.update_hub, sites.delete_hub),
}
# Foreign keys to these tables name tenant objects: a value must be one the caller sees.
_REFERENCED_KINDS = {Organization: "organization", Site: "site", Hub: "hub", Driver: "driver"}
# Routes a collection has beyond CRUD (mixed into its controller).
_EXTRA_ROUTES: dict[type[Table], type] = {Driver: DriverDataRoutes}


async def check_references(table: type[Table], values: dict[str, Any], scope: Scope) -> None:
    """Every foreign key in ``values`` names an object the caller sees (422 otherwise)."""
    for column in table._meta.foreign_key_columns:
        name = column._meta.name
        value = values.get(name)
        kind = _REFERENCED_KINDS.get(column._foreign_key_meta.resolved_references)
        if kind is None or name not in values:
            continue
        if kind == "organization":
            await check_assignable(scope, value, what=f"{table._meta.tablename}.{name}")
        elif value is not None:
            owner = await KINDS[kind](value)
            if owner is MISSING or not scope.sees(owner):  # type: ignore[arg-type]
                raise ValidationException(f"no {kind} {value} (or not one you manage)")


async def check_parent(item_id: int, parent: int | None) -> None:
    """An organization's new parent is not the organization itself nor one below it."""
    if parent is not None and parent in descendants(await organization_tree(), item_id):
        raise ValidationException(f"organization {parent} is {item_id} itself or below it: "
                                  "the parent chain would be a cycle")


def hub_full(exc: hubs.HubFull) -> HTTPException:
    """409 naming the hub and its limit."""
    return HTTPException(status_code=409, detail=str(exc),
                         extra={"error": "HubFull", "hub": exc.hub_id, "stations": exc.count, "limit": exc.limit})


def organization_name_taken(exc: directory.OrganizationNameTaken) -> HTTPException:
    """409: another organization has the name."""
    return HTTPException(status_code=409, detail=str(exc), extra={"error": "OrganizationNameTaken", "name": exc.name})


def plan_limit(exc: plans.PlanLimitReached) -> HTTPException:
    """409 naming the plan and the limit it would break."""
    return HTTPException(status_code=409, detail=str(exc),
                         extra={"error": "PlanLimitReached", "plan": exc.plan, "limit": exc.kind,
                                "allowed": exc.limit, "count": exc.count})


async def check_plan_choice(scope: Scope, values: dict[str, Any]) -> None:
    """Only global callers choose an organization's plan (403), and only one that exists (422)."""
    if "plan" not in values:
        return
    if not scope.is_global:
        raise PermissionDeniedException("only the installation's admins choose an organization's plan")
    if values["plan"] is not None and not await Plan.exists().where(Plan.id == values["plan"]):
        raise ValidationException(f"no plan {values['plan']}")


def page_params(limit: int, offset: int) -> tuple[int, int]:
    if not 1 <= limit <= 1000:
        raise ValidationException("limit must be between 1 and 1000")
    if offset < 0:
        raise ValidationException("offset must be >= 0")
    return limit, offset


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


def validated(model: Any, data: dict[str, Any], *, partial: bool,
              ranges: dict[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    """``data`` checked against ``model``, integers against ``ranges`` (field → column range)."""
    if not isinstance(data, dict):
        raise ValidationException("the body must be a JSON object")
    unknown = set(data) - set(model.model_fields)
    if unknown:
        raise ValidationException(f"unknown fields: {', '.join(sorted(unknown))}")
    try:
        obj = model.model_validate(data)
    except ValidationError as exc:
        raise ValidationException("invalid body", extra=[
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]) from None
    wide = [{"field": k, "message": range_message(r)} for k, r in (ranges or {}).items()
            if isinstance(v := getattr(obj, k, None), int) and not r[0] <= v <= r[1]]
    if wide:
        raise ValidationException("invalid body: " + "; ".join(f"{e['field']} {e['message']}" for e in wide),
                                  extra=wide)
    return obj.model_dump(include=set(data)) if partial else obj.model_dump(exclude_unset=True)


def crud_controller(table: type[Table], path: str, *, kind: str, owner: Any, filters: tuple[str, ...] = (),
                    order_by: str = "id") -> type[Controller]:
    """A controller for ``table`` at ``path``: GET list, POST, GET/PATCH/DELETE ``/{id}``.

    ``kind`` is the tenancy object kind of a row (the ``{item_id}`` rule); ``owner`` the column
    holding a row's organization (through a foreign key, or the id itself for organizations).
    """
    pk = table._meta.primary_key  # ``table.id``: Piccolo's default primary key (not known to type checkers)
    writer = WRITERS[table]
    model = create_pydantic_model(table, exclude_columns=(pk,), model_name=f"{table.__name__}In")
    name = table._meta.tablename
    ranges = {c._meta.name: r for c in table._meta.columns if (r := column_range(c)) is not None}

    async def _get_row(item_id: int) -> dict[str, Any]:
        row = await table.select().where(pk == item_id).first()
        if row is None:
            raise NotFoundException(f"no {name} with id {item_id}")
        return row

    direct_owner = not owner._meta.call_chain and owner._meta.name == "organization"
    via = owner._meta.call_chain[0]._meta.name if owner._meta.call_chain else None  # e.g. a hub's site

    async def checked(request: Request, values: dict[str, Any], item_id: int | None) -> dict[str, Any]:
        scope = await tenant_scope(request)
        if table is Organization:
            if (item_id is None or "name" in values) and not str(values.get("name") or "").strip():
                raise ValidationException("an organization needs a name")
            if item_id is None and "parent" not in values and not scope.is_global:
                values["parent"] = scope.organization
            if item_id is not None and item_id == scope.organization and "parent" in values:
                raise ValidationException("you cannot move your own organization")
            if item_id is not None and "parent" in values:
                await check_parent(item_id, values["parent"])
            await check_plan_choice(scope, values)
        elif direct_owner and item_id is None:
            values["organization"] = await owner_for_new(scope, values.get("organization"), what=f"a {kind}")
        elif via and not scope.is_global and (item_id is None or via in values) and values.get(via) is None:
            raise ValidationException(f"a {kind} of your organization needs a {via}")
        await check_references(table, values, scope)
        return values

    class _Crud(Controller):
        tags = [name]
        opt = {"tenant": {"item_id": kind}}

        @get("/", guards=[require("viewer")])
        async def list_items(self, request: Request, limit: int = 100, offset: int = 0) -> dict[str, Any]:
            limit, offset = page_params(limit, offset)
            scope = await tenant_scope(request)
            query = restrict(table.select(), owner, scope)
            count = restrict(table.count(), owner, scope)
            for f in filters:
                if f in request.query_params:
                    col = getattr(table, f)
                    try:
                        value: Any = col.value_type(request.query_params[f])
                    except (TypeError, ValueError):
                        raise ValidationException(f"{f} must be a {col.value_type.__name__}") from None
                    if f in ranges and not ranges[f][0] <= value <= ranges[f][1]:
                        raise ValidationException(f"query parameter {f!r} {range_message(ranges[f])}")
                    query = query.where(col == value)
                    count = count.where(col == value)
            rows = await query.order_by(getattr(table, order_by)).limit(limit).offset(offset)
            return {"items": [jsonable(r) for r in rows], "total": await count, "limit": limit, "offset": offset}

        @post("/", guards=[require("operator")])
        async def create_item(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
            values = await checked(request, validated(model, data, partial=False, ranges=ranges), None)
            actor, actor_organization = await actor_of(request)
            try:
                item_id = await writer.create(values, actor=actor, actor_organization=actor_organization)
            except (hubs.HubLimitInvalid, hubs.LocalControllerInvalid) as exc:
                raise ValidationException(str(exc)) from None
            except directory.OrganizationNameTaken as exc:
                raise organization_name_taken(exc) from None
            except plans.PlanLimitReached as exc:
                raise plan_limit(exc) from None
            return jsonable(await _get_row(item_id))

        @get("/{item_id:int}", guards=[require("viewer")])
        async def get_item(self, item_id: int) -> dict[str, Any]:
            return jsonable(await _get_row(item_id))

        @patch("/{item_id:int}", guards=[require("operator")])
        async def update_item(self, request: Request, item_id: int, data: dict[str, Any]) -> dict[str, Any]:
            await _get_row(item_id)
            values = await checked(request, validated(model, data, partial=True, ranges=ranges), item_id)
            if values:
                actor, actor_organization = await actor_of(request)
                try:
                    await writer.update(item_id, values, actor=actor, actor_organization=actor_organization)
                except (hubs.HubLimitInvalid, hubs.LocalControllerInvalid) as exc:
                    raise ValidationException(str(exc)) from None
                except directory.OrganizationNameTaken as exc:
                    raise organization_name_taken(exc) from None
                except hubs.HubFull as exc:
                    raise hub_full(exc) from None
                except plans.PlanLimitReached as exc:
                    raise plan_limit(exc) from None
            return jsonable(await _get_row(item_id))

        @delete("/{item_id:int}", guards=[require("operator")])
        async def delete_item(self, request: Request, item_id: int) -> None:
            await _get_row(item_id)
            if table is Organization and item_id == (await tenant_scope(request)).organization:
                raise ValidationException("you cannot delete your own organization")
            actor, actor_organization = await actor_of(request)
            try:
                await writer.delete(item_id, actor=actor, actor_organization=actor_organization)
            except directory.OrganizationInUse as exc:
                raise HTTPException(status_code=409, detail=str(exc)) from None
            except driver_data.DriverHasSessions as exc:
                raise driver_has_sessions(exc) from None
            except driver_data.UnknownDriver:
                raise NotFoundException(f"no {name} with id {item_id}") from None

    _Crud.__name__ = f"{table.__name__}Controller"
    _Crud.path = path
    extra = _EXTRA_ROUTES.get(table)
    if extra is None:
        return _Crud
    return type(_Crud.__name__, (extra, _Crud), {"path": path})  # the collection's own routes too
