"""``csms serve`` (SQLite or the configured database, the same app and uvicorn options) with a
chosen WebSocket protocol class, for the idle-memory A/B in bench/README.md:

    CSMS_DATA_DIR=$(mktemp -d) CSMS_UNKNOWN_STATIONS=accept CSMS_LOG_LEVEL=warning \\
        .venv/bin/python bench/serve_protocol.py stock 8501 &     # uvicorn's WebSocketsSansIOProtocol
    .venv/bin/csms bench --url ws://127.0.0.1:8501/ocpp --server-pid $! --scenario idle --stations 2000

``stock`` is uvicorn's sans-I/O protocol as it ships (what ``csms.server.WebSocketProtocol``
extended only for the TLS client certificate before issue 19), ``csms`` the current class.
"""

from __future__ import annotations

import asyncio
import sys

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from csms.app import create_app
from csms.cli import _with_db, ensure_first_admin
from csms.server import uvicorn_options
from csms.settings import get_settings


def main() -> None:
    variant, port = sys.argv[1], int(sys.argv[2])
    if variant not in ("stock", "csms"):
        sys.exit("usage: serve_protocol.py stock|csms PORT")
    settings = get_settings()
    asyncio.run(_with_db(ensure_first_admin))
    options = uvicorn_options(settings)
    if variant == "stock":
        options["ws"] = WebSocketsSansIOProtocol
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning", **options)


if __name__ == "__main__":
    main()
