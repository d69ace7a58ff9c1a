"""ASGI middleware of the ``/ocpi`` router: request and correlation ids echoed (or made) on every
response, routing headers on functional modules' responses, every exchange in the request log."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from plugins.roaming_ocpi.config import ocpi_settings
from plugins.roaming_ocpi.parties import hub_party, is_configuration_path, speaks_for
from plugins.roaming_ocpi.tables import RequestLog
from plugins.roaming_ocpi.transport import new_id

log = logging.getLogger("csms.ocpi")

_MAX_LOGGED_BODY = 256 * 1024


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def ocpi_middleware(app: Any) -> Any:
    async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id") or new_id()
        correlation_id = _header(scope, b"x-correlation-id") or new_id()
        path = scope.get("path", "").rstrip("/") or "/"
        functional = not is_configuration_path(path)
        started = time.monotonic()
        state: dict[str, Any] = {"status": None, "body": bytearray()}

        async def wrapped_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in (b"x-request-id", b"x-correlation-id")]
                headers += [(b"x-request-id", request_id.encode("latin-1")),
                            (b"x-correlation-id", correlation_id.encode("latin-1"))]
                if functional:
                    headers += [(k.encode(), v.encode("latin-1")) for k, v in _routing(scope).items()]
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and len(state["body"]) < _MAX_LOGGED_BODY:
                state["body"].extend(message.get("body", b""))
            await send(message)

        error = ""
        try:
            await app(scope, receive, wrapped_send)
        except Exception as exc:
            error = repr(exc)
            raise
        finally:
            await _log(scope, state, request_id, correlation_id, int((time.monotonic() - started) * 1000), error)

    return middleware


def _routing(scope: dict[str, Any]) -> dict[str, str]:
    """Response routing headers (transport_and_format: Message Routing): from our party (the
    receiving party: we host one), to the requesting party: the request's ``OCPI-from-*`` when
    the partner speaks for that party (a party behind a hub), else the partner's own party (a
    hub's HUB party). Before any partner is known (a 401), the ``OCPI-from-*`` sent, if any."""
    s = ocpi_settings()
    partner = scope.get("ocpi_partner") or {}
    to_cc = _header(scope, b"ocpi-from-country-code")
    to_pid = _header(scope, b"ocpi-from-party-id")
    if partner and not (to_cc and to_pid and speaks_for(partner, to_cc, to_pid)):
        to_cc, to_pid = hub_party(partner)
    headers = {"ocpi-from-country-code": s.country_code, "ocpi-from-party-id": s.party_id,
               "ocpi-to-country-code": to_cc.upper(), "ocpi-to-party-id": to_pid.upper()}
    # a caller we cannot name (a 401 without routing headers) gets no empty OCPI-to-* headers
    return {k: v for k, v in headers.items() if v}


async def _log(scope: dict[str, Any], state: dict[str, Any], request_id: str, correlation_id: str,
               duration_ms: int, error: str) -> None:
    ocpi_status = None
    message = ""
    try:
        body = json.loads(bytes(state["body"]) or b"null")
        if isinstance(body, dict) and isinstance(body.get("status_code"), int):
            ocpi_status = body["status_code"]
            if ocpi_status >= 2000:
                message = str(body.get("status_message") or "")
    except ValueError:
        pass
    partner = scope.get("ocpi_partner") or {}
    path = scope.get("path", "")
    query = scope.get("query_string", b"").decode("latin-1")
    if ocpi_status is not None and ocpi_status >= 2000:
        log.warning("OCPI %s %s from partner %s answered %s %s: %s", scope.get("method"), path,
                    partner.get("id", "?"), state["status"], ocpi_status, message)
    try:
        await RequestLog(partner=partner.get("id"), direction="in", method=scope.get("method", ""),
                         url=(path + (f"?{query}" if query else ""))[:500], http_status=state["status"],
                         ocpi_status=ocpi_status, request_id=request_id[:64], correlation_id=correlation_id[:64],
                         duration_ms=duration_ms, error=(error or message)[:2000]).save()
    except Exception:
        log.exception("could not write the OCPI request log")
