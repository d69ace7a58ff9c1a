"""Who is who: our own OCPI identity and endpoints, partners and how a request proves to be one.

A partner calls us with the credentials token we gave it: token A (issued when the operator
invites the partner; good only for the versions and credentials modules) until the
registration handshake, then token C (the one we issued in the handshake). Tokens are compared
by their SHA-256 digest; Base64 is the rule (OCPI 2.2.1), the unencoded form is accepted only
from partners flagged ``raw_tokens``.
"""

from __future__ import annotations

from typing import Any, cast

from litestar import Request

from plugins.roaming_ocpi.config import ocpi_settings
from plugins.roaming_ocpi.recheck import Recheck
from plugins.roaming_ocpi.tables import ClientInfo, Partner
from plugins.roaming_ocpi.transport import (
    CLIENT_ERROR,
    VERSION,
    OcpiError,
    invalid,
    not_found,
    presented_token,
    token_digest,
    unauthorized,
)

# (module, interface role, path under /ocpi) of everything we serve, per OCPI role of ours
CPO_ENDPOINTS = (
    ("locations", "SENDER", "cpo/2.2.1/locations"),
    ("sessions", "SENDER", "cpo/2.2.1/sessions"),
    ("cdrs", "SENDER", "cpo/2.2.1/cdrs"),
    ("tariffs", "SENDER", "cpo/2.2.1/tariffs"),
    ("tokens", "RECEIVER", "cpo/2.2.1/tokens"),
    ("commands", "RECEIVER", "cpo/2.2.1/commands"),
    ("chargingprofiles", "RECEIVER", "cpo/2.2.1/chargingprofiles"),
)
EMSP_ENDPOINTS = (
    ("locations", "RECEIVER", "emsp/2.2.1/locations"),
    ("sessions", "RECEIVER", "emsp/2.2.1/sessions"),
    ("cdrs", "RECEIVER", "emsp/2.2.1/cdrs"),
    ("tariffs", "RECEIVER", "emsp/2.2.1/tariffs"),
    ("tokens", "SENDER", "emsp/2.2.1/tokens"),
    ("commands", "SENDER", "emsp/2.2.1/commands"),
)
# Which partner roles use each of our interfaces (OCPI 2.2.1, each module's "Sender/Receiver"
# section): our CPO interfaces serve eMSPs (and NSPs/SCSPs where they read Locations and Tariffs or
# set charging profiles), our eMSP interfaces serve CPOs; a hub stands in for either side.
MODULE_USERS = {
    ("CPO", "locations"): {"EMSP", "NSP", "SCSP", "HUB"},
    ("CPO", "tariffs"): {"EMSP", "NSP", "HUB"},
    ("CPO", "sessions"): {"EMSP", "HUB"},
    ("CPO", "cdrs"): {"EMSP", "HUB"},
    ("CPO", "tokens"): {"EMSP", "HUB"},
    ("CPO", "commands"): {"EMSP", "HUB"},
    ("CPO", "chargingprofiles"): {"EMSP", "SCSP", "HUB"},
    ("EMSP", "locations"): {"CPO", "HUB"},
    ("EMSP", "sessions"): {"CPO", "HUB"},
    ("EMSP", "cdrs"): {"CPO", "HUB"},
    ("EMSP", "tariffs"): {"CPO", "HUB"},
    ("EMSP", "tokens"): {"CPO", "HUB"},
    ("EMSP", "commands"): {"CPO", "HUB"},
}
CONFIGURATION_PATHS = ("/ocpi/versions", f"/ocpi/{VERSION}", f"/ocpi/{VERSION}/credentials", "/ocpi/2.1.1",
                       "/ocpi/2.1.1/credentials")
HUBCLIENTINFO_PATH = f"/ocpi/{VERSION}/hubclientinfo"  # configuration module too: no routing headers


def is_configuration_path(path: str) -> bool:
    """Versions, credentials and Hub Client Info: never routed (transport_and_format: Message Routing)."""
    path = path.rstrip("/") or "/"
    return path in CONFIGURATION_PATHS or path == HUBCLIENTINFO_PATH or path.startswith(HUBCLIENTINFO_PATH + "/")


