"""The configuration modules: versions, version details and credentials, in both directions.

* A partner registers with us: the operator invites it (we issue token A); the partner POSTs
  its credentials (token B, its versions URL, its roles) with token A; we fetch its versions
  and endpoints with token B and answer with token C.
* We register with a partner: the operator gives its versions URL and the token A it issued;
  we fetch its endpoints, POST our credentials with a fresh token B and keep its token C.
* PUT (either way) re-fetches endpoints and exchanges fresh tokens; DELETE unregisters.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response, delete, get, post, put

from plugins.roaming_ocpi import schema, v211
from plugins.roaming_ocpi.client import PartnerError, call
from plugins.roaming_ocpi.parties import (
    authenticate,
    base_url,
    endpoint_url,
    our_credentials,
    our_endpoints,
    partner_row,
    partners_changed,
)
from plugins.roaming_ocpi.tables import Partner
from plugins.roaming_ocpi.transport import (
    NO_MATCHING_ENDPOINTS,
    UNABLE_TO_USE_CLIENT_API,
    UNSUPPORTED_VERSION,
    VERSION,
    OcpiError,
    json_body,
    new_token,
    ocpi_response,
    token_digest,
)
from plugins.roaming_ocpi.v211 import V211

log = logging.getLogger("csms.ocpi.registration")

FUNCTIONAL_MODULES = {"cdrs", "chargingprofiles", "commands", "hubclientinfo", "locations", "sessions", "tariffs",
                      "tokens"}


class RegistrationError(Exception):
    """Registering (or updating) with a partner failed; ``status_code`` is the OCPI code to report."""

    def __init__(self, message: str, status_code: int = UNABLE_TO_USE_CLIENT_API) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


# -- served: versions and version details -------------------------------------------------------------


@get("/versions", name="ocpi:versions")
async def versions(request: Request) -> Response:
    await authenticate(request, registration=True)
    return ocpi_response([{"version": v, "url": f"{base_url(request)}/ocpi/{v}"} for v in v211.offered()])


@get([f"/{VERSION}", f"/{V211}"], name="ocpi:version_details")
async def version_details(request: Request) -> Response:
    partner = await authenticate(request, registration=True)
    version = _path_version(request)
    endpoints = v211.our_endpoints(base_url(request), partner) if version == V211 else our_endpoints(base_url(request))
    return ocpi_response({"version": version, "endpoints": endpoints})


def _path_version(request: Request) -> str:
    """The version of the request's path (``/ocpi/2.1.1/...``); 404 for one we do not offer."""
    version = request.url.path.split("/")[2]
    if version not in v211.offered():
        raise OcpiError(2000, f"OCPI {version} is not offered here", http_status=404)
    return version


def _ours(request: Request, token: str) -> dict[str, Any]:
    """Our credentials in the shape of the request's version."""
    creds = our_credentials(token, base_url(request))
    return v211.credentials_down(creds, request.scope.get("ocpi_partner")) if _path_version(request) == V211 \
        else creds


async def _their_credentials(request: Request) -> dict[str, Any]:
    body = await json_body(request)
    if _path_version(request) == V211:
        found = schema.problems(body, schema.CREDENTIALS_211)
        if found:
            raise OcpiError(2001, f"invalid Credentials: {'; '.join(found)}")
        body = v211.credentials_up(body, request.scope.get("ocpi_partner"))
    return schema.require_valid(body, schema.CREDENTIALS, "Credentials")


# -- served: credentials -----------------------------------------------------------------------------


@get([f"/{VERSION}/credentials", f"/{V211}/credentials"])
async def credentials_get(request: Request) -> Response:
    await authenticate(request, registration=True)
    return ocpi_response(_ours(request, request.scope["ocpi_token"]))  # type: ignore[typeddict-item]


@post([f"/{VERSION}/credentials", f"/{V211}/credentials"], status_code=200)
async def credentials_post(request: Request) -> Response:
    partner = await authenticate(request, registration=True)
    if partner["status"] == "registered":
        raise OcpiError(2000, "already registered: use PUT to update the credentials", http_status=405)
    body = await _their_credentials(request)
    token_c = await _accept_credentials(partner, body, _path_version(request))
    return ocpi_response(_ours(request, token_c))


