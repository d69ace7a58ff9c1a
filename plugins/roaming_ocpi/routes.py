"""The ``/ocpi`` router: every OCPI endpoint, answered in the OCPI envelope whatever happens."""

from __future__ import annotations

import logging

from litestar import Request, Response, Router
from litestar.exceptions import HTTPException

from plugins.roaming_ocpi import cpo, emsp, registration
from plugins.roaming_ocpi.middleware import ocpi_middleware
from plugins.roaming_ocpi.transport import CLIENT_ERROR, SERVER_ERROR, OcpiError, envelope, error_response

log = logging.getLogger("csms.ocpi")


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
        path="/ocpi",
        route_handlers=[*registration.ROUTES, *cpo.ROUTES, *emsp.ROUTES],
        middleware=[ocpi_middleware],
        exception_handlers={OcpiError: error_response, HTTPException: _http_error, Exception: _server_error},
        include_in_schema=False,
    )
