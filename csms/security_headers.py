"""Security headers of every HTML page (admin, driver portal, public pages, core and plugin pages
alike): a Content-Security-Policy that forbids inline script (pages carry no inline script or
event handler; behaviour lives in the static JS files), ``X-Content-Type-Options: nosniff`` and a
``Referrer-Policy``. One ASGI middleware for the whole app, so no page can forget it.

The policy allows images from the base map's tile host (``map_tile_url``, OpenStreetMap's by
default) and inline styles (``style`` attributes are used; htmx injects its indicator style). The
OpenAPI viewer under ``/api/v1/schema`` (Swagger UI's inline bootstrap script) and Piccolo Admin's
single-page app under ``/admin/db`` (its bundle evaluates code) are left out: vendored apps, not
pages of ours rendering data through our templates.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from litestar.enums import ScopeType
from litestar.middleware import DefineMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

EXEMPT_PREFIXES = ("/api/v1/schema", "/admin/db")


def tile_origin(tile_url: str) -> str | None:
    """The origin of a Leaflet tile URL template (``https://tile.example.org``; a templated host
    such as ``{s}.tile.example.org`` gives ``https://*.tile.example.org``), None for a relative one."""
    parts = urlsplit(tile_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    host = parts.netloc
    if "{" in host:
        host = "*." + host.split(".", 1)[1] if "." in host else "*"
    return f"{parts.scheme}://{host}"


def content_security_policy(tile_url: str | None) -> str:
    origin = tile_origin(tile_url) if tile_url else None
    images = "'self' data: blob:" + (f" {origin}" if origin else "")
    return ("default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'self'; "
            f"frame-ancestors 'none'; form-action 'self'; img-src {images}; "
            "style-src 'self' 'unsafe-inline'; connect-src 'self'")


class SecurityHeaders:
    """ASGI middleware adding the headers to every ``text/html`` response."""

    def __init__(self, app: ASGIApp, policy: str) -> None:
        self.app = app
        self.headers = [(b"content-security-policy", policy.encode()),
                        (b"x-content-type-options", b"nosniff"),
                        (b"referrer-policy", b"same-origin")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"].startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                start: Any = message
                headers: list[tuple[bytes, bytes]] = list(start.get("headers", ()))
                names = {bytes(k).lower() for k, _ in headers}
                ctype = next((bytes(v) for k, v in headers if bytes(k).lower() == b"content-type"), b"")
                if ctype.lower().startswith(b"text/html"):
                    headers += [h for h in self.headers if h[0] not in names]
                elif b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                start["headers"] = headers
            await send(message)

        await self.app(scope, receive, wrapped)


def middleware(tile_url: str | None) -> DefineMiddleware:
    """The middleware for ``Litestar(middleware=[...])``."""
    return DefineMiddleware(SecurityHeaders, policy=content_security_policy(tile_url))
