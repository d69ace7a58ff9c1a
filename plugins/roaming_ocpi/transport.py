"""OCPI 2.2.1 transport: the response envelope, status codes, credentials-token headers,
request/correlation ids, routing headers, pagination and DateTime values.

Handlers raise :class:`OcpiError`; the router's exception handler turns it into the envelope
with the HTTP status the specification asks for (``status_codes.asciidoc``): a request that
reached the OCPI layer is answered HTTP 200 with an OCPI error code, bad credentials 401,
unknown objects 404, unparsable JSON 400.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence
from urllib.parse import urlencode

from litestar import Request, Response

from csms.plugin_api import MAX_JSON_DEPTH, json_depth_exceeds, ocpp_ts

VERSION = "2.2.1"

# status codes (status_codes.asciidoc)
SUCCESS = 1000
CLIENT_ERROR = 2000
INVALID_PARAMETERS = 2001
NOT_ENOUGH_INFORMATION = 2002
UNKNOWN_LOCATION = 2003
UNKNOWN_TOKEN = 2004
SERVER_ERROR = 3000
UNABLE_TO_USE_CLIENT_API = 3001
UNSUPPORTED_VERSION = 3002
NO_MATCHING_ENDPOINTS = 3003

ROUTING_HEADERS = ("ocpi-from-country-code", "ocpi-from-party-id", "ocpi-to-country-code", "ocpi-to-party-id")


class OcpiError(Exception):
    """An answer other than success: OCPI ``status_code`` and the HTTP status that carries it."""

    def __init__(self, status_code: int, message: str, *, http_status: int = 200, data: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.http_status = http_status
        self.data = data


def invalid(message: str) -> OcpiError:
    return OcpiError(INVALID_PARAMETERS, message)


def not_found(message: str, status_code: int = CLIENT_ERROR) -> OcpiError:
    return OcpiError(status_code, message, http_status=404)


def unauthorized(message: str) -> OcpiError:
    return OcpiError(CLIENT_ERROR, message, http_status=401)


# -- time -----------------------------------------------------------------------------------------


def ocpi_ts(dt: datetime | None = None) -> str:
    """An OCPI DateTime: UTC with ``Z`` and milliseconds (``2024-05-01T12:00:00.000Z``)."""
    return ocpp_ts(dt)


def parse_datetime(value: Any, field: str = "DateTime") -> datetime:
    """Parse an OCPI DateTime (RFC 3339, UTC; no designator means UTC); ``OcpiError`` 2001 if not."""
    if not isinstance(value, str) or not 19 <= len(value) <= 32:
        raise invalid(f"{field} must be an RFC 3339 DateTime such as 2024-05-01T12:00:00Z")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise invalid(f"{field} {value!r} is not an RFC 3339 DateTime") from None
    if "T" not in value:
        raise invalid(f"{field} {value!r} is not an RFC 3339 DateTime")
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


# -- the envelope ---------------------------------------------------------------------------------


def envelope(data: Any = None, *, status_code: int = SUCCESS, message: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if data is not None:
        body["data"] = data
    body["status_code"] = status_code
    if message:
        body["status_message"] = message
    body["timestamp"] = ocpi_ts()
    return body


def ocpi_response(data: Any = None, *, status_code: int = SUCCESS, message: str | None = None,
                  http_status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(content=envelope(data, status_code=status_code, message=message), status_code=http_status,
                    headers=headers or {}, media_type="application/json")


def error_response(request: Request, exc: OcpiError) -> Response:
    return Response(content=envelope(exc.data, status_code=exc.status_code, message=exc.message),
                    status_code=exc.http_status, media_type="application/json")


async def json_body(request: Request, *, required: bool = True) -> Any:
    """The request's JSON body: HTTP 400 when it is not JSON at all or nests too deeply."""
    raw = await request.body()
    if not raw.strip():
        if required:
            raise invalid("a JSON body is required")
        return None
    try:
        return parse_json(raw)
    except ValueError as exc:
        raise OcpiError(INVALID_PARAMETERS, f"the body cannot be read as JSON: {exc}", http_status=400) from None


