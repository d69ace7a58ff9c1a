"""How the app is served: uvicorn options derived from the settings (used by ``csms serve`` and tests)."""

from __future__ import annotations

import ssl
from typing import Any

from csms.settings import Settings

# The transport accepts frames up to this size; larger frames within it get an OCPP CALLERROR
# (``max_frame_bytes``), so a station sending one oversized message keeps its connection.
TRANSPORT_MAX_FRAME = 16 * 1024 * 1024


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "ws": "websockets",
        "ws_max_size": TRANSPORT_MAX_FRAME,
        "ws_ping_interval": settings.ping_interval or None,
        "ws_ping_timeout": settings.ping_timeout or None,
        "lifespan": "on",
        "access_log": False,
        # open admin pages hold live-update streams; do not let them hold up a shutdown
        "timeout_graceful_shutdown": 5,
    }
    if settings.tls_cert and settings.tls_key:
        options.update(ssl_certfile=settings.tls_cert, ssl_keyfile=settings.tls_key)
        if settings.tls_ca:  # security profile 3: stations present client certificates
            options.update(ssl_ca_certs=settings.tls_ca, ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options
