"""How the app is served: uvicorn options derived from the settings (used by ``csms serve`` and tests)."""

from __future__ import annotations

import ssl
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from csms.settings import Settings

class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol plus the ASGI TLS extension.

    With client certificates (security profile 3) the scope gets ``extensions["tls"]`` with the
    verified peer certificate (``client_cert_chain``, PEM) and its subject as a dict
    (``client_cert_subject``, e.g. ``{"commonName": "CP-1"}``), so the OCPP endpoint can match
    the certificate to the station id.
    """

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)  # builds self.scope; the app task has not run yet
        ssl_object = self.transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        der = ssl_object.getpeercert(binary_form=True)
        if not der:
            return
        subject: dict[str, str] = {}
        for rdn in (ssl_object.getpeercert() or {}).get("subject", ()):
            for key, value in rdn:
                subject[key] = value
        self.scope["extensions"]["tls"] = {
            "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)],
            "client_cert_subject": subject,
            "tls_version": None, "cipher_suite": None, "server_cert": None,
        }


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "ws": WebSocketProtocol,
        # a larger frame is never buffered: the transport closes the socket with 1009
        "ws_max_size": settings.max_frame_bytes,
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
