"""The eMSP role: our cards published to CPO partners (Tokens Sender, real-time authorization of
our tokens), partners' Locations, Sessions, CDRs and Tariffs received and kept, and commands sent
to a CPO for one of our drivers (with the CommandResult received on our response URL)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from litestar import Request, Response, delete, get, patch, post, put

from csms.plugin_api import IdToken, utcnow
from plugins.roaming_ocpi import schema, sync, v211
from plugins.roaming_ocpi.client import PartnerError, call
from plugins.roaming_ocpi.config import ocpi_settings
from plugins.roaming_ocpi.parties import (
    authenticate,
    base_url,
    endpoint_url,
    partner_row,
    party_of,
    require_module,
    routable,
)
from plugins.roaming_ocpi.tables import Authorization, CommandRecord, RemoteObject
from plugins.roaming_ocpi.tenancy import partner_scope
from plugins.roaming_ocpi.transport import (
    CLIENT_ERROR,
    UNKNOWN_LOCATION,
    UNKNOWN_TOKEN,
    OcpiError,
    invalid,
    json_body,
    json_object,
    not_found,
    ocpi_response,
    page_request,
    paginated_response,
    parse_datetime,
)
from plugins.roaming_ocpi.v211 import V211, both, is_211

log = logging.getLogger("csms.ocpi.emsp")

OCPP_TO_ALLOWED = {"Accepted": "ALLOWED", "Blocked": "BLOCKED", "Expired": "EXPIRED", "Invalid": "BLOCKED"}



# ======================================================================================================
# Tokens Sender: our cards, and real-time authorization of them
# ======================================================================================================


@get(both("/emsp/2.2.1/tokens"))
async def tokens_list(request: Request) -> Response:
    partner = await authenticate(request)
    require_module(request, "EMSP")
    limit = ocpi_settings().page_limit
    page = page_request(request, limit)
    items = [t for t in await sync.token_list(await partner_scope(partner))
             if page.window(parse_datetime(t["last_updated"]))]
    return paginated_response(request, page, items[page.offset:page.offset + page.limit], len(items))


@post(both("/emsp/2.2.1/tokens/{token_uid:str}/authorize"), status_code=200)
async def token_authorize(request: Request, token_uid: str) -> Response:
    partner = await authenticate(request)
    require_module(request, "EMSP")
    type_ = request.query_params.get("type") or "RFID"
    if type_ not in schema.TOKEN_TYPE[1]:
        raise invalid(f"type {type_!r} is not a TokenType")
    body = await json_body(request, required=False)
    if body is not None:
        schema.require_valid(body, schema.LOCATION_REFERENCES, "LocationReferences")
    # an organization's partner knows that organization's cards only: another's is unknown (2004)
    token = next((t for t in await sync.token_list(await partner_scope(partner))
                  if t["uid"] == token_uid and t["type"] == type_), None)
    row = await IdToken.select().where(IdToken.id_token == token_uid).first()
    if token is None or row is None:
        raise not_found(f"unknown token {token_uid!r}", UNKNOWN_TOKEN)
    status = row["status"]
    if status == "Accepted" and row["expires_at"] is not None and row["expires_at"] <= utcnow():
        status = "Expired"
    allowed = OCPP_TO_ALLOWED.get(status, "BLOCKED")
    reference = uuid.uuid4().hex[:36]
    await Authorization(direction="in", partner=partner["id"], token_uid=token_uid,
                        location_id=(body or {}).get("location_id", ""), allowed=allowed,
                        authorization_reference=reference).save()
    info: dict[str, Any] = {"allowed": allowed, "token": token, "authorization_reference": reference}
    if body is not None and allowed == "ALLOWED":
        info["location"] = body
    return ocpi_response(info)


# ======================================================================================================
# Receivers: Locations, Sessions, CDRs, Tariffs pushed by CPO partners
# ======================================================================================================


async def _stored(partner: dict[str, Any], module: str, cc: str, pid: str, object_id: str) -> dict[str, Any] | None:
    return await RemoteObject.select().where(
        (RemoteObject.partner == partner["id"]) & (RemoteObject.module == module)
        & (RemoteObject.country_code == cc.upper()) & (RemoteObject.party_id == pid.upper())
        & (RemoteObject.object_id == object_id)).output(load_json=True).first()


async def _save(partner: dict[str, Any], module: str, cc: str, pid: str, object_id: str, payload: dict[str, Any],
                existing: dict[str, Any] | None, token_uid: str = "") -> None:
    stamp = parse_datetime(payload["last_updated"])
    if existing is None:
        await RemoteObject(partner=partner["id"], module=module, country_code=cc.upper(), party_id=pid.upper(),
                           object_id=object_id, token_uid=token_uid, payload=payload, last_updated=stamp).save()
    else:
        await RemoteObject.update({RemoteObject.payload: payload, RemoteObject.last_updated: stamp,
                                   RemoteObject.token_uid: token_uid or existing["token_uid"]}).where(
            RemoteObject.id == existing["id"])


def _owner(partner: dict[str, Any], cc: str, pid: str, *, location: bool = False) -> None:
    """An object under (or, a CDR, of) another party (transport_and_format: Client Owned Object
    Push): HTTP 404 with OCPI 2003 for a Location (unknown to this partner), else 2001, the
    message naming the partner's parties; a hub may write for the parties behind it."""
    refused = party_of(partner, cc, pid)
    if refused is not None:
        raise not_found(refused.message, UNKNOWN_LOCATION if location else refused.status_code)


