"""The CPO role: Locations, Sessions, CDRs and Tariffs served (Sender interfaces), Tokens and
Commands received, real-time authorization of partners' tokens at our stations, and Sessions and
CDRs pushed to the eMSP whose token charges."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from litestar import Request, Response, get, patch, post, put

from csms.plugin_api import (
    AuthorizationResult, CommandTimeout, IdToken, OperationError, Scope, Site, Station, StationOffline,
    UnknownStation, call_hook, events as ev, get_core, session_dict, utcnow,
)
from plugins.roaming_ocpi import objects, schema, sync, v211
from plugins.roaming_ocpi.client import PartnerError, call
from plugins.roaming_ocpi.config import ocpi_settings
from plugins.roaming_ocpi.parties import (
    any_partner,
    authenticate,
    endpoint_url,
    partner_row,
    party_of,
    registered_partners,
    requesting_party,
    require_module,
    routable,
    speaks_for,
)
from plugins.roaming_ocpi.tenancy import partner_scope, station_visible
from plugins.roaming_ocpi.tables import (
    Authorization,
    Cdr,
    CommandRecord,
    RemoteObject,
    SessionLink,
)
from plugins.roaming_ocpi.transport import (
    UNKNOWN_LOCATION,
    UNKNOWN_TOKEN,
    OcpiError,
    invalid,
    json_body,
    json_object,
    not_found,
    ocpi_response,
    ocpi_ts,
    page_request,
    paginated_response,
    parse_datetime,
)
from plugins.roaming_ocpi.v211 import V211, both, is_211

log = logging.getLogger("csms.ocpi.cpo")

COMMAND_GRACE = timedelta(minutes=15)  # no real-time authorization this long after a command (mod_commands)
REALTIME_REUSE = timedelta(minutes=5)  # an ALLOWED answer covers Authorize and the start that follows
ALLOWED_TO_OCPP = {"ALLOWED": "Accepted", "BLOCKED": "Blocked", "EXPIRED": "Expired", "NO_CREDIT": "NoCredit",
                   "NOT_ALLOWED": "NotAtThisLocation"}



# ======================================================================================================
# Sender interfaces: locations, tariffs, sessions, CDRs
# ======================================================================================================


def _in_window(page: Any, item: dict[str, Any]) -> bool:
    return page.window(parse_datetime(item["last_updated"]))


async def _list(request: Request, items: list[dict[str, Any]], *, date_from_required: bool = False) -> Response:
    limit = ocpi_settings().page_limit
    page = page_request(request, limit, date_from_required=date_from_required)
    selected = [i for i in items if _in_window(page, i)]
    return paginated_response(request, page, selected[page.offset:page.offset + page.limit], len(selected))


@get(both("/cpo/2.2.1/locations"))
async def locations_list(request: Request) -> Response:
    partner = await authenticate(request)
    require_module(request, "CPO")
    return await _list(request, await sync.location_list(await partner_scope(partner)))


@get(both(["/cpo/2.2.1/locations/{location_id:str}", "/cpo/2.2.1/locations/{location_id:str}/{evse_uid:str}",
           "/cpo/2.2.1/locations/{location_id:str}/{evse_uid:str}/{connector_id:str}"]))
async def location_object(request: Request, location_id: str, evse_uid: str | None = None,
                          connector_id: str | None = None) -> Response:
    partner = await authenticate(request)
    require_module(request, "CPO")
    location = next((loc for loc in await sync.location_list(await partner_scope(partner))
                     if loc["id"] == location_id), None)
    if location is None:  # another organization's Location is unknown to this organization's partner
        raise not_found(f"unknown location {location_id!r}", UNKNOWN_LOCATION)
    if evse_uid is None:
        return ocpi_response(location)
    evse = next((e for e in location["evses"] if e["uid"] == evse_uid), None)
    if evse is None:
        raise not_found(f"location {location_id!r} has no EVSE {evse_uid!r}", UNKNOWN_LOCATION)
    if connector_id is None:
        return ocpi_response(evse)
    connector = next((c for c in evse["connectors"] if c["id"] == connector_id), None)
    if connector is None:
        raise not_found(f"EVSE {evse_uid!r} has no connector {connector_id!r}", UNKNOWN_LOCATION)
    return ocpi_response(connector)


@get(both("/cpo/2.2.1/tariffs"))
async def tariffs_list(request: Request) -> Response:
    partner = await authenticate(request)
    require_module(request, "CPO")
    return await _list(request, await sync.tariff_list(await partner_scope(partner)))


@get(both("/cpo/2.2.1/sessions"))
async def sessions_list(request: Request) -> Response:
    partner = await authenticate(request)
    require_module(request, "CPO")
    links = await SessionLink.select().where(SessionLink.partner == partner["id"]).order_by(
        SessionLink.session_id).output(load_json=True)
    items = [await session_object(link) for link in links]
    return await _list(request, [i for i in items if i is not None], date_from_required=True)


@put("/cpo/2.2.1/sessions/{session_id:str}/charging_preferences")
async def charging_preferences(request: Request, session_id: str) -> Response:
    await authenticate(request)
    require_module(request, "CPO")
    raise OcpiError(2001, "no EVSE of this CPO is CHARGING_PREFERENCES_CAPABLE", http_status=404)


@get(both("/cpo/2.2.1/cdrs"))
async def cdrs_list(request: Request) -> Response:
    partner = await authenticate(request)
    require_module(request, "CPO")
    rows = await Cdr.select().where(Cdr.partner == partner["id"]).order_by(Cdr.id).output(load_json=True)
    return await _list(request, [r["payload"] for r in rows])


# ======================================================================================================
# Tokens Receiver
# ======================================================================================================


def _token_type(request: Request) -> str:
    value = request.query_params.get("type") or "RFID"
    if value not in schema.TOKEN_TYPE[1]:
        raise invalid(f"type {value!r} is not a TokenType")
    return value


async def _stored_token(partner: dict[str, Any], cc: str, pid: str, uid: str, type_: str) -> dict[str, Any] | None:
    return await RemoteObject.select().where(
        (RemoteObject.module == "tokens") & (RemoteObject.partner == partner["id"])
        & (RemoteObject.country_code == cc.upper()) & (RemoteObject.party_id == pid.upper())
        & (RemoteObject.object_id == uid) & (RemoteObject.object_type == type_)).output(load_json=True).first()


def _check_owner(partner: dict[str, Any], cc: str, pid: str) -> None:
    """A Token under another party's URL (transport_and_format: Client Owned Object Push): HTTP
    404, OCPI 2001 naming the partner's parties; a hub may write for the parties behind it."""
    refused = party_of(partner, cc, pid)
    if refused is not None:
        raise not_found(refused.message, refused.status_code)


