"""OCPI 2.1.1: the version adapter. One domain model (our 2.2.1 objects); a 2.1.1 partner gets
them mapped down and its objects are mapped up, at the edge (``adapt_inbound`` for requests it
makes to ``/ocpi/{cpo|emsp}/2.1.1/...``, ``down``/``up`` for calls we make to it).

What differs (the 2.1.1 text, release-2.1.1-bugfixes): credentials carry ``token``, ``url``,
``business_details``, ``party_id`` and ``country_code`` (no ``roles``: a 2.1.1 party has one role,
which the endpoints do not name either, see :func:`partner_role`); Endpoints have no ``role``;
the ``Authorization: Token`` header carries the token unencoded; no routing headers, no hub.
Objects carry no ``country_code``/``party_id`` (they come from the URL); Location ``type`` is
required, no ``publish``; Connector ``voltage``/``amperage``/``tariff_id``; Session
``start_datetime``/``end_datetime``/``auth_id``/embedded ``location``, ``total_cost`` a number;
CDR ``stop_date_time``/``auth_id``/embedded ``location``, ``total_cost`` a number; Tariff without
``type``/``min_price``/``max_price``/validity, PriceComponent without ``vat``; Token ``auth_id``,
types RFID and OTHER only; commands without CANCEL_RESERVATION, START_SESSION without
``connector_id``, ReserveNow ``reservation_id`` an int, CommandResponse only ``result`` (the
same object is POSTed to ``response_url`` as the result).
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from plugins.roaming_ocpi.config import ocpi_settings

V211 = "2.1.1"
V221 = "2.2.1"
SUPPORTED = (V221, V211)  # newest first: the one chosen when both sides offer several
MODULES = ("locations", "sessions", "cdrs", "tariffs", "tokens", "commands")

# what each side of a 2.1.1 partnership offers, in interface roles (2.2.1 terms) for endpoint_url
_CPO_INTERFACES = {"locations": "SENDER", "sessions": "SENDER", "cdrs": "SENDER", "tariffs": "SENDER",
                   "tokens": "RECEIVER", "commands": "RECEIVER"}
_EMSP_INTERFACES = {m: ("RECEIVER" if r == "SENDER" else "SENDER") for m, r in _CPO_INTERFACES.items()}

CAPABILITIES = {"CHARGING_PROFILE_CAPABLE", "CREDIT_CARD_PAYABLE", "REMOTE_START_STOP_CAPABLE", "RESERVABLE",
                "RFID_READER", "UNLOCK_CAPABLE"}
FACILITIES = {"AIRPORT", "BUS_STOP", "CAFE", "CARPOOL_PARKING", "FUEL_STATION", "HOTEL", "MALL", "MUSEUM", "NATURE",
              "RECREATION_AREA", "RESTAURANT", "SPORT", "SUPERMARKET", "TAXI_STAND", "TRAIN_STATION", "WIFI"}
STANDARDS = {"CHADEMO", "DOMESTIC_A", "DOMESTIC_B", "DOMESTIC_C", "DOMESTIC_D", "DOMESTIC_E", "DOMESTIC_F",
             "DOMESTIC_G", "DOMESTIC_H", "DOMESTIC_I", "DOMESTIC_J", "DOMESTIC_K", "DOMESTIC_L",
             "IEC_60309_2_single_16", "IEC_60309_2_three_16", "IEC_60309_2_three_32", "IEC_60309_2_three_64",
             "IEC_62196_T1", "IEC_62196_T1_COMBO", "IEC_62196_T2", "IEC_62196_T2_COMBO", "IEC_62196_T3A",
             "IEC_62196_T3C", "TESLA_R", "TESLA_S"}
DIMENSIONS = {"ENERGY", "FLAT", "MAX_CURRENT", "MIN_CURRENT", "PARKING_TIME", "TIME"}
PARKING_TO_TYPE = {"ON_STREET": "ON_STREET", "PARKING_GARAGE": "PARKING_GARAGE",
                   "UNDERGROUND_GARAGE": "UNDERGROUND_GARAGE", "PARKING_LOT": "PARKING_LOT"}
COMMAND_RESULTS = {"ACCEPTED", "NOT_SUPPORTED", "REJECTED", "TIMEOUT", "UNKNOWN_SESSION"}
COMMANDS = ("RESERVE_NOW", "START_SESSION", "STOP_SESSION", "UNLOCK_CONNECTOR")


# -- versions and roles ------------------------------------------------------------------------------


def offered() -> list[str]:
    """The versions we offer (setting ``versions``), newest first."""
    wanted = {v.strip() for v in ocpi_settings().versions.split(",") if v.strip()}
    return [v for v in SUPPORTED if v in wanted] or [V221]


def choose(listed: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest version both sides offer from a partner's versions list."""
    theirs = {v.get("version"): v for v in listed}
    return next((theirs[v] for v in offered() if v in theirs), None)