def _same_owner(body: dict[str, Any], cc: str, pid: str, object_id: str, id_field: str = "id") -> None:
    if (str(body.get("country_code", "")).upper(), str(body.get("party_id", "")).upper()) != (cc.upper(), pid.upper()):
        raise invalid("country_code and party_id of the object must match the URL")
    if body.get(id_field) != object_id:
        raise invalid(f"the object's {id_field} must match the URL")


def _patched(changes: Any, spec: Any, what: str) -> dict[str, Any]:
    changes = json_object(changes, what)
    if "last_updated" not in changes:
        raise invalid("a PATCH must contain last_updated")
    return schema.require_valid(changes, spec, what, partial=True)


LOCATION_PATHS = ["/emsp/2.2.1/locations/{country_code:str}/{party_id:str}/{location_id:str}",
                  "/emsp/2.2.1/locations/{country_code:str}/{party_id:str}/{location_id:str}/{evse_uid:str}",
                  "/emsp/2.2.1/locations/{country_code:str}/{party_id:str}/{location_id:str}/{evse_uid:str}/"
                  "{connector_id:str}"]


def _find(items: list[dict[str, Any]], key: str, value: str) -> dict[str, Any] | None:
    return next((i for i in items if i.get(key) == value), None)


def _replace(items: list[dict[str, Any]], key: str, new: dict[str, Any]) -> bool:
    """Put ``new`` in place of the item with the same ``key`` (or append it); True when appended."""
    for i, item in enumerate(items):
        if item.get(key) == new[key]:
            items[i] = new
            return False
    items.append(new)
    return True


@get(both(LOCATION_PATHS))
async def location_get(request: Request, country_code: str, party_id: str, location_id: str,
                       evse_uid: str | None = None, connector_id: str | None = None) -> Response:
    partner = await authenticate(request)
    require_module(request, "EMSP")
    _owner(partner, country_code, party_id, location=True)
    row = await _stored(partner, "locations", country_code, party_id, location_id)
    if row is None:
        raise not_found(f"unknown location {location_id!r}", UNKNOWN_LOCATION)
    target: Any = row["payload"]
    if evse_uid is not None:
        target = _find(target.get("evses") or [], "uid", evse_uid)
        if target is not None and connector_id is not None:
            target = _find(target.get("connectors") or [], "id", connector_id)
    if target is None:
        raise not_found("unknown EVSE or connector", UNKNOWN_LOCATION)
    return ocpi_response(target)


@put(both(LOCATION_PATHS), status_code=200)
async def location_put(request: Request, country_code: str, party_id: str, location_id: str,
                       evse_uid: str | None = None, connector_id: str | None = None) -> Response:
    partner = await authenticate(request)
    require_module(request, "EMSP")
    _owner(partner, country_code, party_id, location=True)
    body = await json_body(request)
    row = await _stored(partner, "locations", country_code, party_id, location_id)
    if evse_uid is None:
        schema.require_valid(body, schema.LOCATION, "Location")
        _same_owner(body, country_code, party_id, location_id)
        await _save(partner, "locations", country_code, party_id, location_id, body, row)
        return ocpi_response(http_status=201 if row is None else 200)
    if row is None:
        raise not_found(f"unknown location {location_id!r}: PUT the Location first", UNKNOWN_LOCATION)
    location = row["payload"]
    evses = location.setdefault("evses", [])
    if connector_id is None:
        schema.require_valid(body, schema.EVSE, "EVSE")
        if body["uid"] != evse_uid:
            raise invalid("the EVSE's uid must match the URL")
        created = _replace(evses, "uid", body)
    else:
        schema.require_valid(body, schema.CONNECTOR, "Connector")
        if body["id"] != connector_id:
            raise invalid("the Connector's id must match the URL")
        evse = _find(evses, "uid", evse_uid)
        if evse is None:
            raise not_found(f"unknown EVSE {evse_uid!r}: PUT the EVSE first", UNKNOWN_LOCATION)
        created = _replace(evse.setdefault("connectors", []), "id", body)
        evse["last_updated"] = body["last_updated"]
    location["last_updated"] = body["last_updated"]
    await _save(partner, "locations", country_code, party_id, location_id, location, row)
    return ocpi_response(http_status=201 if created else 200)


