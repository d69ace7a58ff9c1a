"""Requests to partners: the credentials token, request/correlation ids and routing headers on
every call, the response envelope read and checked, every exchange written to the request log."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from plugins.roaming_ocpi import v211
from plugins.roaming_ocpi.config import ocpi_settings
from plugins.roaming_ocpi.parties import hub_party, is_hub
from plugins.roaming_ocpi.tables import RequestLog
from plugins.roaming_ocpi.transport import authorization_header, new_id, parse_json, routing_headers
from plugins.roaming_ocpi.v211 import is_211

log = logging.getLogger("csms.ocpi.client")

_client: httpx.AsyncClient | None = None


def http_client() -> httpx.AsyncClient:
    global _client
    if _client is None or _client.is_closed:
        # Redirects are followed (httpx keeps the method and body for 307/308, as RFC 9110 asks);
        # the credentials header goes along only to the same host (httpx drops it elsewhere).
        _client = httpx.AsyncClient(timeout=ocpi_settings().request_timeout, follow_redirects=True, max_redirects=5)
    return _client


def forget_client() -> None:
    """Drop the shared client without closing it (it belongs to an event loop that is gone)."""
    global _client
    _client = None


async def close_client() -> None:
    global _client
    if _client is not None:
        await _client.aclose()
        _client = None


class PartnerError(Exception):
    """A call to a partner failed: unreachable, an HTTP error, or an OCPI error status."""

    def __init__(self, message: str, *, http_status: int | None = None, ocpi_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.ocpi_status = ocpi_status

    @property
    def retryable(self) -> bool:
        """Worth trying again later: the partner was unreachable (connection error, timeout),
        failed (HTTP 5xx, OCPI 3xxx) or asked us to come back (408, 429). A 4xx or an OCPI 2xxx
        means the partner refused this request: sending it again as it is would not help."""
        if self.http_status is None:
            return True
        if self.http_status >= 500 or self.http_status in (408, 429):
            return True
        if 400 <= self.http_status < 500:
            return False
        if self.ocpi_status is not None and 2000 <= self.ocpi_status < 3000:
            return False
        return True


@dataclass
class Answer:
    data: Any
    status_code: int
    http_status: int
    headers: httpx.Headers
    body: dict[str, Any]


async def call(partner: dict[str, Any], method: str, url: str, *, body: Any = None, token: str | None = None,
               functional: bool = True, params: dict[str, Any] | None = None,
               correlation_id: str | None = None, to: tuple[str, str] | None = None,
               open_routing: bool = False) -> Answer:
    """One OCPI request to ``partner``; ``PartnerError`` unless it answered with a 1xxx code.

    ``token`` overrides the partner's stored token (token A during registration). Routing
    headers go with functional modules only (transport_and_format: Message Routing): from our
    party to ``to`` (a party behind a hub), else to the partner's party (a hub's own party: a
    Broadcast Push, or a GET All via the hub). ``open_routing`` to a hub: an Open Routing
    Request, ``OCPI-to-*`` left out (we do not know the receiving party; the hub routes by the
    request's content, e.g. the token uid of a real-time authorization).
    """
    s = ocpi_settings()
    old = is_211(partner)
    module, rel = _module_of(partner, url) if old else ("", [])
    if old and body is not None:  # our 2.2.1 object, as the 2.1.1 partner takes it
        body = await v211.down(module, rel, method, body, lambda loc: v211.our_location(partner, loc)) if module \
            else v211.command_response_down(body) if isinstance(body, dict) and "result" in body else body
    request_id = new_id()
    correlation_id = correlation_id or new_id()
    headers = {
        "Authorization": authorization_header(token or partner["outgoing_token"],
                                              raw=bool(partner.get("raw_tokens")) or old),
        "X-Request-ID": request_id,
        "X-Correlation-ID": correlation_id,
    }
    if functional and not old:  # 2.1.1 has no routing headers
        to_cc, to_pid = to if to and to[0] else hub_party(partner)
        headers.update(routing_headers(s.country_code, s.party_id, to_cc, to_pid))
        if open_routing and not (to and to[0]) and is_hub(partner):
            del headers["OCPI-to-country-code"], headers["OCPI-to-party-id"]
    started = time.monotonic()
    http_status = ocpi_status = None
    error = ""
    try:
        try:
            response = await http_client().request(method, url, json=body, headers=headers, params=params)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise PartnerError(f"{method} {url} failed: {error}") from None
        http_status = response.status_code
        try:
            envelope = parse_json(response.content)
        except ValueError:  # not JSON, or nested too deeply to read safely
            envelope = None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("status_code"), int):
            error = f"HTTP {http_status} without an OCPI response envelope"
            raise PartnerError(f"{method} {url}: {error}", http_status=http_status)
        ocpi_status = envelope["status_code"]
        if http_status >= 400 or not 1000 <= ocpi_status < 2000:
            error = f"HTTP {http_status}, OCPI {ocpi_status}: {envelope.get('status_message') or ''}".strip()
            raise PartnerError(f"{method} {url}: {error}", http_status=http_status, ocpi_status=ocpi_status)
        data = envelope.get("data")
        if old and module:  # the 2.1.1 partner's objects, as ours
            data = v211.up(module, rel, method, data, (partner.get("country_code") or "").upper(),
                           (partner.get("party_id") or "").upper())
        return Answer(data, ocpi_status, http_status, response.headers, envelope)
    finally:
        await _log(partner.get("id"), method, url, http_status, ocpi_status, request_id, correlation_id,
                   int((time.monotonic() - started) * 1000), error)


async def get_all(partner: dict[str, Any], url: str, *, params: dict[str, Any] | None = None,
                  max_pages: int = 1000, functional: bool = True) -> list[Any]:
    """Every object of a paginated GET, following the ``Link: <...>; rel="next"`` headers."""
    items: list[Any] = []
    next_url: str | None = url
    query = params
    seen: set[str] = set()
    for page in range(max_pages):
        if next_url is None:
            break
        try:
            answer = await call(partner, "GET", next_url, params=query, functional=functional)
        except PartnerError as exc:
            if page == 0:
                raise
            # a broken next link (or a page that fails): keep what was received, stop paging
            log.warning("pull from partner %s stopped after %d page(s), %d object(s): %s", partner.get("id"), page,
                        len(items), exc.message)
            break
        if isinstance(answer.data, list):
            items.extend(answer.data)
        seen.add(next_url)
        next_url, query = _next_link(answer.headers.get("link", "")), None
        if next_url is not None and (urlsplit(next_url).scheme not in ("http", "https") or not urlsplit(next_url).netloc
                                     or next_url in seen):
            log.warning("pull from partner %s stopped after %d object(s): unusable next link %r", partner.get("id"),
                        len(items), next_url[:200])
            break
    return items


def _module_of(partner: dict[str, Any], url: str) -> tuple[str, list[str]]:
    """The functional module of one of the partner's endpoint URLs, and the path below it."""
    for e in partner.get("endpoints") or []:
        base = (e.get("url") or "").rstrip("/")
        if e.get("identifier") in v211.MODULES and base and (url == base or url.startswith(base + "/")
                                                              or url.startswith(base + "?")):
            rest = url[len(base):].split("?")[0].strip("/")
            return e["identifier"], rest.split("/") if rest else []
    return "", []


def _next_link(header: str) -> str | None:
    for part in header.split(","):
        if 'rel="next"' in part or "rel=next" in part:
            start, end = part.find("<"), part.find(">")
            if 0 <= start < end:
                return part[start + 1:end]
    return None


async def _log(partner_id: int | None, method: str, url: str, http_status: int | None, ocpi_status: int | None,
               request_id: str, correlation_id: str, duration_ms: int, error: str) -> None:
    try:
        await RequestLog(partner=partner_id, direction="out", method=method, url=url[:500], http_status=http_status,
                         ocpi_status=ocpi_status, request_id=request_id, correlation_id=correlation_id,
                         duration_ms=duration_ms, error=error[:2000]).save()
    except Exception:  # the log must never break a call
        log.exception("could not write the OCPI request log")
