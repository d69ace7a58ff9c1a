"""The ``/ocpi`` router: every OCPI endpoint, answered in the OCPI envelope whatever happens.

Litestar answers a path no handler matches, or a method a path does not offer, before any of
the router's exception handlers run. :func:`answer_unrouted` (called at start-up) adds app-level
handlers for those two cases that, for paths under ``/ocpi`` only, answer as the router would:
through its middleware (ids, routing headers, request log), 401 without a valid credentials
token, else 404 or 405 in the envelope. Every other path keeps Litestar's answer.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response, Router
from litestar.exceptions import HTTPException, MethodNotAllowedException, NotFoundException
from litestar.exceptions.responses import create_exception_response

from plugins.roaming_ocpi import chargingprofiles, cpo, emsp, hubclientinfo, registration
from plugins.roaming_ocpi.middleware import ocpi_middleware
from plugins.roaming_ocpi.parties import CONFIGURATION_PATHS, authenticate
from plugins.roaming_ocpi.transport import CLIENT_ERROR, SERVER_ERROR, OcpiError, envelope, error_response
from plugins.roaming_ocpi.v211 import adapt_inbound

log = logging.getLogger("csms.ocpi")

PREFIX = "/ocpi"


def _http_error(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    return Response(content=envelope(status_code=CLIENT_ERROR if status < 500 else SERVER_ERROR, message=exc.detail),
                    status_code=status, media_type="application/json", headers=getattr(exc, "headers", None) or {})


def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("OCPI %s %s failed", request.method, request.url.path, exc_info=exc)
    return Response(content=envelope(status_code=SERVER_ERROR, message="internal error"), status_code=500,
                    media_type="application/json")


def ocpi_router() -> Router:
    return Router(
        path=PREFIX,
        route_handlers=[*registration.ROUTES, *cpo.ROUTES, *chargingprofiles.ROUTES, *emsp.ROUTES,
                        *hubclientinfo.ROUTES],
        middleware=[ocpi_middleware, adapt_inbound],
        exception_handlers={OcpiError: error_response, HTTPException: _http_error, Exception: _server_error},
        include_in_schema=False,
    )


# -- paths and methods no handler takes ---------------------------------------------------------------


class _Unrouted(Response):
    """The answer to an OCPI request no handler takes, produced by an ASGI app of its own so that
    it can check the token (a database read) and pass through the router's middleware."""

    def __init__(self, exc: OcpiError) -> None:
        super().__init__(content=None, status_code=exc.http_status)
        self.exc = exc

    def to_asgi_response(self, app: Any, request: Request, **kwargs: Any) -> Any:
        exc = self.exc

        async def answer(scope: Any, receive: Any, send: Any) -> None:
            req: Request = Request(scope, receive)
            path = scope.get("path", "").rstrip("/") or "/"
            try:
                await authenticate(req, registration=path in CONFIGURATION_PATHS)
                failure = exc
            except OcpiError as unauthorized:
                failure = unauthorized
            await error_response(req, failure).to_asgi_response(app=None, request=req)(scope, receive, send)

        return ocpi_middleware(answer)


def _under_ocpi(request: Request) -> bool:
    path = request.scope.get("path", "")
    return "route_handler" not in request.scope and (path == PREFIX or path.startswith(PREFIX + "/"))


def answer_unrouted(app: Any) -> None:
    """Make unknown paths (404) and methods (405) under ``/ocpi`` answer in the OCPI envelope."""
    handlers = app.exception_handlers  # the dict Litestar consults when routing fails

    def wrap(kind: type[HTTPException], build: Any) -> None:
        previous = handlers.get(kind) or handlers.get(kind.status_code)

        def handler(request: Request, exc: HTTPException) -> Response:
            if _under_ocpi(request):
                return _Unrouted(build(request))
            return previous(request, exc) if previous is not None else create_exception_response(request, exc)

        handlers[kind] = handler

    wrap(NotFoundException, lambda request: OcpiError(
        CLIENT_ERROR, f"no OCPI endpoint at {request.scope['path']}", http_status=404))
    wrap(MethodNotAllowedException, lambda request: OcpiError(
        CLIENT_ERROR, f"{request.method} is not offered at {request.scope['path']}", http_status=405))