@patch(both(LOCATION_PATHS))
async def location_patch(request: Request, country_code: str, party_id: str, location_id: str,
                         evse_uid: str | None = None, connector_id: str | None = None) -> Response:
    partner = await authenticate(request)
    require_module(request, "EMSP")
    _owner(partner, country_code, party_id, location=True)
    spec = schema.LOCATION if evse_uid is None else schema.EVSE if connector_id is None else schema.CONNECTOR
    changes = _patched(await json_body(request), spec, "Location" if evse_uid is None else
                       "EVSE" if connector_id is None else "Connector")
    row = await _stored(partner, "locations", country_code, party_id, location_id)
    if row is None:
        raise not_found(f"unknown location {location_id!r}", UNKNOWN_LOCATION)
    location = row["payload"]
    if evse_uid is None:
        location.update(changes)
    else:
        evse = _find(location.get("evses") or [], "uid", evse_uid)
        if evse is None:
            raise not_found(f"unknown EVSE {evse_uid!r}", UNKNOWN_LOCATION)
        if connector_id is None:
            evse.update(changes)
        else:
            connector = _find(evse.get("connectors") or [], "id", connector_id)
            if connector is None:
                raise not_found(f"unknown connector {connector_id!r}", UNKNOWN_LOCATION)
            connector.update(changes)
            evse["last_updated"] = changes["last_updated"]
        location["last_updated"] = changes["last_updated"]
    await _save(partner, "locations", country_code, party_id, location_id, location, row)
    return ocpi_response()


SESSION_PATH = "/emsp/2.2.1/sessions/{country_code:str}/{party_id:str}/{session_id:str}"


@get(both(SESSION_PATH))
async def session_get(request: Request, country_code: str, party_id: str, session_id: str) -> Response:
    partner = await authenticate(request)
    require_module(request, "EMSP")
    _owner(partner, country_code, party_id)
    row = await _stored(partner, "sessions", country_code, party_id, session_id)
    if row is None:
        raise not_found(f"unknown session {session_id!r}")
    return ocpi_response(row["payload"])


@put(both(SESSION_PATH), status_code=200)
async def session_put(request: Request, country_code: str, party_id: str, session_id: str) -> Response:
    partner = await authenticate(request)
    require_module(request, "EMSP")
    _owner(partner, country_code, party_id)
    body = schema.require_valid(await json_body(request), schema.SESSION, "Session")
    _same_owner(body, country_code, party_id, session_id)
    row = await _stored(partner, "sessions", country_code, party_id, session_id)
    body.setdefault("charging_periods", [])
    await _save(partner, "sessions", country_code, party_id, session_id, body, row, body["cdr_token"]["uid"])
    return ocpi_response(http_status=201 if row is None else 200)


@patch(both(SESSION_PATH))
async def session_patch(request: Request, country_code: str, party_id: str, session_id: str) -> Response:
    partner = await authenticate(request)
    require_module(request, "EMSP")
    _owner(partner, country_code, party_id)
    changes = _patched(await json_body(request), schema.SESSION, "Session")
    row = await _stored(partner, "sessions", country_code, party_id, session_id)
    if row is None:
        raise not_found(f"unknown session {session_id!r}")
    session = row["payload"]
    periods = changes.pop("charging_periods", None) or []
    session.update(changes)
    session["charging_periods"] = [*(session.get("charging_periods") or []), *periods]
    await _save(partner, "sessions", country_code, party_id, session_id, session, row)
    return ocpi_response()