def base_url(request: Request | None = None) -> str:
    """Our public base URL: the setting, else the address this request reached us at."""
    configured = ocpi_settings().base_url.rstrip("/")
    if configured or request is None:
        return configured
    return str(request.base_url).rstrip("/")


def versions_url(base: str) -> str:
    return f"{base}/ocpi/versions"


def our_endpoints(base: str) -> list[dict[str, str]]:
    roles = ocpi_settings().role_set
    endpoints = [{"identifier": "credentials", "role": "SENDER", "url": f"{base}/ocpi/{VERSION}/credentials"}]
    for role, table in (("CPO", CPO_ENDPOINTS), ("EMSP", EMSP_ENDPOINTS)):
        if role in roles:
            endpoints += [{"identifier": m, "role": r, "url": f"{base}/ocpi/{p}"} for m, r, p in table]
    endpoints.append({"identifier": "hubclientinfo", "role": "RECEIVER", "url": f"{base}{HUBCLIENTINFO_PATH}"})
    return endpoints


LOGO_TYPES = {"png": "png", "jpg": "jpg", "jpeg": "jpeg", "gif": "gif", "svg": "svg"}


def business_details(category: str = "OPERATOR") -> dict[str, Any]:
    """Our BusinessDetails (the operator of this installation): name, website and logo from the
    settings; the logo an Image of ``category`` when its URL names a known image type."""
    s = ocpi_settings()
    details: dict[str, Any] = {"name": s.business_name[:100]}
    if s.website:
        details["website"] = s.website[:255]
    extension = s.logo_url.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower() if "." in s.logo_url else ""
    if s.logo_url and len(s.logo_url) <= 255 and extension in LOGO_TYPES:
        details["logo"] = {"url": s.logo_url, "category": category, "type": LOGO_TYPES[extension]}
    return details


def our_roles() -> list[dict[str, Any]]:
    s = ocpi_settings()
    return [{"role": role, "business_details": business_details(), "party_id": s.party_id,
             "country_code": s.country_code} for role in sorted(s.role_set)]


def our_credentials(token: str, base: str) -> dict[str, Any]:
    return {"token": token, "url": versions_url(base), "roles": our_roles()}


def is_us(country_code: str, party_id: str) -> bool:
    s = ocpi_settings()
    return country_code.upper() == s.country_code.upper() and party_id.upper() == s.party_id.upper()


# -- partners -------------------------------------------------------------------------------------


def partner_roles(partner: dict[str, Any]) -> set[str]:
    return {r.get("role", "") for r in partner.get("roles") or []}


def is_hub(partner: dict[str, Any]) -> bool:
    return "HUB" in partner_roles(partner)


def hub_party(partner: dict[str, Any]) -> tuple[str, str]:
    """The party a push to ``partner`` is addressed to when it names none: the hub's own party
    for a hub (a Broadcast Push), else the partner's first role."""
    for r in partner.get("roles") or []:
        if r.get("role") == "HUB":
            return r.get("country_code", "").upper(), r.get("party_id", "").upper()
    return (partner.get("country_code") or "").upper(), (partner.get("party_id") or "").upper()


def speaks_for(partner: dict[str, Any], country_code: str, party_id: str) -> bool:
    """Whether objects of party (``country_code``, ``party_id``) may come from ``partner``: a party
    it registered, or, for a hub, any party but ourselves (the parties behind the hub)."""
    return owns(partner, country_code, party_id) or (is_hub(partner) and not is_us(country_code, party_id))


def users_of(role: str) -> set[str]:
    """Partner roles that take what our ``role`` pushes: a hub passes pushes of either side on."""
    return {"CPO": {"EMSP", "NSP", "OTHER", "SCSP", "HUB"}, "EMSP": {"CPO", "HUB"}}.get(role, {role})


def owns(partner: dict[str, Any], country_code: str, party_id: str, role: str | None = None) -> bool:
    """Whether the partner registered the party (``country_code``, ``party_id``), in ``role``."""
    return any(r.get("country_code", "").upper() == country_code.upper()
               and r.get("party_id", "").upper() == party_id.upper() and (role is None or r.get("role") == role)
               for r in partner.get("roles") or [])