def parse_json(raw: bytes | str) -> Any:
    """``json.loads`` that refuses (``ValueError``) text nested more than MAX_JSON_DEPTH levels
    instead of recursing into it: for requests and for partners' responses alike."""
    if json_depth_exceeds(raw, MAX_JSON_DEPTH):
        raise ValueError(f"arrays and objects are nested more than {MAX_JSON_DEPTH} levels deep")
    return json.loads(raw)


def json_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(f"the body must be a JSON object ({what})")
    return value


# -- credentials tokens ---------------------------------------------------------------------------


def new_token() -> str:
    """A fresh credentials token: 43 printable, non-whitespace ASCII characters."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def authorization_header(token: str, *, raw: bool = False) -> str:
    """``Token <base64(token)>``, or ``Token <token>`` for partners that want it unencoded."""
    return f"Token {token}" if raw else "Token " + base64.b64encode(token.encode()).decode()


@dataclass(frozen=True)
class PresentedToken:
    decoded: str | None  # the Base64-decoded value, when the header held valid Base64
    raw: str  # the value as sent


def presented_token(header: str | None) -> PresentedToken | None:
    """The credentials token of an ``Authorization: Token ...`` header, both ways of reading it."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "token" or not value:
        return None
    decoded = None
    try:
        text = base64.b64decode(value, validate=True).decode("utf-8")
        if text and all(0x21 <= ord(c) <= 0x7E for c in text):
            decoded = text
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    return PresentedToken(decoded, value)


# -- request ids and routing headers --------------------------------------------------------------


def new_id() -> str:
    return str(uuid.uuid4())


def routing_headers(from_cc: str, from_pid: str, to_cc: str, to_pid: str) -> dict[str, str]:
    return {"OCPI-from-country-code": from_cc, "OCPI-from-party-id": from_pid,
            "OCPI-to-country-code": to_cc, "OCPI-to-party-id": to_pid}


# -- pagination ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageRequest:
    offset: int
    limit: int
    date_from: datetime | None
    date_to: datetime | None

    def window(self, last_updated: datetime) -> bool:
        if self.date_from is not None and last_updated < self.date_from:
            return False
        return self.date_to is None or last_updated < self.date_to


def page_request(request: Request, max_limit: int, *, date_from_required: bool = False) -> PageRequest:
    """Pagination parameters; an invalid one is answered with 2001 (the request reached OCPI)."""
    q = request.query_params

    def integer(name: str, default: int, minimum: int) -> int:
        value = q.get(name)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            raise invalid(f"{name} must be an integer, not {value!r}") from None
        if number < minimum:
            raise invalid(f"{name} must be >= {minimum}")
        return number

    offset = integer("offset", 0, 0)
    limit = min(integer("limit", max_limit, 1), max_limit)
    date_from = parse_datetime(q["date_from"], "date_from") if q.get("date_from") else None
    date_to = parse_datetime(q["date_to"], "date_to") if q.get("date_to") else None
    if date_from_required and date_from is None:
        raise invalid("date_from is required")
    return PageRequest(offset, limit, date_from, date_to)


def paginated_response(request: Request, page: PageRequest, items: Sequence[Any], total: int) -> Response:
    """The page with ``X-Total-Count``, ``X-Limit`` and a ``Link`` to the next page (if any)."""
    headers = {"X-Total-Count": str(total), "X-Limit": str(page.limit)}
    next_offset = page.offset + len(items)
    if items and next_offset < total:
        params = {k: v for k, v in request.query_params.items() if k not in ("offset", "limit")}
        params.update(offset=str(next_offset), limit=str(page.limit))
        url = str(request.url).split("?", 1)[0]
        headers["Link"] = f'<{url}?{urlencode(params)}>; rel="next"'
    return ocpi_response(list(items), headers=headers)