@get(both("/cpo/2.2.1/tokens/{country_code:str}/{party_id:str}/{token_uid:str}"))
async def token_get(request: Request, country_code: str, party_id: str, token_uid: str) -> Response:
    partner = await authenticate(request)
    require_module(request, "CPO")
    _check_owner(partner, country_code, party_id)
    row = await _stored_token(partner, country_code, party_id, token_uid, _token_type(request))
    if row is None:
        raise not_found(f"unknown token {token_uid!r}", UNKNOWN_TOKEN)
    return ocpi_response(row["payload"])


@put(both("/cpo/2.2.1/tokens/{country_code:str}/{party_id:str}/{token_uid:str}"), status_code=200)
async def token_put(request: Request, country_code: str, party_id: str, token_uid: str) -> Response:
    partner = await authenticate(request)
    require_module(request, "CPO")
    _check_owner(partner, country_code, party_id)
    type_ = _token_type(request)
    token = schema.require_valid(await json_body(request), schema.TOKEN, "Token")
    if (token["country_code"].upper(), token["party_id"].upper(), token["uid"], token["type"]) != (
            country_code.upper(), party_id.upper(), token_uid, type_):
        raise invalid("country_code, party_id, uid and type of the Token must match the URL")
    created = await _store_token(partner, token)
    return ocpi_response(http_status=201 if created else 200)


@patch(both("/cpo/2.2.1/tokens/{country_code:str}/{party_id:str}/{token_uid:str}"))
async def token_patch(request: Request, country_code: str, party_id: str, token_uid: str) -> Response:
    partner = await authenticate(request)
    require_module(request, "CPO")
    _check_owner(partner, country_code, party_id)
    type_ = _token_type(request)
    changes = json_object(await json_body(request), "Token fields")
    if "last_updated" not in changes:
        raise invalid("a PATCH must contain last_updated")
    schema.require_valid(changes, schema.TOKEN, "Token", partial=True)
    for field in ("country_code", "party_id", "uid", "type"):
        if field in changes and str(changes[field]).upper() != str(
                {"country_code": country_code, "party_id": party_id, "uid": token_uid, "type": type_}[field]).upper():
            raise invalid(f"{field} cannot be changed by a PATCH")
    row = await _stored_token(partner, country_code, party_id, token_uid, type_)
    if row is None:
        raise not_found(f"unknown token {token_uid!r}", UNKNOWN_TOKEN)
    await _store_token(partner, {**row["payload"], **changes})
    return ocpi_response()


async def _store_token(partner: dict[str, Any], token: dict[str, Any]) -> bool:
    cc, pid = token["country_code"].upper(), token["party_id"].upper()
    row = await _stored_token(partner, cc, pid, token["uid"], token["type"])
    stamp = parse_datetime(token["last_updated"])
    if row is None:
        await RemoteObject(partner=partner["id"], module="tokens", country_code=cc, party_id=pid,
                           object_id=token["uid"], object_type=token["type"], token_uid=token["uid"], payload=token,
                           last_updated=stamp).save()
        return True
    await RemoteObject.update({RemoteObject.payload: token, RemoteObject.last_updated: stamp}).where(
        RemoteObject.id == row["id"])
    return False


# ======================================================================================================
# Authorization of partners' tokens at our stations (the ``authorize_token`` hook)
# ======================================================================================================


async def partner_tokens(uid: str, wanted_type: str, station_id: str) -> list[dict[str, Any]]:
    """The tokens ``uid`` partners pushed that may charge at ``station_id``, of registered partners
    only (an unregistered partner's are ignored; an organization's partner's only at that
    organization's stations): the wanted type first, then the most recently registered partner
    first, then the most recently stored."""
    rows = await RemoteObject.select().where(
        (RemoteObject.module == "tokens") & (RemoteObject.object_id == uid)).output(load_json=True)
    if not rows:
        return []
    partners = {p["id"]: p for p in await _partners_at(station_id)}
    rows = [r for r in rows if r["partner"] in partners]

    def order(row: dict[str, Any]) -> tuple[bool, float, int]:
        partner = partners[row["partner"]]
        since = partner["registered_at"] or partner["created_at"]
        return row["object_type"] != wanted_type, -since.timestamp(), -row["id"]

    return sorted(rows, key=order)