def endpoint_url(partner: dict[str, Any], module: str, role: str) -> str | None:
    """The partner's URL of ``module`` in interface ``role`` (credentials: any role)."""
    for e in partner.get("endpoints") or []:
        if e.get("identifier") == module and (module == "credentials" or e.get("role") == role):
            return e.get("url")
    return None


# Whether any partner exists. Without a partner no token, command or session is a roaming one,
# so the station hot paths skip their queries.
PARTNERS_CHECK_S = 5.0
_any_partner: Recheck[bool] = Recheck(PARTNERS_CHECK_S, lambda: Partner.exists().run())


async def any_partner() -> bool:
    return await _any_partner()


def partners_changed() -> None:
    """Call after creating a partner: the next :func:`any_partner` asks the database."""
    _any_partner.forget()


async def partner_row(partner_id: int) -> dict[str, Any] | None:
    return await Partner.select().where(Partner.id == partner_id).output(load_json=True).first()


async def registered_partners(role: str | None = None, *, hubs: bool = False) -> list[dict[str, Any]]:
    """Registered partners, those with ``role`` (CPO, EMSP ...) among their roles when given (or
    the role HUB, with ``hubs``)."""
    rows = await Partner.select().where(Partner.status == "registered").order_by(Partner.id).output(load_json=True)
    wanted = {role, "HUB"} if hubs else {role}
    return [p for p in rows if role is None or wanted & partner_roles(p)]


async def party_status(partner_id: int, country_code: str, party_id: str) -> str | None:
    """The connection status a hub gave for a party behind it (Hub Client Info), None when unknown."""
    row = await ClientInfo.select(ClientInfo.status).where(
        (ClientInfo.partner == partner_id) & (ClientInfo.country_code == country_code.upper())
        & (ClientInfo.party_id == party_id.upper())).first()
    return row["status"] if row else None


async def routable(partner: dict[str, Any], country_code: str, party_id: str) -> str | None:
    """Why a request to party (``country_code``, ``party_id``) must not go through ``partner``
    now (the hub says it is OFFLINE, PLANNED or SUSPENDED), None when it may."""
    if not country_code or not is_hub(partner) or (country_code.upper(), party_id.upper()) == hub_party(partner):
        return None
    status = await party_status(partner["id"], country_code, party_id)
    if status is None or status == "CONNECTED":
        return None
    return f"party {country_code.upper()}/{party_id.upper()} is {status} at the hub"


async def authenticate(request: Request, *, registration: bool = False) -> dict[str, Any]:
    """The partner calling: 401 for a missing or unknown token, and for token A outside the
    versions and credentials modules (transport_and_format: Authorization header)."""
    presented = presented_token(request.headers.get("authorization"))
    if presented is None:
        raise unauthorized("an 'Authorization: Token <base64 credentials token>' header is required")
    partner = None
    token = None
    if presented.decoded is not None:
        partner = await _by_digest(token_digest(presented.decoded))
        token = presented.decoded
    if partner is None:
        candidate = await _by_digest(token_digest(presented.raw))
        # unencoded: partners flagged so, and OCPI 2.1.1 (a 2.1.1 partner, or 2.1.1 paths)
        if candidate is not None and (candidate["raw_tokens"] or candidate["version"] == "2.1.1"
                                      or "/2.1.1" in request.url.path or request.url.path == "/ocpi/versions"):
            partner, token = candidate, presented.raw
    if partner is None or partner["status"] == "unregistered":
        raise unauthorized("unknown credentials token")
    if partner["incoming_token_kind"] == "A" and not registration:
        raise unauthorized("credentials token A may only be used for the versions and credentials modules")
    request.scope["ocpi_partner"] = partner  # type: ignore[typeddict-unknown-key]
    request.scope["ocpi_token"] = token  # type: ignore[typeddict-unknown-key]
    if not registration and not is_configuration_path(request.url.path) and "/2.1.1" not in request.url.path:
        check_routing_headers(request, partner)
    return partner


