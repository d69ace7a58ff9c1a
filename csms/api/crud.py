"""One way to expose a core table as a REST collection: list (filter, page), create, read,
update, delete, with bodies validated against a pydantic model derived from the table."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.exceptions import NotFoundException, ValidationException
from piccolo.table import Table
from piccolo.utils.pydantic import create_pydantic_model
from pydantic import ValidationError

from csms.api.auth import require
from csms.api.bounds import column_range, range_message


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


def crud_controller(table: type[Table], path: str, *, filters: tuple[str, ...] = (),
                    order_by: str = "id") -> type[Controller]:
    """A controller for ``table`` at ``path``: GET list, POST, GET/PATCH/DELETE ``/{id}``."""
    pk = table._meta.primary_key  # ``table.id``: Piccolo's default primary key (not known to type checkers)
    model = create_pydantic_model(table, exclude_columns=(pk,), model_name=f"{table.__name__}In")
    name = table._meta.tablename
    ranges = {c._meta.name: r for c in table._meta.columns if (r := column_range(c)) is not None}

    async def _get_row(item_id: int) -> dict[str, Any]:
        row = await table.select().where(pk == item_id).first()
        if row is None:
            raise NotFoundException(f"no {name} with id {item_id}")
        return row

    class _Crud(Controller):
        tags = [name]

        @get("/", guards=[require("viewer")])
        async def list_items(self, request: Request, limit: int = 100, offset: int = 0) -> dict[str, Any]:
            limit, offset = page_params(limit, offset)
            query = table.select()
            count = table.count()
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
        async def create_item(self, data: dict[str, Any]) -> dict[str, Any]:
            values = validated(model, data, partial=False, ranges=ranges)
            row = table(**values)
            await row.save()
            return jsonable(await _get_row(row["id"]))

        @get("/{item_id:int}", guards=[require("viewer")])
        async def get_item(self, item_id: int) -> dict[str, Any]:
            return jsonable(await _get_row(item_id))

        @patch("/{item_id:int}", guards=[require("operator")])
        async def update_item(self, item_id: int, data: dict[str, Any]) -> dict[str, Any]:
            await _get_row(item_id)
            values = validated(model, data, partial=True, ranges=ranges)
            if values:
                await table.update({getattr(table, k): v for k, v in values.items()}).where(pk == item_id)
            return jsonable(await _get_row(item_id))

        @delete("/{item_id:int}", guards=[require("operator")])
        async def delete_item(self, item_id: int) -> None:
            await _get_row(item_id)
            await table.delete().where(pk == item_id)

    _Crud.__name__ = f"{table.__name__}Controller"
    _Crud.path = path
    return _Crud