@post(both("/emsp/2.2.1/cdrs"), status_code=200)
async def cdr_post(request: Request) -> Response:
    partner = await authenticate(request)
    require_module(request, "EMSP")
    body = schema.require_valid(await json_body(request), schema.CDR, "CDR")
    cc, pid = body["country_code"].upper(), body["party_id"].upper()
    _owner(partner, cc, pid)
    row = await _stored(partner, "cdrs", cc, pid, body["id"])
    if row is not None and row["payload"] != body:
        raise OcpiError(CLIENT_ERROR, f"CDR {body['id']} exists and cannot be changed; send a credit CDR")
    if row is None:
        await _save(partner, "cdrs", cc, pid, body["id"], body, None, body["cdr_token"]["uid"])
        row = await _stored(partner, "cdrs", cc, pid, body["id"])
    location = f"{base_url(request)}/ocpi/emsp/{request.url.path.split('/')[3]}/cdrs/{row['id']}"
    return ocpi_response(http_status=201, headers={"Location": location})


@get(both("/emsp/2.2.1/cdrs/{cdr_ref:int}"))
async def cdr_get(request: Request, cdr_ref: int) -> Response:
    partner = await authenticate(request)
    require_module(request, "EMSP")
    row = await RemoteObject.select().where((RemoteObject.id == cdr_ref) & (RemoteObject.module == "cdrs")
                                            & (RemoteObject.partner == partner["id"])).output(load_json=True).first()
    if row is None:
        raise not_found(f"unknown CDR {cdr_ref}")
    return ocpi_response(row["payload"])


TARIFF_PATH = "/emsp/2.2.1/tariffs/{country_code:str}/{party_id:str}/{tariff_id:str}"


@get(both(TARIFF_PATH))
async def tariff_get(request: Request, country_code: str, party_id: str, tariff_id: str) -> Response:
    partner = await authenticate(request)
    require_module(request, "EMSP")
    _owner(partner, country_code, party_id)
    row = await _stored(partner, "tariffs", country_code, party_id, tariff_id)
    if row is None:
        raise not_found(f"unknown tariff {tariff_id!r}")
    return ocpi_response(row["payload"])


@put(both(TARIFF_PATH), status_code=200)
async def tariff_put(request: Request, country_code: str, party_id: str, tariff_id: str) -> Response:
    partner = await authenticate(request)
    require_module(request, "EMSP")
    _owner(partner, country_code, party_id)
    body = schema.require_valid(await json_body(request), schema.TARIFF, "Tariff")
    _same_owner(body, country_code, party_id, tariff_id)
    row = await _stored(partner, "tariffs", country_code, party_id, tariff_id)
    await _save(partner, "tariffs", country_code, party_id, tariff_id, body, row)
    return ocpi_response(http_status=201 if row is None else 200)


@delete(both(TARIFF_PATH), status_code=200)
async def tariff_delete(request: Request, country_code: str, party_id: str, tariff_id: str) -> Response:
    partner = await authenticate(request)
    require_module(request, "EMSP")
    _owner(partner, country_code, party_id)
    row = await _stored(partner, "tariffs", country_code, party_id, tariff_id)
    if row is None:
        raise not_found(f"unknown tariff {tariff_id!r}")
    await RemoteObject.delete().where(RemoteObject.id == row["id"])
    return ocpi_response()


# ======================================================================================================
# Commands Sender: commands to a CPO for our drivers, results received on our response URL
# ======================================================================================================


@post(both("/emsp/2.2.1/commands/{command:str}/{uid:str}"), status_code=200)
async def command_result(request: Request, command: str, uid: str) -> Response:
    partner = await authenticate(request)
    require_module(request, "EMSP")
    record = await CommandRecord.select().where(
        (CommandRecord.direction == "out") & (CommandRecord.uid == uid) & (CommandRecord.command == command)
        & (CommandRecord.partner == partner["id"])).first()
    if record is None:
        raise not_found(f"no {command} command {uid!r} was sent to this partner")
    result = schema.require_valid(await json_body(request), schema.COMMAND_RESULT_OBJ, "CommandResult")
    await CommandRecord.update({CommandRecord.result: result, CommandRecord.status: "done",
                                CommandRecord.result_at: utcnow()}).where(CommandRecord.id == record["id"])
    return ocpi_response()


class CommandError(Exception):
    """A command cannot be sent (unknown token, partner not registered or without the module)."""