def party_names(partner: dict[str, Any]) -> str:
    """The parties a partner registered, for messages: ``DE/FAK, DE/FAB``."""
    names = dict.fromkeys(f"{r.get('country_code', '').upper()}/{r.get('party_id', '').upper()}"
                          for r in partner.get("roles") or [])
    return ", ".join(names) or "none"


def party_of(partner: dict[str, Any], country_code: str, party_id: str) -> OcpiError | None:
    """Why objects of party (``country_code``, ``party_id``) may not come from ``partner`` (None
    when they may): the message names the parties it registered."""
    if speaks_for(partner, country_code, party_id):
        return None
    if is_us(country_code, party_id):
        return invalid(f"{country_code.upper()}/{party_id.upper()} is our own party, not one of this partner's")
    return invalid(f"{country_code.upper()}/{party_id.upper()} is not a party of this partner (its parties: "
                   f"{party_names(partner)})")


def check_routing_headers(request: Request, partner: dict[str, Any]) -> None:
    """The routing headers of a request to a functional module (transport_and_format: Message
    Routing) against the authenticated partner: ``OCPI-from-*`` must name one of its parties (a
    hub: any party but ours, the requesting party behind it), ``OCPI-to-*`` our party (a hub
    forwards a routed request to the receiving party, so to us). Either pair may be left out
    (an Open Routing Request leaves out ``OCPI-to-*``; a peer without routing sends none), but
    not half of it. Refused with OCPI 2001, the reason named."""
    h = request.headers
    for side in ("from", "to"):
        cc, pid = h.get(f"ocpi-{side}-country-code", "").strip(), h.get(f"ocpi-{side}-party-id", "").strip()
        if bool(cc) != bool(pid):
            raise invalid(f"OCPI-{side}-country-code and OCPI-{side}-party-id go together: only one was sent")
        if not cc:
            continue
        if side == "from" and not speaks_for(partner, cc, pid):
            raise invalid(f"OCPI-from-country-code/party-id {cc.upper()}/{pid.upper()} is not a party of this "
                          f"partner (its parties: {party_names(partner)})")
        if side == "to" and not is_us(cc, pid):
            s = ocpi_settings()
            raise invalid(f"OCPI-to-country-code/party-id {cc.upper()}/{pid.upper()} is not a party of this "
                          f"platform ({s.country_code.upper()}/{s.party_id.upper()})")


def requesting_party(request: Request, partner: dict[str, Any]) -> tuple[str, str]:
    """The party a request came from: its ``OCPI-from-*`` (checked by :func:`authenticate`), else
    the partner's (a hub's own party)."""
    cc, pid = request.headers.get("ocpi-from-country-code", ""), request.headers.get("ocpi-from-party-id", "")
    return (cc.upper(), pid.upper()) if cc and pid else hub_party(partner)


def require_module(request: Request, our_role: str) -> None:
    """The module of this request (``/ocpi/{cpo|emsp}/2.2.1/{module}/...``) must be one our role
    ``our_role`` offers and the calling partner's roles use: 404 when we do not take the role,
    HTTP 403 with OCPI 2000 (generic client error: the specification has no status code of its
    own for this) when the partner registered only in roles that do not use the module, e.g. an
    eMSP asking our eMSP Tokens Sender for our cards."""
    if our_role not in ocpi_settings().role_set:
        raise not_found(f"this platform has no {our_role} role")
    parts = request.url.path.split("/")
    module = parts[4] if len(parts) > 4 else ""
    users = MODULE_USERS.get((our_role, module), set())
    partner = cast("dict[str, Any]", request.scope.get("ocpi_partner") or {})
    theirs = partner_roles(partner)
    if not theirs & users:
        raise OcpiError(CLIENT_ERROR, f"the {module} module of our {our_role} role is for partners in role "
                        f"{' or '.join(sorted(users))}; this partner registered as {', '.join(sorted(theirs)) or 'none'}",
                        http_status=403)


async def _by_digest(digest: str) -> dict[str, Any] | None:
    return await Partner.select().where(Partner.incoming_token_hash == digest).output(load_json=True).first()