def is_211(partner: dict[str, Any] | None) -> bool:
    return bool(partner) and (partner or {}).get("version") == V211


def partner_role(partner: dict[str, Any] | None = None) -> str:
    """The role of a 2.1.1 partner (its credentials name none): the one chosen for it when it was
    invited or registered (``role_211``); else the other of ours when we take one, when we take
    both the setting ``v211_partner_role``."""
    chosen = ((partner or {}).get("role_211") or "").upper()
    if chosen in ("CPO", "EMSP"):
        return chosen
    roles = ocpi_settings().role_set
    if roles == {"CPO"}:
        return "EMSP"
    if roles == {"EMSP"}:
        return "CPO"
    return ocpi_settings().v211_partner_role.upper()


def our_role(partner: dict[str, Any] | None = None) -> str:
    return "CPO" if partner_role(partner) == "EMSP" else "EMSP"


def our_endpoints(base: str, partner: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """Our 2.1.1 endpoints: credentials and the modules of our one role towards ``partner`` (no
    interface roles: 2.1.1 Endpoints have none)."""
    side = "cpo" if our_role(partner) == "CPO" else "emsp"
    return [{"identifier": "credentials", "url": f"{base}/ocpi/{V211}/credentials"}] + [
        {"identifier": m, "url": f"{base}/ocpi/{side}/{V211}/{m}"} for m in MODULES]


def endpoints_up(endpoints: list[dict[str, Any]], partner: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """A 2.1.1 partner's endpoints with the interface role each has in its role."""
    interfaces = _CPO_INTERFACES if partner_role(partner) == "CPO" else _EMSP_INTERFACES
    return [{**e, "role": interfaces.get(e.get("identifier", ""), "SENDER")} for e in endpoints]


def credentials_down(creds: dict[str, Any], partner: dict[str, Any] | None = None) -> dict[str, Any]:
    """Our 2.2.1 credentials as 2.1.1: the first role's party and business details."""
    s = ocpi_settings()
    first = next((r for r in creds.get("roles") or [] if r.get("role") == our_role(partner)), None) or \
        (creds.get("roles") or [{}])[0]
    return {"url": creds["url"], "token": creds["token"],
            "party_id": first.get("party_id", s.party_id), "country_code": first.get("country_code", s.country_code),
            "business_details": first.get("business_details") or {"name": s.business_name[:100]}}


def credentials_up(creds: Any, partner: dict[str, Any] | None = None) -> Any:
    """A 2.1.1 Credentials object as 2.2.1 (one role, :func:`partner_role`); anything else unchanged
    (the 2.2.1 check then names what is wrong)."""
    if not isinstance(creds, dict) or "roles" in creds:
        return creds
    up = {k: creds[k] for k in ("token", "url") if k in creds}
    up["roles"] = [{"role": partner_role(partner), "party_id": creds.get("party_id"),
                    "country_code": creds.get("country_code"), "business_details": creds.get("business_details")}]
    return up


# -- objects down (ours, 2.2.1 -> 2.1.1) ---------------------------------------------------------------


def _drop(obj: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in keys}


def connector_down(c: dict[str, Any]) -> dict[str, Any]:
    out = _drop(c, "max_voltage", "max_amperage", "max_electric_power", "tariff_ids")
    if "max_voltage" in c:
        out["voltage"] = c["max_voltage"]
    if "max_amperage" in c:
        out["amperage"] = c["max_amperage"]
    if c.get("tariff_ids"):
        out["tariff_id"] = c["tariff_ids"][0]
    if out.get("power_type") in ("AC_2_PHASE", "AC_2_PHASE_SPLIT"):
        out["power_type"] = "AC_1_PHASE"
    if "standard" in out and out["standard"] not in STANDARDS:
        out["standard"] = "IEC_62196_T2"  # 2.1.1 knows none of 2.2.1's newer standards
    return out


def evse_down(e: dict[str, Any]) -> dict[str, Any]:
    out = dict(e)
    if "capabilities" in e:
        out["capabilities"] = [c for c in e["capabilities"] if c in CAPABILITIES]
    if "connectors" in e:
        out["connectors"] = [connector_down(c) for c in e["connectors"]]
    return out


def location_down(loc: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    out = _drop(loc, "country_code", "party_id", "publish", "publish_allowed_to", "parking_type", "state")
    if not partial or "parking_type" in loc:
        out["type"] = PARKING_TO_TYPE.get(loc.get("parking_type", ""), "UNKNOWN")
    if "evses" in loc:
        out["evses"] = [evse_down(e) for e in loc["evses"]]
    if "facilities" in loc:
        out["facilities"] = [f for f in loc["facilities"] if f in FACILITIES]
    return out


def token_down(t: dict[str, Any]) -> dict[str, Any]:
    out = _drop(t, "country_code", "party_id", "contract_id", "group_id", "default_profile_type", "energy_contract")
    if "contract_id" in t:
        out["auth_id"] = t["contract_id"]
    if "type" in t and t["type"] not in ("RFID", "OTHER"):
        out["type"] = "OTHER"
    return out


def _price(value: Any) -> Any:
    return value.get("excl_vat") if isinstance(value, dict) else value


def _periods_down(periods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"start_date_time": p["start_date_time"],
             "dimensions": [d for d in p.get("dimensions", []) if d.get("type") in DIMENSIONS]
             or [{"type": "TIME", "volume": 0}]} for p in periods]


def _used_location(location: dict[str, Any] | None, fallback: dict[str, Any], evse_uid: str,
                   connector_id: str) -> dict[str, Any]:
    """The 2.1.1 Location of a Session or CDR: ours with only the EVSE and connector used."""
    if location is None:  # no longer published: what the CDR location or the Session says
        location = {"id": fallback.get("id", ""), "address": fallback.get("address", ""),
                    "city": fallback.get("city", ""), "postal_code": fallback.get("postal_code", ""),
                    "country": fallback.get("country", ""), "coordinates": fallback.get("coordinates"),
                    "last_updated": fallback.get("last_updated"), "evses": []}
    loc = location_down(location)
    evses = [e for e in loc.get("evses", []) if e.get("uid") == evse_uid]
    for e in evses:
        e["connectors"] = [c for c in e.get("connectors", []) if c.get("id") == connector_id] or e["connectors"]
    loc["evses"] = evses
    loc.setdefault("postal_code", "")
    return loc


def session_down(s: dict[str, Any], location: dict[str, Any] | None, *, partial: bool = False) -> dict[str, Any]:
    out = _drop(s, "country_code", "party_id", "start_date_time", "end_date_time", "cdr_token",
                "authorization_reference", "location_id", "evse_uid", "connector_id")
    if "start_date_time" in s:
        out["start_datetime"] = s["start_date_time"]
    if "end_date_time" in s:
        out["end_datetime"] = s["end_date_time"]
    if "cdr_token" in s:
        out["auth_id"] = s["cdr_token"].get("contract_id") or s["cdr_token"].get("uid")
    if "auth_method" in s:
        out["auth_method"] = "WHITELIST" if s["auth_method"] == "WHITELIST" else "AUTH_REQUEST"
    if "total_cost" in s:
        out["total_cost"] = _price(s["total_cost"])
    if "charging_periods" in s:
        out["charging_periods"] = _periods_down(s["charging_periods"])
    if out.get("status") == "RESERVATION":
        out["status"] = "PENDING"
    if not partial and "location_id" in s:
        out["location"] = _used_location(location, {"id": s["location_id"]}, s.get("evse_uid", ""),
                                         s.get("connector_id", ""))
    return out


def cdr_down(c: dict[str, Any], location: dict[str, Any] | None) -> dict[str, Any]:
    out = _drop(c, "country_code", "party_id", "end_date_time", "session_id", "cdr_token", "authorization_reference",
                "cdr_location", "signed_data", "total_fixed_cost", "total_energy_cost", "total_time_cost",
                "total_parking_cost", "total_reservation_cost", "invoice_reference_id", "credit",
                "credit_reference_id", "home_charging_compensation")
    out["stop_date_time"] = c["end_date_time"]
    out["auth_id"] = c["cdr_token"].get("contract_id") or c["cdr_token"].get("uid")
    out["auth_method"] = "WHITELIST" if c.get("auth_method") == "WHITELIST" else "AUTH_REQUEST"
    out["total_cost"] = _price(c.get("total_cost"))
    out["charging_periods"] = _periods_down(c.get("charging_periods", []))
    if "tariffs" in c:
        out["tariffs"] = [tariff_down(t) for t in c["tariffs"]]
    where = c["cdr_location"]
    out["location"] = _used_location(location, {**where, "last_updated": c.get("last_updated")},
                                     where.get("evse_uid", ""), where.get("connector_id", ""))
    return out


def tariff_down(t: dict[str, Any]) -> dict[str, Any]:
    out = _drop(t, "country_code", "party_id", "type", "min_price", "max_price", "start_date_time", "end_date_time")
    if "elements" in t:
        out["elements"] = [{**({"restrictions": _drop(e["restrictions"], "min_current", "max_current", "reservation")}
                               if e.get("restrictions") else {}),
                            "price_components": [_drop(p, "vat") for p in e.get("price_components", [])]}
                           for e in t["elements"]]
    return out


def command_down(command: str, body: dict[str, Any]) -> dict[str, Any]:
    out = _drop(body, "authorization_reference", "connector_id") if command == "START_SESSION" else \
        _drop(body, "authorization_reference")
    if "token" in body:
        out["token"] = token_down(body["token"])
    if command == "RESERVE_NOW" and "reservation_id" in body:
        rid = str(body["reservation_id"])
        out["reservation_id"] = int(rid) if rid.isdigit() else int(rid[:8], 16) if _hex(rid[:8]) else 0
    return out


def _hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


def command_response_down(resp: dict[str, Any]) -> dict[str, Any]:
    result = resp.get("result", "REJECTED")
    return {"result": result if result in COMMAND_RESULTS else "REJECTED"}


# -- objects up (a 2.1.1 partner's -> 2.2.1) ------------------------------------------------------------


def connector_up(c: dict[str, Any]) -> dict[str, Any]:
    out = _drop(c, "voltage", "amperage", "tariff_id")
    if "voltage" in c:
        out["max_voltage"] = c["voltage"]
    if "amperage" in c:
        out["max_amperage"] = c["amperage"]
    if c.get("tariff_id"):
        out["tariff_ids"] = [c["tariff_id"]]
    return out


def evse_up(e: dict[str, Any]) -> dict[str, Any]:
    out = dict(e)
    if isinstance(e.get("connectors"), list):
        out["connectors"] = [connector_up(c) if isinstance(c, dict) else c for c in e["connectors"]]
    return out


def location_up(loc: dict[str, Any], cc: str, pid: str, *, partial: bool = False) -> dict[str, Any]:
    out = _drop(loc, "type")
    if loc.get("type") in PARKING_TO_TYPE:
        out["parking_type"] = loc["type"]
    if not partial:
        out.update({"country_code": cc, "party_id": pid, "publish": True})
        out.setdefault("time_zone", "UTC")  # optional in 2.1.1, required in 2.2.1
    if isinstance(loc.get("evses"), list):
        out["evses"] = [evse_up(e) if isinstance(e, dict) else e for e in loc["evses"]]
    return out


def token_up(t: dict[str, Any], cc: str, pid: str, *, partial: bool = False) -> dict[str, Any]:
    out = _drop(t, "auth_id")
    if "auth_id" in t:
        out["contract_id"] = t["auth_id"]
    if not partial:
        out.update({"country_code": cc, "party_id": pid})
    return out


def _cdr_token(auth_id: str, cc: str, pid: str) -> dict[str, Any]:
    return {"country_code": cc, "party_id": pid, "uid": auth_id, "type": "OTHER", "contract_id": auth_id}


def _where(location: Any) -> tuple[str, str, dict[str, Any]]:
    loc = location if isinstance(location, dict) else {}
    evse = (loc.get("evses") or [{}])[0] or {}
    connector = (evse.get("connectors") or [{}])[0] or {}
    return evse.get("uid", ""), connector.get("id", ""), {"evse": evse, "connector": connector, "location": loc}


def session_up(s: dict[str, Any], cc: str, pid: str, *, partial: bool = False) -> dict[str, Any]:
    out = _drop(s, "start_datetime", "end_datetime", "auth_id", "location", "total_cost")
    if "start_datetime" in s:
        out["start_date_time"] = s["start_datetime"]
    if "end_datetime" in s:
        out["end_date_time"] = s["end_datetime"]
    if "total_cost" in s:
        out["total_cost"] = {"excl_vat": s["total_cost"]}
    if "auth_id" in s:
        out["cdr_token"] = _cdr_token(str(s["auth_id"]), cc, pid)
    if "location" in s:
        evse_uid, connector_id, where = _where(s["location"])
        out.update({"location_id": where["location"].get("id", ""), "evse_uid": evse_uid,
                    "connector_id": connector_id})
    if not partial:
        out.update({"country_code": cc, "party_id": pid})
    return out


def cdr_up(c: dict[str, Any], cc: str, pid: str) -> dict[str, Any]:
    out = _drop(c, "stop_date_time", "auth_id", "location", "total_cost", "total_parking_time")
    out.update({"country_code": cc, "party_id": pid, "end_date_time": c.get("stop_date_time"),
                "cdr_token": _cdr_token(str(c.get("auth_id", "")), cc, pid),
                "total_cost": {"excl_vat": c.get("total_cost")}})
    if c.get("total_parking_time") is not None:
        out["total_parking_time"] = c["total_parking_time"]
    if isinstance(c.get("tariffs"), list):
        out["tariffs"] = [tariff_up(t, cc, pid) if isinstance(t, dict) else t for t in c["tariffs"]]
    evse_uid, connector_id, where = _where(c.get("location"))
    loc, connector = where["location"], where["connector"]
    out["cdr_location"] = {k: v for k, v in {
        "id": loc.get("id"), "name": loc.get("name"), "address": loc.get("address"), "city": loc.get("city"),
        "postal_code": loc.get("postal_code"), "country": loc.get("country"), "coordinates": loc.get("coordinates"),
        "evse_uid": evse_uid, "evse_id": where["evse"].get("evse_id") or evse_uid, "connector_id": connector_id,
        "connector_standard": connector.get("standard"), "connector_format": connector.get("format"),
        "connector_power_type": connector.get("power_type")}.items() if v is not None}
    return out


def tariff_up(t: dict[str, Any], cc: str, pid: str) -> dict[str, Any]:
    return {**t, "country_code": cc, "party_id": pid}


def command_up(command: str, body: dict[str, Any], cc: str, pid: str) -> dict[str, Any]:
    out = dict(body)
    if isinstance(body.get("token"), dict):
        out["token"] = token_up(body["token"], cc, pid)
    if command == "RESERVE_NOW" and "reservation_id" in body:
        out["reservation_id"] = str(body["reservation_id"])
    return out


def command_response_up(resp: Any) -> Any:
    if not isinstance(resp, dict):
        return resp
    return {"result": resp.get("result"), "timeout": ocpi_settings().command_timeout}


def command_result_up(resp: Any) -> Any:
    """A 2.1.1 CommandResponse POSTed as the result: UNKNOWN_SESSION is REJECTED in 2.2.1 terms."""
    if not isinstance(resp, dict):
        return resp
    result = resp.get("result")
    return {"result": "REJECTED" if result == "UNKNOWN_SESSION" else result}


# -- the edges --------------------------------------------------------------------------------------


LocationLookup = Callable[[str], Awaitable[dict[str, Any] | None]]


async def down(module: str, rel: list[str], method: str, data: Any, locate: LocationLookup) -> Any:
    """Our 2.2.1 ``data`` for ``module`` (``rel``: the path below the module) as 2.1.1."""
    if data is None:
        return None
    if isinstance(data, list):
        return [await down(module, rel, method, item, locate) for item in data]
    if not isinstance(data, dict):
        return data
    partial = method == "PATCH"
    if module == "locations":
        if "standard" in data:
            return connector_down(data)
        if "connectors" in data or ("uid" in data and "address" not in data):
            return evse_down(data)
        return location_down(data, partial=partial)
    if module == "tokens":
        if "allowed" in data:  # AuthorizationInfo
            return {k: v for k, v in data.items() if k in ("allowed", "location", "info")}
        return token_down(data)
    if module == "tariffs":
        return tariff_down(data)
    if module == "sessions":
        return session_down(data, await locate(data["location_id"]) if "location_id" in data else None,
                            partial=partial)
    if module == "cdrs":
        return cdr_down(data, await locate(data["cdr_location"]["id"]))
    if module == "commands":
        if "response_url" in data:
            return command_down(rel[0] if rel else "", data)
        return command_response_down(data)
    return data


def up(module: str, rel: list[str], method: str, data: Any, cc: str, pid: str) -> Any:
    """A 2.1.1 partner's ``data`` for ``module`` as our 2.2.1."""
    if isinstance(data, list):
        return [up(module, rel, method, item, cc, pid) for item in data]
    if not isinstance(data, dict):
        return data
    partial = method == "PATCH"
    if module == "locations":
        if "connectors" in data or "evse_id" in data:
            return evse_up(data)
        if "voltage" in data or "standard" in data or "amperage" in data:
            return connector_up(data)
        return location_up(data, cc, pid, partial=partial)
    if module == "tokens":
        if "allowed" in data:
            return data
        return token_up(data, cc, pid, partial=partial)
    if module == "tariffs":
        return data if partial else tariff_up(data, cc, pid)
    if module == "sessions":
        return session_up(data, cc, pid, partial=partial)
    if module == "cdrs":
        return cdr_up(data, cc, pid)
    if module == "commands":
        if "response_url" in data:
            return command_up(rel[0] if rel else "", data, cc, pid)
        return command_response_up(data)
    return data


def split(path: str) -> tuple[str, str, list[str]] | None:
    """(side, module, the rest) of ``/ocpi/{cpo|emsp}/2.1.1/{module}/...``, else None."""
    parts = path.split("/")
    if len(parts) < 5 or parts[1] != "ocpi" or parts[3] != V211 or parts[2] not in ("cpo", "emsp"):
        return None
    return parts[2], parts[4], parts[5:]


def adapt_inbound(app: Any) -> Any:
    """ASGI middleware for 2.1.1 paths: the request body mapped up, the response's ``data`` down,
    the same handlers as 2.2.1 in between."""

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        where = split(scope.get("path", "")) if scope.get("type") == "http" else None
        if where is None:
            await app(scope, receive, send)
            return
        side, module, rel = where
        method = scope.get("method", "GET")
        partner = await _caller(scope)
        in_url = (side == "cpo" and module == "tokens"
                  or side == "emsp" and module in ("locations", "sessions", "tariffs")) and len(rel) >= 2
        if in_url:
            cc, pid = rel[0].upper(), rel[1].upper()
        else:
            cc, pid = (partner.get("country_code") or "", partner.get("party_id") or "")
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        if raw.strip():
            try:
                loaded = json.loads(raw)
                mapped = command_result_up(loaded) if side == "emsp" and module == "commands" else \
                    up(module, rel, method, loaded, cc, pid)
                if side == "emsp" and isinstance(mapped, dict) and isinstance(mapped.get("cdr_token"), dict):
                    mapped["cdr_token"] = await own_token(partner, mapped["cdr_token"]["contract_id"])
                raw = json.dumps(mapped).encode()
            except ValueError:
                pass  # not JSON: the handler answers 400 as for 2.2.1
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        start: dict[str, Any] = {}
        body = bytearray()

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            out = bytes(body)
            try:
                envelope = json.loads(out)
                if isinstance(envelope, dict) and "data" in envelope:
                    envelope["data"] = await down(module, rel, method, envelope["data"], _locator(scope))
                    out = json.dumps(envelope).encode()
            except ValueError:
                pass
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(out)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": out, "more_body": False})

        await app(scope, replay, capture)

    return middleware


async def _caller(scope: Any) -> dict[str, Any]:
    """The partner making the request (its party names the objects of commands), {} when the
    token is unknown (the handler then answers 401)."""
    from litestar import Request

    from plugins.roaming_ocpi.parties import authenticate
    from plugins.roaming_ocpi.transport import OcpiError

    try:
        return await authenticate(Request(scope))
    except OcpiError:
        return {}


def _locator(scope: Any) -> LocationLookup:
    async def locate(location_id: str) -> dict[str, Any] | None:
        return await our_location(scope.get("ocpi_partner") or {}, location_id)
    return locate


async def own_token(partner: dict[str, Any], auth_id: str) -> dict[str, Any]:
    """The CdrToken of one of our cards named by the ``auth_id`` (its contract id) of a 2.1.1
    Session or CDR: a 2.1.1 CPO sends no uid of its own; an unknown one stays as given."""
    from plugins.roaming_ocpi import sync
    from plugins.roaming_ocpi.tenancy import partner_scope

    s = ocpi_settings()
    found = next((t for t in await sync.token_list(await partner_scope(partner))
                  if auth_id in (t.get("contract_id"), t.get("uid"))), None) if partner else None
    if found is None:
        return {"country_code": s.country_code, "party_id": s.party_id, "uid": auth_id, "type": "OTHER",
                "contract_id": auth_id}
    return {"country_code": found["country_code"], "party_id": found["party_id"], "uid": found["uid"],
            "type": found["type"], "contract_id": found["contract_id"]}


async def our_location(partner: dict[str, Any], location_id: str) -> dict[str, Any] | None:
    from plugins.roaming_ocpi import sync
    from plugins.roaming_ocpi.tenancy import partner_scope

    if not partner:
        return None
    return next((loc for loc in await sync.location_list(await partner_scope(partner))
                 if loc["id"] == location_id), None)


def both(paths: str | list[str]) -> list[str]:
    """A handler's 2.2.1 path(s) and the same under 2.1.1 (one handler, the adapter maps)."""
    listed = [paths] if isinstance(paths, str) else list(paths)
    return listed + [p.replace(f"/{V221}/", f"/{V211}/") for p in listed]
