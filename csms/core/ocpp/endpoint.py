"""The OCPP WebSocket endpoint: ``ws(s)://HOST:PORT/ocpp/{station_id}``.

The handshake negotiates ``ocpp2.1``, ``ocpp2.0.1`` or ``ocpp1.6`` from the client's offer (in that
order of preference),
checks HTTP Basic credentials (security profiles 1 and 2), the client certificate's commonName
(security profile 3; the TLS layer has already verified the certificate against ``tls_ca``), the
station's stored security profile (no downgrade) and the unknown-station policy. A refused
handshake gets an HTTP answer before the upgrade that says why: 400 for a station id that is not
an OCPP identifier, 401 for missing or wrong credentials and for a connection below the station's
security profile, 403 for a certificate that does not match and for plain ws where it is not
allowed, 404 for an unknown station under the reject policy, 429 while failed logins from that
address or for that station id are throttled.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from typing import Any, cast

from litestar import WebSocket, websocket

from csms.core import logs
from csms.core.ocpp.connection import StationConnection
from csms.core.ocpp.v16 import StationConnection16
from csms.core.ocpp.v201 import StationConnection201
from csms.core.ocpp.v21 import StationConnection21
from csms.core.runtime import get_core
from csms.core.services.stations import AuthFailure

log = logging.getLogger("csms.ocpp")

# Server preference order.
ADAPTERS: dict[str, type[StationConnection]] = {
    "ocpp2.1": StationConnection21,
    "ocpp2.0.1": StationConnection201,
    "ocpp1.6": StationConnection16,
}

# WebSocket close codes for refused handshakes, where the server cannot answer with an HTTP status.
CLOSE_POLICY_VIOLATION = 1008
CLOSE_PROTOCOL_ERROR = 1002

# OCPP's identifierString: letters, digits and * - _ = : + | @ . (at most 48 characters).
STATION_ID = re.compile(r"[A-Za-z0-9*\-_=:+|@.]{1,48}")


async def refuse(socket: WebSocket, status: int, reason: str, *, close_code: int = CLOSE_POLICY_VIOLATION,
                 headers: dict[str, str] | None = None) -> None:
    """Refuse the handshake with an HTTP status and a one-line text body (the ASGI WebSocket
    denial response), or, on a server without that extension, by closing (HTTP 403)."""
    if "websocket.http.response" not in (socket.scope.get("extensions") or {}):
        await socket.close(code=close_code, reason=reason)
        return
    body = f"{reason}\n".encode()
    head = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    head += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await socket.send({"type": "websocket.http.response.start", "status": status, "headers": head})
    await socket.send({"type": "websocket.http.response.body", "body": body, "more_body": False})


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


def security_profile(*, secure: bool, certificate: bool) -> int:
    """The OCPP security profile a connection offers: 3 with a verified client certificate,
    2 over TLS, 1 over plain ws (HTTP Basic credentials are checked for 1 and 2 alike)."""
    return 3 if secure and certificate else 2 if secure else 1


@websocket("/ocpp/{station_id:str}", include_in_schema=False,
           opt={"tenant": "public"})  # stations authenticate themselves (csms.api.tenancy.PUBLIC)
async def ocpp_endpoint(socket: WebSocket, station_id: str) -> None:
    core = get_core()
    client = socket.client.host if socket.client else "?"
    offered = [p.strip() for p in socket.scope.get("subprotocols", [])]
    subprotocol = choose_subprotocol(offered)
    if subprotocol is None:
        log.warning("refused %s from %s: no supported subprotocol in %s", station_id[:48], client, offered)
        await refuse(socket, 400, "offer ocpp2.1, ocpp2.0.1 or ocpp1.6", close_code=CLOSE_PROTOCOL_ERROR)
        return
    if not STATION_ID.fullmatch(station_id) or station_id in (".", ".."):
        log.warning("refused %r from %s: a station id is 1-48 of the characters A-Z a-z 0-9 * - _ = : + | @ .",
                    station_id[:64], client)
        await refuse(socket, 400, "station id must be 1-48 of the characters A-Z a-z 0-9 * - _ = : + | @ .")
        return
    logs.station_id.set(station_id)  # on every log line of this connection (and the tasks it starts)
    # set by csms.server.WebSocketProtocol when the station presented a certificate that TLS
    # verified against tls_ca: str keys, the subject a dict of str
    tls = cast("dict[str, Any]", (socket.scope.get("extensions") or {}).get("tls") or {})
    has_certificate = bool(core.settings.tls_ca and tls.get("client_cert_chain"))
    common_name = (tls.get("client_cert_subject") or {}).get("commonName")
    if has_certificate and core.settings.tls_client_cn_check and common_name != station_id:
        log.warning("refused %s from %s: client certificate commonName %r is not the station id",
                    station_id, client, common_name)
        await refuse(socket, 403, "certificate does not match station id")
        return
    secure = socket.scope.get("scheme") in ("wss", "https")
    if not secure and not core.settings.allow_plain_ws:
        log.warning("refused %s from %s: plain ws is not allowed (allow_plain_ws is off)", station_id, client)
        await refuse(socket, 403, "connect over TLS (wss://)")
        return
    profile = security_profile(secure=secure, certificate=has_certificate)
    failed_logins = core.failed_logins
    wait = failed_logins.retry_after(station_id, client)
    if wait:
        log.warning("refused %s from %s: too many failed logins, throttled for %.0f s", station_id, client, wait)
        await refuse(socket, 429, "too many failed logins; retry later",
                     headers={"Retry-After": str(int(wait) + 1)})
        return
    creds = basic_credentials(socket.headers.get("authorization"))
    password = None
    if creds is not None:
        user, password = creds
        if user != station_id:
            failed_logins.failed(station_id, client)
            log.warning("refused %s from %s: Basic auth user %r is not the station id", station_id, client, user)
            await refuse(socket, 401, "credentials do not match station id",
                         headers={"WWW-Authenticate": 'Basic realm="OCPP"'})
            return
    try:
        state = await core.stations.admit(station_id, password, profile=profile,
                                          certified=has_certificate and common_name == station_id)
    except AuthFailure as exc:
        if exc.credentials:
            failed_logins.failed(station_id, client)
        log.warning("refused %s from %s: %s", station_id, client, exc)
        await refuse(socket, exc.status, "not authorized" if exc.credentials else
                     "the organization's plan has no room for the station" if exc.status == 403 else "unknown station",
                     headers={"WWW-Authenticate": 'Basic realm="OCPP"'} if exc.credentials else None)
        return
    if password is not None:
        failed_logins.succeeded(station_id, client)
    if getattr(core.commands.bus, "redis", None) is not None:  # several nodes: sessions carried on elsewhere
        await core.sessions.adopt(station_id)
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
            if getattr(core.commands.bus, "redis", None) is not None and core.connections.get(station_id) is None:
                core.sessions.release(station_id)  # its next connection, here or elsewhere, reads them anew
