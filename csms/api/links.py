"""Absolute links to this server, for e-mails: the ``public_url`` setting, else the request's own base."""

from __future__ import annotations

from litestar.connection import ASGIConnection

from csms.core.runtime import get_core


def public_base_url(request: ASGIConnection) -> str:
    """``https://csms.example.com`` without a trailing slash: the configured ``public_url`` (a link
    mailed to someone never follows a forged Host header), or the request's base when unset."""
    configured = get_core().settings.public_url.strip()
    return (configured or str(request.base_url)).rstrip("/")
