"""The TLS context of the plugin's outgoing HTTPS (OCSP responders, CRL distribution points):
the system's trust store, loaded once in a thread, since every ``httpx.AsyncClient`` made without
one would read a CA bundle on the event loop."""

from __future__ import annotations

import asyncio
import ssl

_context: ssl.SSLContext | None = None


async def default_tls() -> ssl.SSLContext:
    global _context
    if _context is None:
        _context = await asyncio.to_thread(ssl.create_default_context)
    return _context