async def _partners_at(station_id: str, role: str | None = None, *, hubs: bool = False) -> list[dict[str, Any]]:
    """The registered partners whose drivers may charge at ``station_id``: the installation's,
    and those of an organization whose tree holds the station."""
    return [p for p in await registered_partners(role, hubs=hubs)
            if await station_visible(await partner_scope(p), station_id)]


async def authorize(station_id: str, id_token: str, token_type: str, evse_id: int | None,
                    purpose: str) -> AuthorizationResult | None:
    """A partner's token: whitelist rules, real-time authorization within the time budget."""
    if "CPO" not in ocpi_settings().role_set or not id_token or not await any_partner():
        return None
    wanted = objects.TOKEN_TYPE_TO_OCPI.get(token_type, "RFID")
    tokens = await partner_tokens(id_token, wanted, station_id)
    if await _recent_command(station_id, id_token):
        return AuthorizationResult("Accepted", group_id=(tokens[0]["payload"].get("group_id") if tokens else None),
                                   source="roaming_ocpi.command")
    if not tokens:
        if not ocpi_settings().authorize_unknown or purpose == "stop" or await IdToken.exists().where(
                IdToken.id_token == id_token):
            return None
        return await _ask_everyone(station_id, id_token, wanted)
    row = tokens[0]
    token = row["payload"]
    group = token.get("group_id")
    local = AuthorizationResult("Accepted" if token.get("valid") else "Invalid", group_id=group,
                                source="roaming_ocpi.whitelist")
    whitelist = token.get("whitelist")
    if whitelist in ("ALWAYS", "ALLOWED") or purpose == "stop":
        return local
    partner = await partner_row(row["partner"])
    recent = await Authorization.select().where(
        (Authorization.direction == "out") & (Authorization.token_uid == id_token)
        & (Authorization.station_id == station_id) & (Authorization.created_at > utcnow() - REALTIME_REUSE)
    ).order_by(Authorization.id, ascending=False).first()
    if recent is not None and recent["allowed"] == "ALLOWED":
        return AuthorizationResult("Accepted", group_id=group, source="roaming_ocpi.realtime")
    try:
        async with asyncio.timeout(ocpi_settings().authorize_timeout):
            info = await realtime_authorize(partner, token, station_id)
    except (asyncio.TimeoutError, PartnerError) as exc:
        if isinstance(exc, PartnerError) and (exc.ocpi_status == UNKNOWN_TOKEN or exc.http_status == 404):
            return AuthorizationResult("Unknown", source="roaming_ocpi.realtime")
        log.warning("real-time authorization of %s at partner %s failed: %s", id_token, row["partner"],
                    getattr(exc, "message", "timeout"))
        if whitelist == "ALLOWED_OFFLINE":
            return local
        return AuthorizationResult("Invalid", source="roaming_ocpi.realtime_unreachable")
    return AuthorizationResult(ALLOWED_TO_OCPP.get(info["allowed"], "Invalid"), group_id=group,
                               source="roaming_ocpi.realtime")


async def realtime_authorize(partner: dict[str, Any] | None, token: dict[str, Any], station_id: str) -> dict[str, Any]:
    """POST tokens/{uid}/authorize at the token's eMSP; the AuthorizationInfo (recorded)."""
    if partner is None or partner["status"] != "registered":
        raise PartnerError("the token's partner is not registered")
    base = endpoint_url(partner, "tokens", "SENDER")
    if base is None:
        raise PartnerError("the partner has no tokens sender endpoint for real-time authorization")
    location_id = await objects.location_of_station(station_id)
    body = None
    if location_id is not None:
        body = {"location_id": location_id}
        evses = [e["uid"] for loc in [await _location_snapshot(location_id)] if loc for e in loc.get("evses", [])
                 if e["uid"].startswith(f"{station_id}*")]
        if evses:
            body["evse_uids"] = evses
    to = _token_party(token)
    held = await routable(partner, *to) if to else None
    if held:  # the hub says the token's eMSP cannot be reached: do not route to it
        raise PartnerError(f"not asked: {held}")
    # a token whose party we do not know (nobody pushed it) asked through a hub: an Open Routing
    # Request, the hub finds its eMSP
    answer = await call(partner, "POST", f"{base.rstrip('/')}/{token['uid']}/authorize",
                        params={"type": token["type"]}, body=body, to=to, open_routing=True)
    if is_211(partner) and isinstance(answer.data, dict):  # a 2.1.1 AuthorizationInfo names no token
        answer.data = {**answer.data, "token": answer.data.get("token") or token}
    found = schema.problems(answer.data, schema.AUTHORIZATION_INFO)
    if found:
        raise PartnerError(f"invalid AuthorizationInfo: {found[0]}", http_status=answer.http_status, ocpi_status=2001)
    info = answer.data
    await Authorization(direction="out", partner=partner["id"], token_uid=token["uid"], station_id=station_id,
                        location_id=location_id or "", allowed=info["allowed"],
                        authorization_reference=info.get("authorization_reference") or "").save()
    return info


async def _location_snapshot(location_id: str) -> dict[str, Any] | None:
    from plugins.roaming_ocpi.tables import Snapshot

    row = await Snapshot.select(Snapshot.payload).where(
        (Snapshot.kind == "location") & (Snapshot.key == location_id)).output(load_json=True).first()
    return row["payload"] if row else None


