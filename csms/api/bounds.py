"""What the REST API accepts before a handler sees it: integers within the range of the column
they meet, JSON bodies no deeper than :data:`MAX_JSON_DEPTH`. One mechanism for every route
under ``/api/``, the core's and the plugins' alike (``create_app`` installs it):

- **Integer path and query parameters** (annotated ``int`` or ``int | None``) must lie in
  :data:`INT32` (PostgreSQL ``integer``: every id and ``Integer`` column), or in the bounds the
  parameter declares with ``Parameter(ge=..., le=...)`` (say ``le=INT64[1]`` for one compared
  with a ``BigInt`` column). :class:`IntParamBounds` answers 400 naming the parameter and its
  range before the handler runs (and before the database sees the number).
- **Integer body fields**: :data:`Int32` in msgspec structs; :func:`column_range` for fields
  written to a table's columns.
- **JSON bodies** nested deeper than :data:`MAX_JSON_DEPTH` are refused with 400 before they
  are decoded (:class:`BoundedRequest`).
- A number that still reaches the database out of its column's range (``OverflowError`` from
  sqlite3, asyncpg's ``DataError``) is answered 400 as the route answers a bad request
  (:func:`number_out_of_range`), never 500.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any
from urllib.parse import parse_qs

import msgspec
from asyncpg.exceptions import DataError, NumericValueOutOfRangeError
from litestar import Request, Response
from litestar.enums import ScopeType
from litestar.exceptions import ValidationException
from litestar.exceptions.responses import create_exception_response
from litestar.middleware import ASGIMiddleware
from litestar.params import ParameterKwarg
from litestar.typing import FieldDefinition
from piccolo.columns import BigInt, BigSerial, Column, ForeignKey, Integer, Serial, SmallInt

from csms.jsondepth import MAX_JSON_DEPTH, json_depth_exceeds

log = logging.getLogger("csms.api")

INT16 = (-(2**15), 2**15 - 1)
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

Int32 = Annotated[int, msgspec.Meta(ge=INT32[0], le=INT32[1])]
"""An integer body field stored in an ``Integer`` column (or sent as an OCPP integer)."""


def range_message(bounds: tuple[int, int]) -> str:
    return f"must be an integer from {bounds[0]} to {bounds[1]}"


def column_range(column: Column) -> tuple[int, int] | None:
    """The integers ``column`` holds on every database (None: not an integer column)."""
    if isinstance(column, ForeignKey):
        return column_range(column._foreign_key_meta.resolved_target_column)
    if isinstance(column, (BigInt, BigSerial)):
        return INT64
    if isinstance(column, SmallInt):
        return INT16
    return INT32 if isinstance(column, (Integer, Serial)) else None


# -- path and query parameters ----------------------------------------------------------------------

_INTEGER = re.compile(r"\s*([+-]?)0*([0-9]+)\s*")


def _integer(text: str) -> int | None:
    """``text`` as an integer if it is written as one (any length), else None."""
    match = _INTEGER.fullmatch(text)
    if match is None:
        return None
    digits = match.group(2)
    value = int(digits) if len(digits) <= 20 else 10**20  # beyond any column either way
    return -value if match.group(1) == "-" else value


def _declared_bounds(field: FieldDefinition) -> tuple[int, int] | None:
    types = [t.annotation for t in field.inner_types] if field.is_optional else [field.annotation]
    if int not in types:
        return None
    kwarg = field.kwarg_definition
    low = getattr(kwarg, "ge", None)
    high = getattr(kwarg, "le", None)
    return (INT32[0] if low is None else int(low), INT32[1] if high is None else int(high))


def check_int_params(scope: Any, handler: Any) -> None:
    """Raise 400 for an integer path or query parameter of ``handler`` outside its bounds."""
    path_params = scope.get("path_params") or {}
    query: dict[str, list[str]] | None = None
    for name, field in handler.parsed_fn_signature.parameters.items():
        bounds = _declared_bounds(field)
        if bounds is None:
            continue
        kwarg = field.kwarg_definition
        if name in path_params:
            key, source, values = name, "path", [path_params[name]]
        elif isinstance(kwarg, ParameterKwarg) and (kwarg.header or kwarg.cookie):
            continue
        else:
            if query is None:
                query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            key, source = (getattr(kwarg, "query", None) or name), "query"
            values = [_integer(v) for v in query.get(key, ())]
        for value in values:
            if isinstance(value, int) and not bounds[0] <= value <= bounds[1]:
                message = range_message(bounds)
                raise ValidationException(f"{source} parameter {key!r} {message}",
                                          extra=[{"message": message, "key": key, "source": source}])


class IntParamBounds(ASGIMiddleware):
    """Every route under ``/api/``: integer parameters within their bounds (see the module)."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Any, receive: Any, send: Any, next_app: Any) -> None:
        handler = scope.get("route_handler")
        if handler is not None and scope["path"].startswith("/api/"):
            check_int_params(scope, handler)
        await next_app(scope, receive, send)


# -- bodies -------------------------------------------------------------------------------------------


class BoundedRequest(Request):
    """The app's request class: a JSON body is checked for depth before it is decoded."""

    async def json(self) -> Any:
        if json_depth_exceeds(await self.body(), MAX_JSON_DEPTH):
            raise ValidationException(f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep")
        return await super().json()


# -- the database's last word -----------------------------------------------------------------------


def _is_overflow(exc: BaseException) -> bool:
    """sqlite3's "Python int too large", asyncpg's "value out of int32 range" (or PostgreSQL's)."""
    if isinstance(exc, (OverflowError, NumericValueOutOfRangeError)):
        return True
    return isinstance(exc, DataError) and isinstance(exc.__cause__, OverflowError)


def number_out_of_range(request: Request, exc: Exception) -> Response:
    """App-level handler of ``OverflowError`` and ``DataError``: 400 for a number out of its
    column's range, answered the way the route answers a bad request (JSON for the API, the
    admin's error page, the OCPI envelope); any other ``DataError`` as the route answers errors."""
    if _is_overflow(exc):
        exc = ValidationException("a number in the request is too large or too small to be stored")
    handlers = request.route_handler.resolve_exception_handlers()
    for kind in type(exc).__mro__:
        handler = handlers.get(kind)
        if handler is not None and handler is not number_out_of_range:
            return handler(request, exc)
    if not isinstance(exc, ValidationException):
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return create_exception_response(request, exc)


EXCEPTION_HANDLERS: dict[Any, Any] = {OverflowError: number_out_of_range, DataError: number_out_of_range}