@put([f"/{VERSION}/credentials", f"/{V211}/credentials"])
async def credentials_put(request: Request) -> Response:
    partner = await authenticate(request, registration=True)
    if partner["status"] != "registered":
        raise OcpiError(2000, "not registered: use POST to register", http_status=405)
    body = await _their_credentials(request)
    token_c = await _accept_credentials(partner, body, _path_version(request))
    return ocpi_response(_ours(request, token_c))


@delete([f"/{VERSION}/credentials", f"/{V211}/credentials"], status_code=200)
async def credentials_delete(request: Request) -> Response:
    partner = await authenticate(request, registration=True)
    if partner["status"] != "registered":
        raise OcpiError(2000, "not registered", http_status=405)
    await Partner.update({Partner.status: "unregistered", Partner.incoming_token_hash: "",
                          Partner.outgoing_token: "", Partner.updated_at: _now()}).where(Partner.id == partner["id"])
    log.info("partner %s unregistered itself", partner["id"])
    return ocpi_response()


async def _accept_credentials(partner: dict[str, Any], body: dict[str, Any], version: str = VERSION) -> str:
    """Fetch the client's endpoints with its token, store them, issue token C (POST and PUT):
    of ``version``, the one the client registers in."""
    token_b = body["token"]
    probe = {**partner, "outgoing_token": token_b, "version": version}
    try:
        version, endpoints = await fetch_endpoints(probe, body["url"], token_b, only=version)
    except RegistrationError as exc:
        await Partner.update({Partner.last_error: exc.message, Partner.updated_at: _now()}).where(
            Partner.id == partner["id"])
        raise OcpiError(exc.status_code, exc.message) from None
    token_c = new_token()
    first = body["roles"][0]
    await Partner.update({
        Partner.status: "registered", Partner.roles: body["roles"], Partner.country_code: first["country_code"].upper(),
        Partner.party_id: first["party_id"].upper(), Partner.versions_url: body["url"], Partner.version: version,
        Partner.endpoints: endpoints, Partner.outgoing_token: token_b, Partner.incoming_token_hash: token_digest(token_c),
        Partner.incoming_token_kind: "C", Partner.last_error: "", Partner.updated_at: _now(),
        Partner.registered_at: _now(),
    }).where(Partner.id == partner["id"])
    log.info("partner %s registered (%s)", partner["id"], ", ".join(
        f"{r['role']} {r['country_code']}/{r['party_id']}" for r in body["roles"]))
    _after_registration(partner["id"])
    return token_c


def _after_registration(partner_id: int) -> None:
    from plugins.roaming_ocpi.sync import schedule_initial_push

    schedule_initial_push(partner_id)


# -- outbound: fetching a partner's endpoints, registering, updating, unregistering ---------------------


