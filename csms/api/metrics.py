"""``GET /metrics``: this node's Prometheus metrics (see :mod:`csms.core.metrics`).

Installation-wide (an organization's keys get 404). A scraper authenticates with
``Authorization: Bearer <token>``: the ``metrics_token`` setting when it is set (no API key, no
database lookup), or else any installation-wide API key (viewer is enough); a global admin user
logged in to the admin may read it in the browser.
"""

from __future__ import annotations

import hmac

from litestar import Response, get
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from prometheus_client import REGISTRY, generate_latest

from csms.api import tenancy
from csms.api.auth import principal_of


async def metrics_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    from csms.core.runtime import get_core

    token = get_core().settings.metrics_token
    header = connection.headers.get("authorization", "")
    if token and header.lower().startswith("bearer ") and hmac.compare_digest(header[7:].strip().encode(), token.encode()):
        return
    principal = await principal_of(connection) or await tenancy.caller_principal(connection)
    if principal is None:
        raise NotAuthorizedException("send 'Authorization: Bearer <metrics token or API key>'")
    if principal.organization is not None:  # installation-wide, as the tenant guard answers pages
        raise NotFoundException(f"no such page: {connection.scope['path']}")
    if not principal.can("viewer"):
        raise PermissionDeniedException(f"this needs the viewer role; you are {principal.role}")


@get("/metrics", guards=[metrics_guard], include_in_schema=False, opt={"tenant": tenancy.GLOBAL_ONLY})
async def metrics_endpoint() -> Response[bytes]:
    """This node's metrics in the Prometheus text format."""
    # the classic text format every Prometheus reads (Litestar adds the charset)
    return Response(generate_latest(REGISTRY), media_type="text/plain; version=0.0.4")