async def _cpo_party(partner_id: int, body: dict[str, Any]) -> tuple[str, str] | None:
    """The CPO party a command is for (``OCPI-to-*``): the owner of its Location or Session as
    the partner sent it (behind a hub, the hub routes by it); None: the partner itself."""
    for module, key in (("locations", "location_id"), ("sessions", "session_id")):
        if body.get(key):
            row = await RemoteObject.select(RemoteObject.country_code, RemoteObject.party_id).where(
                (RemoteObject.partner == partner_id) & (RemoteObject.module == module)
                & (RemoteObject.object_id == body[key])).first()
            if row is not None:
                return row["country_code"], row["party_id"]
    return None


async def send_command(partner_id: int, command: str, params: dict[str, Any], *, base: str,
                       requested_by: str = "") -> dict[str, Any]:
    """Send ``command`` to a CPO partner for one of our tokens; the stored record with its answer.

    ``params``: START_SESSION {id_token, location_id, evse_uid?, connector_id?}; STOP_SESSION
    {session_id}; RESERVE_NOW {id_token, location_id, evse_uid?, expiry_date, reservation_id?};
    CANCEL_RESERVATION {reservation_id}; UNLOCK_CONNECTOR {location_id, evse_uid, connector_id}.
    """
    if command not in schema.COMMANDS:
        raise CommandError(f"unknown command {command!r}; one of {', '.join(schema.COMMANDS)}")
    partner = await partner_row(partner_id)
    if partner is None or partner["status"] != "registered":
        raise CommandError("the partner is not registered")
    url = endpoint_url(partner, "commands", "RECEIVER")
    if url is None:
        raise CommandError("the partner has no commands receiver endpoint")
    uid = uuid.uuid4().hex
    version = V211 if is_211(partner) else "2.2.1"
    if version == V211 and command not in v211.COMMANDS:
        raise CommandError(f"OCPI 2.1.1 has no {command}")
    body: dict[str, Any] = {"response_url": f"{base}/ocpi/emsp/{version}/commands/{command}/{uid}"}
    if command in ("START_SESSION", "RESERVE_NOW"):
        token = next((t for t in await sync.token_list(await partner_scope(partner))
                      if t["uid"] == params.get("id_token")), None)
        if token is None:  # an organization's partner knows that organization's cards only
            raise CommandError(f"{params.get('id_token')!r} is not one of our tokens for this partner")
        body["token"] = token
        body["authorization_reference"] = uuid.uuid4().hex[:36]
    fields = {"START_SESSION": ("location_id", "evse_uid", "connector_id"), "STOP_SESSION": ("session_id",),
              "RESERVE_NOW": ("location_id", "evse_uid", "expiry_date", "reservation_id"),
              "CANCEL_RESERVATION": ("reservation_id",),
              "UNLOCK_CONNECTOR": ("location_id", "evse_uid", "connector_id")}[command]
    body.update({f: str(params[f]) for f in fields if params.get(f) not in (None, "")})
    if command == "RESERVE_NOW":  # 2.1.1: an int
        body.setdefault("reservation_id", str(uuid.uuid4().int % 2**31) if version == V211 else uuid.uuid4().hex[:36])
    found = schema.problems(body, schema.COMMANDS[command])
    if found:
        raise CommandError("; ".join(found))
    record = CommandRecord(direction="out", partner=partner_id, command=command, uid=uid, request=body,
                           token_uid=(body.get("token") or {}).get("uid", ""),
                           authorization_reference=body.get("authorization_reference", ""),
                           reservation_id=body.get("reservation_id", ""), requested_by=requested_by)
    to = await _cpo_party(partner_id, body)
    held = await routable(partner, *to) if to else None
    if held:  # the hub says the CPO cannot be reached: the command is not routed
        raise CommandError(held)
    try:
        # the Location's CPO unknown (not pulled or pushed to us): an Open Routing Request through a hub
        answer = await call(partner, "POST", f"{url.rstrip('/')}/{command}", body=body, to=to, open_routing=True)
        response = answer.data if not schema.problems(answer.data, schema.COMMAND_RESPONSE_OBJ) else {
            "result": "REJECTED", "timeout": 0, "message": [{"language": "en", "text": "invalid CommandResponse"}]}
    except PartnerError as exc:
        response = {"result": "REJECTED", "timeout": 0, "message": [{"language": "en", "text": exc.message[:512]}]}
    record.response = response
    record.status = "answered" if response["result"] == "ACCEPTED" else "done"
    await record.save()
    return await CommandRecord.select().where(CommandRecord.id == record.id).output(load_json=True).first()


ROUTES = [tokens_list, token_authorize, location_get, location_put, location_patch, session_get, session_put,
          session_patch, cdr_post, cdr_get, tariff_get, tariff_put, tariff_delete, command_result]