async def fetch_endpoints(partner: dict[str, Any], url: str, token: str,
                          only: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """The version chosen (the newest both offer, or ``only``) and the partner's endpoints of it
    (2.1.1 ones with the interface role each has; 3001 unreachable, 3002 no common version, 3003
    no modules). A partner that refuses our token Base64-encoded (401) is asked again with it
    unencoded, as OCPI 2.1.1 sends it (also on 403, some 2.1.1 implementations answer so); the encoding that worked is kept for what follows."""
    try:
        try:
            answer = await call(partner, "GET", url, token=token, functional=False)
        except PartnerError as exc:
            if exc.http_status not in (401, 403) or partner.get("raw_tokens") or partner.get("version") == V211:
                raise
            partner = {**partner, "version": V211}
            answer = await call(partner, "GET", url, token=token, functional=False)
    except PartnerError as exc:
        raise RegistrationError(f"could not read the partner's versions: {exc.message}") from None
    listed = answer.data
    if not isinstance(listed, list) or schema.problems(listed, schema.many(schema.VERSION_OBJ)):
        raise RegistrationError("the partner's versions endpoint did not answer a list of versions")
    match = v211.choose([v for v in listed if only is None or v.get("version") == only])
    if match is None:
        wanted = only or " or ".join(v211.offered())
        raise RegistrationError(f"the partner offers no OCPI {wanted} (only "
                                f"{', '.join(v.get('version', '?') for v in listed) or 'nothing'})", UNSUPPORTED_VERSION)
    version = match["version"]
    partner = {**partner, "version": version}
    try:
        answer = await call(partner, "GET", match["url"], token=token, functional=False)
    except PartnerError as exc:
        raise RegistrationError(f"could not read the partner's {version} endpoints: {exc.message}") from None
    found = schema.problems(answer.data, schema.VERSION_DETAILS_211 if version == V211 else schema.VERSION_DETAILS)
    if found:
        raise RegistrationError(f"invalid version details from the partner: {found[0]}")
    endpoints = answer.data["endpoints"]
    if version == V211:
        endpoints = v211.endpoints_up(endpoints, partner)
    if not any(e["identifier"] in FUNCTIONAL_MODULES for e in endpoints):
        raise RegistrationError("the partner offers no functional module", NO_MATCHING_ENDPOINTS)
    return version, endpoints


async def register_with(partner_id: int, versions: str, token_a: str, base: str) -> dict[str, Any]:
    """We are the Sender of credentials: register with a partner using the token A it gave us.

    A failure leaves nothing half-made: the token B we generated is revoked and the row gets back
    what it had (an invited or unregistered partner stays so); a row that had never been
    registered (``pending``, or ``failed`` before) is marked ``failed``. The reason is in
    ``last_error`` and the raised :class:`RegistrationError`; registering again retries."""
    partner = await partner_row(partner_id)
    assert partner is not None
    before = {Partner.incoming_token_hash: partner["incoming_token_hash"],
              Partner.incoming_token_kind: partner["incoming_token_kind"],
              Partner.versions_url: partner["versions_url"], Partner.endpoints: partner["endpoints"]}
    await Partner.update({Partner.versions_url: versions, Partner.updated_at: _now()}).where(
        Partner.id == partner_id)
    try:
        version, endpoints = await fetch_endpoints(partner, versions, token_a)
        partner = {**partner, "version": version}
        credentials_url = endpoint_url({"endpoints": endpoints}, "credentials", "SENDER")
        if credentials_url is None:
            raise RegistrationError("the partner has no credentials endpoint", NO_MATCHING_ENDPOINTS)
        token_b = new_token()
        await Partner.update({Partner.incoming_token_hash: token_digest(token_b), Partner.incoming_token_kind: "C",
                              Partner.endpoints: endpoints, Partner.updated_at: _now()}).where(
            Partner.id == partner_id)
        partners_changed()
        try:
            answer = await call(partner, "POST", credentials_url, body=_credentials_for(partner, version, token_b, base),
                                token=token_a, functional=False)
        except PartnerError as exc:
            raise RegistrationError(f"the partner refused our credentials: {exc.message}") from None
        await _store_answer(partner_id, _credentials_from(partner, version, answer.data), endpoints, version)
    except RegistrationError as exc:
        failed = partner["status"] in ("pending", "failed")
        await Partner.update({**before, Partner.status: "failed" if failed else partner["status"],
                              Partner.last_error: f"registration failed: {exc.message}",
                              Partner.updated_at: _now()}).where(Partner.id == partner_id)
        partners_changed()
        log.warning("registration with partner %s failed: %s", partner_id, exc.message)
        raise
    partners_changed()
    _after_registration(partner_id)
    row = await partner_row(partner_id)
    assert row is not None
    return row


async def start_registration(name: str, *, raw_tokens: bool = False, organization: int | None = None,
                             role_211: str = "") -> int:
    """The row of a registration with a partner about to start (status ``pending``) for
    ``organization`` (None: the installation's): a ``failed`` one of the same name and
    organization is taken again (a retry), and so is a ``pending`` one left behind by a
    registration that never finished (a restart in the middle: untouched for longer than the four
    calls of a registration may take); else a new one."""
    from datetime import timedelta

    from plugins.roaming_ocpi.config import ocpi_settings

    name = name.strip()
    stale = _now() - timedelta(seconds=4 * ocpi_settings().request_timeout)
    same_owner = Partner.organization.is_null() if organization is None else Partner.organization == organization
    row = await Partner.select(Partner.id).where(
        (Partner.name == name) & same_owner & ((Partner.status == "failed") | ((Partner.status == "pending")
                                                                               & (Partner.updated_at < stale)))
    ).order_by(Partner.id, ascending=False).first()
    if row is not None:
        await Partner.update({Partner.status: "pending", Partner.raw_tokens: raw_tokens, Partner.role_211: role_211,
                              Partner.last_error: "",
                              Partner.updated_at: _now()}).where(Partner.id == row["id"])
        partners_changed()
        return int(row["id"])
    new = Partner(name=name, status="pending", raw_tokens=raw_tokens, organization=organization, role_211=role_211)
    await new.save()
    partners_changed()
    return int(new.id)


async def update_credentials(partner_id: int, base: str) -> dict[str, Any]:
    """PUT fresh credentials (new token B) to the partner and re-fetch its endpoints."""
    partner = await partner_row(partner_id)
    if partner is None or partner["status"] != "registered":
        raise RegistrationError("the partner is not registered")
    credentials_url = endpoint_url(partner, "credentials", "SENDER")
    if credentials_url is None:
        raise RegistrationError("the partner has no credentials endpoint", NO_MATCHING_ENDPOINTS)
    token_b = new_token()
    await Partner.update({Partner.incoming_token_hash: token_digest(token_b), Partner.updated_at: _now()}).where(
        Partner.id == partner_id)
    try:
        answer = await call(partner, "PUT", credentials_url, body=_credentials_for(partner, partner["version"], token_b, base),
                            functional=False)
    except PartnerError as exc:  # the partner kept the token it has: so do we
        await Partner.update({Partner.incoming_token_hash: partner["incoming_token_hash"],
                              Partner.last_error: f"credentials update failed: {exc.message}"}).where(
            Partner.id == partner_id)
        raise RegistrationError(f"the partner refused the update: {exc.message}") from None
    data = schema.require_valid(_credentials_from(partner, partner["version"], answer.data), schema.CREDENTIALS,
                                "Credentials") if answer.data else None
    if data is None:
        raise RegistrationError("the partner answered without credentials")
    version, endpoints = await fetch_endpoints({**partner, "outgoing_token": data["token"]}, data["url"],
                                               data["token"], only=partner["version"] or None)
    await _store_answer(partner_id, data, endpoints, version)
    row = await partner_row(partner_id)
    assert row is not None
    return row


async def unregister(partner_id: int) -> str:
    """DELETE our credentials at the partner (when registered) and stop talking to it.

    Returns a warning when the partner could not be told."""
    partner = await partner_row(partner_id)
    warning = ""
    if partner is not None and partner["status"] == "registered":
        url = endpoint_url(partner, "credentials", "SENDER")
        if url:
            try:
                await call(partner, "DELETE", url, functional=False)
            except PartnerError as exc:
                warning = f"the partner was not told: {exc.message}"
    await Partner.update({Partner.status: "unregistered", Partner.incoming_token_hash: "", Partner.outgoing_token: "",
                          Partner.last_error: warning, Partner.updated_at: _now()}).where(Partner.id == partner_id)
    return warning


def _credentials_for(partner: dict[str, Any], version: str, token: str, base: str) -> dict[str, Any]:
    creds = our_credentials(token, base)
    return v211.credentials_down(creds, partner) if version == V211 else creds


def _credentials_from(partner: dict[str, Any], version: str, data: Any) -> Any:
    """A partner's answer as 2.2.1 credentials (a 2.1.1 one checked in its own shape first)."""
    if version == V211:
        found = schema.problems(data, schema.CREDENTIALS_211)
        if found:
            raise RegistrationError(f"invalid credentials from the partner: {found[0]}")
        return v211.credentials_up(data, partner)
    return data


async def _store_answer(partner_id: int, data: Any, endpoints: list[dict[str, Any]], version: str = VERSION) -> None:
    found = schema.problems(data, schema.CREDENTIALS)
    if found:
        raise RegistrationError(f"invalid credentials from the partner: {found[0]}")
    first = data["roles"][0]
    await Partner.update({
        Partner.status: "registered", Partner.outgoing_token: data["token"], Partner.roles: data["roles"],
        Partner.country_code: first["country_code"].upper(), Partner.party_id: first["party_id"].upper(),
        Partner.versions_url: data["url"], Partner.version: version, Partner.endpoints: endpoints,
        Partner.last_error: "", Partner.updated_at: _now(), Partner.registered_at: _now(),
    }).where(Partner.id == partner_id)


async def invite(name: str, *, raw_tokens: bool = False, organization: int | None = None,
                 role_211: str = "") -> tuple[dict[str, Any], str]:
    """A new partner of ``organization`` (None: the installation's) that will register with us:
    returns it and the token A to hand over."""
    token_a = new_token()
    row = Partner(name=name, status="invited", incoming_token_hash=token_digest(token_a), incoming_token_kind="A",
                  raw_tokens=raw_tokens, organization=organization, role_211=role_211)
    await row.save()
    partners_changed()
    partner = await partner_row(row.id)
    assert partner is not None
    return partner, token_a


def _now():
    from csms.plugin_api import utcnow

    return utcnow()


ROUTES = [versions, version_details, credentials_get, credentials_post, credentials_put, credentials_delete]