async def _ask_everyone(station_id: str, uid: str, type_: str) -> AuthorizationResult | None:
    """A token nobody pushed: ask every eMSP partner at once; the first ALLOWED wins."""
    partners = [p for p in await _partners_at(station_id, "EMSP", hubs=True) if endpoint_url(p, "tokens", "SENDER")]
    if not partners:
        return None
    probe = {"uid": uid, "type": type_}

    async def ask(p: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return await realtime_authorize(p, probe, station_id)
        except PartnerError:
            return None

    try:
        async with asyncio.timeout(ocpi_settings().authorize_timeout):
            answers = await asyncio.gather(*(ask(p) for p in partners))
    except asyncio.TimeoutError:
        return None
    for partner, info in zip(partners, answers):
        if info is not None:
            token = info["token"]
            if speaks_for(partner, token["country_code"], token["party_id"]) and not schema.problems(token, schema.TOKEN):
                await _store_token(partner, token)
            return AuthorizationResult(ALLOWED_TO_OCPP.get(info["allowed"], "Invalid"), source="roaming_ocpi.realtime")
    return None


async def _recent_command(station_id: str, id_token: str) -> dict[str, Any] | None:
    rows = await CommandRecord.select().where(
        (CommandRecord.direction == "in") & (CommandRecord.command.is_in(["START_SESSION", "RESERVE_NOW"]))
        & (CommandRecord.station_id == station_id) & (CommandRecord.created_at > utcnow() - COMMAND_GRACE)
    ).order_by(CommandRecord.id, ascending=False).output(load_json=True)
    return next((r for r in rows if r["token_uid"] == id_token or (
        len(id_token) == 20 and r["token_uid"].startswith(id_token))), None)


# ======================================================================================================
# Sessions and CDRs pushed while sessions run (from core events)
# ======================================================================================================

_linked: set[int] = set()


async def load_links() -> None:
    _linked.clear()
    _linked.update(r["session_id"] for r in await SessionLink.select(SessionLink.session_id).where(
        SessionLink.status == "ACTIVE"))


async def on_event(event: ev.Event) -> None:
    if "CPO" not in ocpi_settings().role_set or not await any_partner():
        return
    if isinstance(event, ev.ConnectorStatusChanged):
        row = await Station.select(Station.site).where(Station.station_id == event.station_id).first()
        if row is not None and row["site"] is not None and event.evse_id > 0:
            await sync.refresh_locations([row["site"]], {
                (event.station_id, event.evse_id, event.connector_id): event.status})
    elif isinstance(event, (ev.StationConnected, ev.StationDisconnected)):
        row = await Station.select(Station.site).where(Station.station_id == event.station_id).first()
        if row is not None and row["site"] is not None:
            await sync.refresh_locations([row["site"]])
    elif isinstance(event, ev.SessionStarted):
        await _session_started(event)
    elif isinstance(event, ev.SessionUpdated) and event.session_id in _linked:
        await _session_progress(event.session_id, final=False)
    elif isinstance(event, ev.SessionStopped) and event.session_id in _linked:
        await _session_progress(event.session_id, final=True)


async def _session_started(event: ev.SessionStarted) -> None:
    session = await session_dict(event.session_id)
    if session is None:
        return
    command = await _recent_command(event.station_id, event.id_token)
    if command is not None and command["command"] == "START_SESSION":
        partner_id = command["partner"]
        token = command["request"]["token"]
        auth_method, reference = "COMMAND", command["authorization_reference"]
        await CommandRecord.update({CommandRecord.status: "done"}).where(CommandRecord.id == command["id"])
    else:
        tokens = await partner_tokens(event.id_token, objects.TOKEN_TYPE_TO_OCPI.get(session["token_type"], "RFID"),
                                      event.station_id)
        if not tokens:
            return
        partner_id, token = tokens[0]["partner"], tokens[0]["payload"]
        realtime = await Authorization.select().where(
            (Authorization.direction == "out") & (Authorization.token_uid == event.id_token)
            & (Authorization.station_id == event.station_id)
            & (Authorization.created_at > utcnow() - REALTIME_REUSE)).order_by(Authorization.id, ascending=False).first()
        auth_method = "AUTH_REQUEST" if realtime else "WHITELIST"
        reference = realtime["authorization_reference"] if realtime else ""
    location_id = await objects.location_of_station(event.station_id) or "#NA"
    link = SessionLink(
        session_id=event.session_id, partner=partner_id,
        cdr_token={k: token[k] for k in ("country_code", "party_id", "uid", "type", "contract_id")},
        auth_method=auth_method, authorization_reference=reference or "", location_id=location_id,
        evse_uid=await objects.evse_uid_at(None if location_id == "#NA" else location_id, event.station_id,
                                           event.evse_id), connector_id=str(session["connector_id"] or 1),
        status="ACTIVE", period_start=session["started_at"], period_energy_wh=0, last_pushed_at=utcnow(),
        last_updated=utcnow())
    await link.save()
    _linked.add(event.session_id)
    body = await session_object(await _link(event.session_id))
    await _push_session(partner_id, event.session_id, "PUT", body)


async def _link(session_id: int) -> dict[str, Any]:
    return await SessionLink.select().where(SessionLink.session_id == session_id).output(load_json=True).first()


def _token_party(token: dict[str, Any] | None) -> tuple[str, str] | None:
    """The eMSP party of a token (``OCPI-to-*`` of what concerns it: behind a hub, the hub routes by it)."""
    if not token or not token.get("country_code") or not token.get("party_id"):
        return None
    return str(token["country_code"]).upper(), str(token["party_id"]).upper()


async def _push_session(partner_id: int, session_id: int, method: str, body: dict[str, Any]) -> None:
    s = ocpi_settings()
    link = await _link(session_id)
    await sync.enqueue(partner_id, method, f"session:{session_id}", module="sessions",
                       path=f"/{s.country_code}/{s.party_id}/{session_id}", body=body,
                       to=_token_party(link["cdr_token"] if link else body.get("cdr_token")))


async def _cost(session: dict[str, Any], final: bool) -> Any:
    return await call_hook("price_session", session=session, final=final)


FOUR = Decimal("0.0001")  # OCPI numbers carry 4 decimals


def _kwh(energy_wh: float) -> Decimal:
    return (Decimal(str(max(energy_wh or 0.0, 0.0))) / 1000).quantize(FOUR, rounding=ROUND_HALF_UP)


def _hours(start: datetime, end: datetime) -> Decimal:
    return (Decimal(str(max((end - start).total_seconds(), 0.0))) / 3600).quantize(FOUR, rounding=ROUND_HALF_UP)


def _summed(periods: list[dict[str, Any]], dimension: str) -> Decimal:
    return sum((Decimal(str(d["volume"])) for p in periods for d in p.get("dimensions", [])
                if d.get("type") == dimension), Decimal(0))


def _period(start: datetime, periods: list[dict[str, Any]], total_kwh: Decimal, total_h: Decimal) -> dict[str, Any]:
    """The next charging period: what the session's totals have beyond the periods before it, so
    the periods always add up exactly to the totals (the last one takes the remainder)."""
    return {"start_date_time": ocpi_ts(start), "dimensions": [
        {"type": "ENERGY", "volume": float(max(total_kwh - _summed(periods, "ENERGY"), Decimal(0)))},
        {"type": "TIME", "volume": float(max(total_h - _summed(periods, "TIME"), Decimal(0)))}]}


def _balanced(periods: list[dict[str, Any]], total_kwh: Decimal, total_h: Decimal) -> list[dict[str, Any]]:
    """The periods with the last one taking what the totals have beyond their sum."""
    periods = [{**p, "dimensions": [dict(d) for d in p["dimensions"]]} for p in periods]
    for dimension, total in (("ENERGY", total_kwh), ("TIME", total_h)):
        rest = total - _summed(periods, dimension)
        last = next((d for d in periods[-1]["dimensions"] if d.get("type") == dimension), None) if periods else None
        if last is not None and rest and Decimal(str(last["volume"])) + rest >= 0:
            last["volume"] = float(Decimal(str(last["volume"])) + rest)
    return periods


async def _session_progress(session_id: int, *, final: bool) -> None:
    link = await _link(session_id)
    session = await session_dict(session_id)
    if link is None or session is None or link["status"] != "ACTIVE":
        return
    now = utcnow()
    if not final and link["last_pushed_at"] is not None and (now - link["last_pushed_at"]).total_seconds() < \
            ocpi_settings().session_update_interval:
        return
    live = get_core().sessions.find(session["station_id"], session["transaction_id"])
    energy = live.energy_wh if live is not None else session["energy_wh"] or 0.0
    end = session["stopped_at"] if final and session["stopped_at"] else now
    period = _period(link["period_start"] or session["started_at"], link["periods"], _kwh(energy),
                     _hours(session["started_at"], end))
    periods = [*link["periods"], period]
    values: dict[Any, Any] = {SessionLink.periods: periods, SessionLink.period_start: end,
                              SessionLink.period_energy_wh: round(energy), SessionLink.last_pushed_at: now,
                              SessionLink.last_updated: now}
    if final:
        values[SessionLink.status] = "COMPLETED"
        _linked.discard(session_id)
    await SessionLink.update(values).where(SessionLink.session_id == session_id)
    cost = await _cost(session, final)
    change: dict[str, Any] = {"kwh": float(_kwh(energy)), "charging_periods": [period],
                              "last_updated": ocpi_ts(now)}
    if cost is not None:
        change["total_cost"] = objects.price(cost.total_excl_vat, cost.total_incl_vat)
    if final:
        change.update(status="COMPLETED", end_date_time=ocpi_ts(end))
    await _push_session(link["partner"], session_id, "PATCH", change)
    if final:
        await _issue_cdr(await _link(session_id), session, cost)


async def session_object(link: dict[str, Any]) -> dict[str, Any] | None:
    """The OCPI Session of a linked session, as it stands."""
    session = await session_dict(link["session_id"])
    if session is None:
        return None
    s = ocpi_settings()
    live = get_core().sessions.find(session["station_id"], session["transaction_id"])
    energy = live.energy_wh if live is not None else session["energy_wh"] or 0.0
    cost = await _cost(session, session["state"] == "completed")
    body: dict[str, Any] = {
        "country_code": s.country_code, "party_id": s.party_id, "id": str(link["session_id"]),
        "start_date_time": ocpi_ts(session["started_at"]), "kwh": float(_kwh(energy)),
        "cdr_token": link["cdr_token"], "auth_method": link["auth_method"],
        "location_id": link["location_id"], "evse_uid": link["evse_uid"], "connector_id": link["connector_id"],
        "currency": cost.currency if cost is not None else s.currency, "charging_periods": link["periods"],
        "status": link["status"], "last_updated": ocpi_ts(link["last_updated"]),
    }
    if link["authorization_reference"]:
        body["authorization_reference"] = link["authorization_reference"]
    if session["stopped_at"] is not None and link["status"] == "COMPLETED":
        body["end_date_time"] = ocpi_ts(session["stopped_at"])
    if cost is not None:
        body["total_cost"] = objects.price(cost.total_excl_vat, cost.total_incl_vat)
    return body


async def _issue_cdr(link: dict[str, Any], session: dict[str, Any], cost: Any) -> None:
    """The CDR of a finished session, stored and POSTed to the token's eMSP (once per session)."""
    s = ocpi_settings()
    cdr_id = str(link["session_id"])
    if await Cdr.exists().where(Cdr.cdr_id == cdr_id):
        return
    start, end = session["started_at"], session["stopped_at"] or utcnow()
    energy = session["energy_wh"] or 0.0
    site = None
    station = await Station.select(Station.site).where(Station.station_id == session["station_id"]).first()
    if station and station["site"] is not None:
        site = await Site.select().where(Site.id == station["site"]).first()
    connector = await _connector_of(session)
    cdr_location = {
        "id": link["location_id"], "address": (site["address"] if site else "#NA")[:45] or "#NA",
        "city": (site["city"] if site else "#NA")[:45] or "#NA",
        "country": (site["country"] if site and len(site["country"] or "") == 3 else "#NA"),
        "coordinates": {"latitude": objects.coordinate(site["latitude"] if site and site["latitude"] is not None
                                                       else 0.0),
                        "longitude": objects.coordinate(site["longitude"] if site and site["longitude"] is not None
                                                        else 0.0)},
        "evse_uid": link["evse_uid"], "evse_id": objects.emi3_evse_id(session["station_id"], session["evse_id"]),
        "connector_id": link["connector_id"], "connector_standard": connector["standard"],
        "connector_format": connector["format"], "connector_power_type": connector["power_type"],
    }
    if site is not None:
        cdr_location["name"] = site["name"][:255]
        if site["postal_code"]:
            cdr_location["postal_code"] = site["postal_code"][:10]
    total_kwh, total_h = _kwh(energy), _hours(start, end)
    periods = _balanced(link["periods"], total_kwh, total_h) or [_period(start, [], total_kwh, total_h)]
    cdr: dict[str, Any] = {
        "country_code": s.country_code, "party_id": s.party_id, "id": cdr_id, "start_date_time": ocpi_ts(start),
        "end_date_time": ocpi_ts(end), "session_id": cdr_id, "cdr_token": link["cdr_token"],
        "auth_method": link["auth_method"], "cdr_location": cdr_location,
        "currency": cost.currency if cost is not None else s.currency, "charging_periods": periods,
        "total_energy": float(total_kwh), "total_time": float(total_h),
        "last_updated": ocpi_ts(utcnow()),
    }
    if link["authorization_reference"]:
        cdr["authorization_reference"] = link["authorization_reference"]
    signed = objects.signed_data(await _signed_values(session))
    if signed is not None:
        cdr["signed_data"] = signed
    if cost is not None:
        cdr["total_cost"] = objects.price(cost.total_excl_vat, cost.total_incl_vat)
        cdr.update(_cost_totals(cost))
        choice = await call_hook("select_tariff", session=session)
        tariff = objects.tariff_object(choice, start) if choice is not None else None
        if tariff is not None and not schema.problems(tariff, schema.TARIFF):
            cdr["tariffs"] = [tariff]
            for period in cdr["charging_periods"]:
                period["tariff_id"] = tariff["id"]
    else:
        cdr["total_cost"] = {"excl_vat": 0.0, "incl_vat": 0.0}
        cdr["remark"] = "No tariff applies to this session; no cost was computed."
    await Cdr(cdr_id=cdr_id, session_id=link["session_id"], partner=link["partner"], payload=cdr,
              last_updated=utcnow()).save()
    await SessionLink.update({SessionLink.cdr_id: cdr_id}).where(SessionLink.session_id == link["session_id"])
    await sync.enqueue(link["partner"], "POST", f"cdr:{cdr_id}", module="cdrs", body=cdr,
                       to=_token_party(cdr["cdr_token"]))


async def _signed_values(session: dict[str, Any]) -> list[dict[str, Any]]:
    """The signed meter values the station sent for this session, oldest first: what the core
    keeps of them (station events of category ``signed_meter_values``, details ``transaction_id``
    and ``values``), those of its transaction, or without one those of its EVSE during it."""
    from csms.plugin_api import StationEvent

    start = session["started_at"] - timedelta(minutes=1)
    rows = await StationEvent.select(StationEvent.details, StationEvent.evse_id, StationEvent.timestamp).where(
        (StationEvent.station_id == session["station_id"]) & (StationEvent.category == "signed_meter_values")
        & (StationEvent.timestamp >= start)).order_by(StationEvent.id).output(load_json=True)
    end = (session["stopped_at"] or utcnow()) + timedelta(minutes=1)
    values: list[dict[str, Any]] = []
    for row in rows:
        details = row["details"] if isinstance(row["details"], dict) else {}
        tx = details.get("transaction_id")
        ours = (str(tx) == str(session["transaction_id"]) if tx is not None
                else row["evse_id"] in (None, session["evse_id"]) and row["timestamp"] <= end)
        if ours:
            values.extend(v for v in details.get("values") or [] if isinstance(v, dict))
    return values


def _cost_totals(cost: Any) -> dict[str, Any]:
    """Per-dimension totals from the cost lines (Decimal arithmetic, then OCPI numbers)."""
    sums: dict[str, list[Decimal]] = {}
    parking_hours = Decimal(0)
    for line in cost.lines:
        key = {"ENERGY": "total_energy_cost", "TIME": "total_time_cost", "PARKING_TIME": "total_parking_cost",
               "FLAT": "total_fixed_cost"}.get(line.component)
        if key is None:
            continue
        excl, vat = sums.setdefault(key, [Decimal(0), Decimal(0)])
        sums[key] = [excl + line.amount_excl_vat, vat + line.vat_amount]
        if line.component == "PARKING_TIME" and line.unit in ("h", "hour", "hours"):
            parking_hours += line.quantity
    out: dict[str, Any] = {k: objects.price(v[0], v[0] + v[1]) for k, v in sums.items()}
    if parking_hours:
        out["total_parking_time"] = objects.money(parking_hours)
    return out


async def _connector_of(session: dict[str, Any]) -> dict[str, str]:
    from csms.plugin_api import Connector

    row = await Connector.select().where(
        (Connector.station.station_id == session["station_id"]) & (Connector.evse_id == session["evse_id"])).first()
    power_type = row["power_type"] if row and row["power_type"] in schema.POWER_TYPE[1] else "AC_3_PHASE"
    return {"standard": row["standard"] if row and row["standard"] in schema.CONNECTOR_TYPE[1] else "IEC_62196_T2",
            "format": "CABLE" if power_type == "DC" else "SOCKET", "power_type": power_type}


# ======================================================================================================
# Commands Receiver
# ======================================================================================================

RESULT_OF_STATUS = {"Accepted": "ACCEPTED", "Rejected": "REJECTED", "Unlocked": "ACCEPTED", "UnlockFailed": "FAILED",
                    "NotSupported": "NOT_SUPPORTED", "Occupied": "EVSE_OCCUPIED", "Faulted": "EVSE_INOPERATIVE",
                    "Unavailable": "EVSE_INOPERATIVE", "OngoingAuthorizedTransaction": "REJECTED",
                    "UnknownConnector": "REJECTED"}


def _response(result: str, message: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"result": result, "timeout": ocpi_settings().command_timeout}
    if message:
        out["message"] = [{"language": "en", "text": message[:512]}]
    return out


@post(both("/cpo/2.2.1/commands/{command:str}"), status_code=200)
async def command_receive(request: Request, command: str) -> Response:
    partner = await authenticate(request)
    require_module(request, "CPO")
    if command not in schema.COMMANDS or f"/{V211}/" in request.url.path and command not in v211.COMMANDS:
        return ocpi_response(_response("NOT_SUPPORTED", f"unknown command {command!r}"))
    body = schema.require_valid(await json_body(request), schema.COMMANDS[command], command)
    record = CommandRecord(direction="in", partner=partner["id"], command=command, uid=uuid.uuid4().hex, request=body,
                           authorization_reference=body.get("authorization_reference") or "",
                           reservation_id=body.get("reservation_id") or "",
                           token_uid=(body.get("token") or {}).get("uid", ""))
    if request.headers.get("ocpi-from-country-code"):  # checked by authenticate: a party it speaks for
        record.from_country_code, record.from_party_id = requesting_party(request, partner)
    response = await _accept_command(partner, command, body, record)
    record.response = response
    record.status = "answered" if response["result"] == "ACCEPTED" else "done"
    await record.save()
    if response["result"] == "ACCEPTED":
        sync.spawn(_execute(record.id), f"ocpi-command-{record.id}")
    return ocpi_response(response)


async def _accept_command(partner: dict[str, Any], command: str, body: dict[str, Any],
                          record: CommandRecord) -> dict[str, Any]:
    """The synchronous CommandResponse: can the command be sent to a station?"""
    token = body.get("token")
    if token is not None:
        schema.require_valid(token, schema.TOKEN, "Token")
        if not speaks_for(partner, token["country_code"], token["party_id"]):
            return _response("REJECTED", "the token does not belong to this eMSP")
    if command == "STOP_SESSION":
        link = None
        if body["session_id"].isdigit():
            link = await SessionLink.select().where(SessionLink.session_id == int(body["session_id"])).first()
        if link is None:
            return _response("UNKNOWN_SESSION", f"no session {body['session_id']}")
        if link["partner"] != partner["id"]:
            return _response("REJECTED", "the session is not one of this eMSP's")
        session = await session_dict(link["session_id"])
        if session is None or session["state"] != "active":
            return _response("REJECTED", "the session has ended")
        record.station_id, record.evse_id = session["station_id"], session["evse_id"]
    elif command == "CANCEL_RESERVATION":
        original = await _reservation(partner["id"], body["reservation_id"])
        if original is None:
            return _response("REJECTED", f"no reservation {body['reservation_id']}")
        record.station_id, record.evse_id = original["station_id"], original["evse_id"]
        record.ocpp_reservation_id = original["ocpp_reservation_id"]
    else:
        # A Location (or an EVSE's station) outside an organization's partner's tree is unknown to
        # it: 2003, as for a Location that does not exist (status_codes: "Command: START_SESSION
        # with unknown location").
        scope = await partner_scope(partner)
        location_id = body["location_id"]
        location = await objects.location_of_station_site(location_id)
        if location is None or not scope.sees(location["organization"]):
            raise OcpiError(UNKNOWN_LOCATION, f"unknown location {location_id!r}")
        uid = body.get("evse_uid")
        if uid:
            found = await objects.station_of_evse(location_id, uid)
            if found is None or not await station_visible(scope, found[0]):
                raise OcpiError(UNKNOWN_LOCATION, f"location {location_id!r} has no EVSE {uid!r}")
        elif command == "START_SESSION":
            found = await _free_evse(location_id, scope)
            if found is None:
                return _response("REJECTED", "no available EVSE at this location")
        else:
            found = await _any_evse(location_id, scope)
            if found is None:
                return _response("REJECTED", "no EVSE at this location")
        record.station_id, record.evse_id = found
    if get_core().commands.version_of(record.station_id) is None:
        return _response("REJECTED", "the charge point is offline")
    return _response("ACCEPTED")


async def _free_evse(location_id: str, scope: Scope) -> tuple[str, int] | None:
    return await _first_evse(location_id, scope, lambda status: status == "AVAILABLE")


async def _any_evse(location_id: str, scope: Scope) -> tuple[str, int] | None:
    return await _first_evse(location_id, scope, lambda status: status != "REMOVED")


async def _first_evse(location_id: str, scope: Scope, wanted: Any) -> tuple[str, int] | None:
    """(station, evse) of the first EVSE at the Location whose status is ``wanted``, at a station
    of ``scope`` (the partner's organization tree)."""
    location = next((loc for loc in await sync.location_list() if loc["id"] == location_id), None)
    for evse in (location or {}).get("evses", []):
        if wanted(evse["status"]):
            found = await objects.station_of_evse(location_id, evse["uid"])
            if found is not None and await station_visible(scope, found[0]):
                return found
    return None


async def _reservation(partner_id: int, reservation_id: str) -> dict[str, Any] | None:
    return await CommandRecord.select().where(
        (CommandRecord.direction == "in") & (CommandRecord.partner == partner_id)
        & (CommandRecord.command == "RESERVE_NOW") & (CommandRecord.reservation_id == reservation_id)
        & CommandRecord.ocpp_reservation_id.is_not_null()).order_by(CommandRecord.id, ascending=False).first()


async def _execute(record_id: int) -> None:
    """Send the accepted command to the station and POST the CommandResult to the response_url."""
    record = await CommandRecord.select().where(CommandRecord.id == record_id).output(load_json=True).first()
    body, station_id, evse_id = record["request"], record["station_id"], record["evse_id"]
    ops = get_core().operations
    by = f"ocpi:partner:{record['partner']}"
    result, message = "FAILED", ""
    try:
        if record["command"] == "START_SESSION":
            status = await _evse_state(station_id, evse_id)
            if status in ("CHARGING", "BLOCKED", "RESERVED"):
                result = "EVSE_OCCUPIED"
            elif status in ("OUTOFORDER", "INOPERATIVE"):
                result = "EVSE_INOPERATIVE"
            else:
                token = body["token"]
                answer = await ops.remote_start(station_id, id_token=token["uid"], evse_id=evse_id,
                                                token_type=objects.TOKEN_TYPE_TO_OCPP.get(token["type"], "Central"),
                                                by=by)
                result = RESULT_OF_STATUS.get(answer["status"], "REJECTED")
        elif record["command"] == "STOP_SESSION":
            answer = await ops.remote_stop(station_id, session_id=int(body["session_id"]), by=by)
            result = RESULT_OF_STATUS.get(answer["status"], "REJECTED")
        elif record["command"] == "RESERVE_NOW":
            previous = await _reservation(record["partner"], body["reservation_id"])
            if previous is not None:
                await ops.cancel_reservation(previous["station_id"], reservation_id=previous["ocpp_reservation_id"],
                                             by=by)
            answer = await ops.reserve(station_id, id_token=body["token"]["uid"],
                                       expires_at=parse_datetime(body["expiry_date"]), evse_id=evse_id, by=by)
            result = RESULT_OF_STATUS.get(answer["status"], "REJECTED")
            if result == "ACCEPTED":
                await CommandRecord.update({CommandRecord.ocpp_reservation_id: answer["reservation_id"]}).where(
                    CommandRecord.id == record_id)
        elif record["command"] == "CANCEL_RESERVATION":
            answer = await ops.cancel_reservation(station_id, reservation_id=record["ocpp_reservation_id"], by=by)
            result = "ACCEPTED" if answer["status"] == "Accepted" else "UNKNOWN_RESERVATION"
        elif record["command"] == "UNLOCK_CONNECTOR":
            answer = await ops.unlock(station_id, evse_id=evse_id, connector_id=int(body["connector_id"])
                                      if body["connector_id"].isdigit() else 1, by=by)
            result = RESULT_OF_STATUS.get(answer["status"], "FAILED")
    except CommandTimeout:
        result, message = "TIMEOUT", "the charge point did not answer in time"
    except (StationOffline, UnknownStation):
        result, message = "FAILED", "the charge point is offline"
    except OperationError as exc:
        result, message = "REJECTED", str(exc)
    except Exception as exc:  # a CALLERROR of the station, or anything else: report, never hang
        result, message = "FAILED", str(exc)[:200]
    payload: dict[str, Any] = {"result": result}
    if message:
        payload["message"] = [{"language": "en", "text": message[:512]}]
    await CommandRecord.update({CommandRecord.result: payload, CommandRecord.status: "done",
                                CommandRecord.result_at: utcnow()}).where(CommandRecord.id == record_id)
    # the CommandResult goes back to the party that sent the command (a party behind a hub)
    to = (record["from_country_code"], record["from_party_id"]) if record["from_country_code"] \
        else _token_party(body.get("token"))
    await sync.enqueue(record["partner"], "POST", f"command:{record['uid']}", url=body["response_url"], body=payload,
                       to=to)


async def _evse_state(station_id: str, evse_id: int | None) -> str:
    location_id = await objects.location_of_station(station_id)
    if location_id is None or evse_id is None:
        return "UNKNOWN"
    location = next((loc for loc in await sync.location_list() if loc["id"] == location_id), None)
    uid = await objects.evse_uid_at(location_id, station_id, evse_id)
    return next((e["status"] for e in (location or {}).get("evses", []) if e["uid"] == uid), "UNKNOWN")


ROUTES = [locations_list, location_object, tariffs_list, sessions_list, charging_preferences, cdrs_list, token_get,
          token_put, token_patch, command_receive]
