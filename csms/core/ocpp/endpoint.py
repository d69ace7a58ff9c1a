"""The OCPP WebSocket endpoint: ``ws(s)://HOST:PORT/ocpp/{station_id}``.

The handshake negotiates ``ocpp2.0.1`` or ``ocpp1.6`` from the client's offer (2.0.1 preferred),
checks HTTP Basic credentials (security profiles 1 and 2), the client certificate's commonName
(security profile 3; the TLS layer has already verified the certificate against ``tls_ca``) and
the unknown-station policy, and is refused (HTTP 403 before the upgrade) when any of these fail.
"""

from __future__ import annotations

import base64
import binascii
import logging

from litestar import WebSocket, websocket

from csms.core.ocpp.connection import StationConnection
from csms.core.ocpp.v16 import StationConnection16
from csms.core.ocpp.v201 import StationConnection201
from csms.core.runtime import get_core
from csms.core.services.stations import AuthFailure

log = logging.getLogger("csms.ocpp")

# Server preference order.
ADAPTERS: dict[str, type[StationConnection]] = {
    "ocpp2.0.1": StationConnection201,
    "ocpp1.6": StationConnection16,
}

# WebSocket close codes for refused handshakes (sent as HTTP 403 before the upgrade).
CLOSE_POLICY_VIOLATION = 1008
CLOSE_PROTOCOL_ERROR = 1002


def choose_subprotocol(offered: list[str]) -> str | None:
    for name in ADAPTERS:
        if name in offered:
            return name
    return None


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


@websocket("/ocpp/{station_id:str}", include_in_schema=False)
async def ocpp_endpoint(socket: WebSocket, station_id: str) -> None:
    core = get_core()
    client = socket.client.host if socket.client else "?"
    offered = [p.strip() for p in socket.scope.get("subprotocols", [])]
    subprotocol = choose_subprotocol(offered)
    if subprotocol is None:
        log.warning("refused %s from %s: no supported subprotocol in %s", station_id, client, offered)
        await socket.close(code=CLOSE_PROTOCOL_ERROR, reason="offer ocpp2.0.1 or ocpp1.6")
        return
    if not station_id or len(station_id) > 48:
        log.warning("refused %r from %s: station id must be 1-48 characters", station_id, client)
        await socket.close(code=CLOSE_POLICY_VIOLATION, reason="bad station id")
        return
    tls = (socket.scope.get("extensions") or {}).get("tls") or {}
    if core.settings.tls_ca and core.settings.tls_client_cn_check:
        common_name = (tls.get("client_cert_subject") or {}).get("commonName")
        if common_name != station_id:
            log.warning("refused %s from %s: client certificate commonName %r is not the station id",
                        station_id, client, common_name)
            await socket.close(code=CLOSE_POLICY_VIOLATION, reason="certificate does not match station id")
            return
    creds = basic_credentials(socket.headers.get("authorization"))
    password = None
    if creds is not None:
        user, password = creds
        if user != station_id:
            log.warning("refused %s from %s: Basic auth user %r is not the station id", station_id, client, user)
            await socket.close(code=CLOSE_POLICY_VIOLATION, reason="credentials do not match station id")
            return
    try:
        state = await core.stations.admit(station_id, password)
    except AuthFailure as exc:
        log.warning("refused %s from %s: %s", station_id, client, exc)
        await socket.close(code=CLOSE_POLICY_VIOLATION, reason="not authorized")
        return
    await socket.accept(subprotocols=subprotocol)
    conn = ADAPTERS[subprotocol](core, state, socket)
    await core.connections.add(conn)
    await core.stations.connected(station_id, conn.version)
    reason = "closed"
    try:
        await conn.serve()
    except Exception as exc:  # a broken socket must not take anything else down
        reason = f"error: {exc!r}"
        log.exception("connection of %s failed", station_id)
    finally:
        if core.connections.remove(conn):
            await core.stations.disconnected(station_id, reason)
