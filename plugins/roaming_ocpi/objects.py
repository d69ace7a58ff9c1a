"""Our data as OCPI 2.2.1 objects: Locations (sites, stations, EVSEs, connectors), Tariffs (from
the billing plugin, through the ``select_tariff`` hook and its tables when installed), Tokens (our
cards, for the eMSP role), Sessions and CDRs (with cost from the ``price_session`` hook).

Ids: a Location is a site (``Location.id`` = the site id), an EVSE is ``<station>*<evse>`` (or a
digest when that is longer than 36), a connector its OCPP connector id.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from csms.plugin_api import (
    Connector,
    Evse,
    IdToken,
    Organization,
    Site,
    Station,
    call_hook,
    feature_enabled,
    published_site_ids,
    utcnow,
)
from plugins.roaming_ocpi.config import ROAMING, ocpi_settings
from plugins.roaming_ocpi.parties import business_details
from plugins.roaming_ocpi.schema import CONNECTOR_TYPE, POWER_TYPE
from plugins.roaming_ocpi.tables import SiteDetails
from plugins.roaming_ocpi.transport import ocpi_ts

log = logging.getLogger("csms.ocpi.objects")

# OCPP connector/EVSE status (both versions) -> OCPI EVSE Status
STATUS = {
    "Available": "AVAILABLE", "Occupied": "CHARGING", "Charging": "CHARGING", "Preparing": "CHARGING",
    "SuspendedEV": "CHARGING", "SuspendedEVSE": "CHARGING", "Finishing": "CHARGING", "Reserved": "RESERVED",
    "Unavailable": "INOPERATIVE", "Faulted": "OUTOFORDER",
}
# OCPP 2.0.1 IdTokenType (1.6 sends none) -> OCPI TokenType and back
TOKEN_TYPE_TO_OCPI = {"ISO14443": "RFID", "ISO15693": "RFID", "": "RFID", "Central": "APP_USER", "eMAID": "APP_USER",
                      "KeyCode": "OTHER", "Local": "OTHER", "MacAddress": "OTHER"}
TOKEN_TYPE_TO_OCPP = {"RFID": "ISO14443", "APP_USER": "Central", "AD_HOC_USER": "Central", "OTHER": "Central"}


def evse_uid(station_id: str, evse_id: int) -> str:
    uid = f"{station_id}*{evse_id}"
    if len(uid) <= 36 and all(0x21 <= ord(c) <= 0x7E for c in uid):
        return uid
    return "E" + hashlib.sha256(uid.encode()).hexdigest()[:35]


def _uid(text: str) -> str:
    if len(text) <= 36 and all(0x21 <= ord(c) <= 0x7E for c in text):
        return text
    return "E" + hashlib.sha256(text.encode()).hexdigest()[:35]


def _candidate_uids(station_id: str, evse_id: int) -> Any:
    """The uids an EVSE may take, in order: ``<station>*<evse>``, then ``<station>*<evse>~2`` ...
    (a station moved to another Location takes the next one: OCPI 2.2.1 wants an EVSE uid unique
    within the CPO's platform and never reused for another EVSE object)."""
    yield evse_uid(station_id, evse_id)
    n = 2
    while True:
        yield _uid(f"{station_id}*{evse_id}~{n}")
        n += 1


async def used_uids() -> dict[str, str]:
    """Every EVSE uid ever published -> its Location id (the EVSE snapshots, never deleted)."""
    from plugins.roaming_ocpi.tables import Snapshot

    rows = await Snapshot.select(Snapshot.key, Snapshot.parent, Snapshot.removed).where(Snapshot.kind == "evse")
    # a live EVSE's Location wins (a uid published twice before moves were handled stays where it is)
    return {r["key"].split("/", 1)[1]: r["parent"] for r in sorted(rows, key=lambda r: not r["removed"])
            if "/" in r["key"]}


def placed_uid(used: dict[str, str], location_id: str, station_id: str, evse_id: int) -> str:
    """The uid of an EVSE at ``location_id``: the first candidate that is this Location's already
    (a station back where it was takes its old uid again) or nobody's (a new placement). ``used``
    gets the answer, so two EVSEs of one refresh never share a uid."""
    for uid in _candidate_uids(station_id, evse_id):
        owner = used.get(uid)
        if owner is None or owner == location_id:
            used[uid] = location_id
            return uid
    raise AssertionError("unreachable")


async def evse_uid_at(location_id: str | None, station_id: str, evse_id: int) -> str:
    """The uid the EVSE has at its (published) Location, as :func:`current_locations` gives it."""
    if location_id is None:
        return evse_uid(station_id, evse_id)
    return placed_uid(await used_uids(), location_id, station_id, evse_id)


def emi3_evse_id(station_id: str, evse_id: int) -> str:
    s = ocpi_settings()
    outlet = re.sub(r"[^A-Za-z0-9]", "", station_id).upper()[:30] or "X"
    return f"{s.country_code}*{s.party_id}*E{outlet}*{evse_id}"[:48]


def coordinate(value: float) -> str:
    return f"{value:.6f}"


def money(value: Decimal | float | int) -> float:
    """An OCPI number: 4 decimals, half up (types.asciidoc)."""
    return float(Decimal(str(value)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def price(excl: Any, incl: Any) -> dict[str, float]:
    return {"excl_vat": money(excl), "incl_vat": money(incl)}


# -- locations ------------------------------------------------------------------------------------------


def _complete(site: dict[str, Any]) -> bool:
    """What OCPI needs of a Location that the core does not: coordinates and a full address."""
    return bool(site["latitude"] is not None and site["longitude"] is not None
                and site["address"] and site["city"] and len(site["country"] or "") == 3)


async def roamed_site_ids(sites: list[dict[str, Any]]) -> set[int]:
    """The ids of ``sites`` (rows with ``id`` and ``organization``) that partners get: published by
    the core and of an organization whose plan includes roaming."""
    published = await published_site_ids([site["id"] for site in sites])
    allowed: dict[int | None, bool] = {}
    out = set()
    for site in sites:
        organization = site["organization"]
        if site["id"] in published:
            if organization not in allowed:
                allowed[organization] = await feature_enabled(organization, ROAMING)
            if allowed[organization]:
                out.add(site["id"])
    return out


async def _publishable(site: dict[str, Any] | None) -> bool:
    """Published by the core (the site's and its organization's switches), of an organization
    whose plan includes roaming, and complete for OCPI."""
    return site is not None and _complete(site) and site["id"] in await roamed_site_ids([site])


async def _tariff_ids(station_id: str, evse_id: int) -> list[str]:
    """The tariff a public (unknown) driver would get here, through the ``select_tariff`` hook."""
    choice = await call_hook("select_tariff", session={
        "id": None, "station_id": station_id, "evse_id": evse_id, "started_at": utcnow(), "id_token": "",
        "driver": None, "state": "active"})
    code = getattr(choice, "code", None) or getattr(choice, "id", None)
    return [str(code)[:36]] if code else []


def _connector(c: dict[str, Any], station: dict[str, Any], voltage: float, tariffs: list[str]) -> dict[str, Any]:
    power_type = c["power_type"] if c["power_type"] in POWER_TYPE[1] else "AC_3_PHASE"
    dc = power_type == "DC"
    volts = 400 if dc else int(round(voltage or 230))
    phases = {"AC_3_PHASE": 3, "AC_2_PHASE": 2, "AC_2_PHASE_SPLIT": 2}.get(power_type, 1)
    if c["max_power_w"]:
        amps = int(round(c["max_power_w"] / (volts * (1 if dc else phases))))
        watts = int(round(c["max_power_w"]))
    else:
        amps = int(round(station["max_current_a"] or (125 if dc else 32)))
        watts = volts * amps * (1 if dc else phases)
    out = {
        "id": str(c["connector_id"]),
        "standard": c["standard"] if c["standard"] in CONNECTOR_TYPE[1] else "IEC_62196_T2",
        "format": "CABLE" if dc else "SOCKET",
        "power_type": power_type,
        "max_voltage": volts,
        "max_amperage": max(amps, 1),
        "max_electric_power": watts,
    }
    if tariffs:
        out["tariff_ids"] = tariffs
    return out


# the status of an EVSE is that of its busiest connector (as the core aggregates it)
_EVSE_PRECEDENCE = ("Faulted", "Occupied", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Preparing",
                    "Reserved", "Unavailable", "Available")


def _evse_status(statuses: list[str]) -> str:
    for word in _EVSE_PRECEDENCE:
        if word in statuses:
            return word
    return statuses[0] if statuses else "Unknown"


async def current_locations(site_ids: list[int] | None = None,
                            overrides: dict[tuple[str, int, int], str] | None = None) -> dict[str, dict[str, Any]]:
    """Our publishable Locations by id, without ``last_updated`` fields (the sync adds them).

    EVSEs hold their connectors; nothing here is stored. ``site_ids`` limits the sites read;
    ``overrides`` gives connector statuses as an event reported them ((station, evse, connector)
    -> OCPP status), so each status change is published as it was, not as it is by now."""
    overrides = overrides or {}
    s = ocpi_settings()
    query = Site.select().order_by(Site.id)
    if site_ids is not None:
        query = query.where(Site.id.is_in(site_ids or [-1]))
    candidates = [site for site in await query if _complete(site)]
    published = await roamed_site_ids(candidates)
    sites = [site for site in candidates if site["id"] in published]
    if not sites:
        return {}
    ids = [site["id"] for site in sites]
    stations = await Station.select().where(Station.site.is_in(ids)).order_by(Station.station_id)
    pks = [st["id"] for st in stations] or [-1]
    evses = await Evse.select().where(Evse.station.is_in(pks)).order_by(Evse.evse_id)
    connectors = await Connector.select().where(Connector.station.is_in(pks)).order_by(Connector.connector_id)
    details = {d["site_id"]: d for d in await SiteDetails.select().where(SiteDetails.site_id.is_in(ids)).output(
        load_json=True)}
    org_ids = sorted({site["organization"] for site in sites if site["organization"] is not None}) or [-1]
    organizations = {o["id"]: o["name"] for o in await Organization.select(Organization.id, Organization.name).where(
        Organization.id.is_in(org_ids))}
    locations: dict[str, dict[str, Any]] = {}
    used = await used_uids()
    for site in sites:
        loc_id = str(site["id"])
        location = {
            "country_code": s.country_code, "party_id": s.party_id, "id": loc_id, "publish": True,
            "name": site["name"][:255], "address": site["address"][:255], "city": site["city"][:45],
            "country": site["country"].upper(),
            "coordinates": {"latitude": coordinate(site["latitude"]), "longitude": coordinate(site["longitude"])},
            "evses": [], "operator": business_details(), "owner": owner_details(organizations.get(site["organization"])),
            "time_zone": site["timezone"] or "UTC",
        }
        if site["postal_code"]:
            location["postal_code"] = site["postal_code"][:10]
        location.update(site_details(details.get(site["id"])))
        for st in (st for st in stations if st["site"] == site["id"]):
            for ev in (e for e in evses if e["station"] == st["id"] and e["evse_id"] > 0):
                conns = [c for c in connectors if c["station"] == st["id"] and c["evse_id"] == ev["evse_id"]]
                if not conns:
                    continue
                tariffs = await _tariff_ids(st["station_id"], ev["evse_id"])
                ocpp_status = _evse_status([overrides.get((st["station_id"], c["evse_id"], c["connector_id"]),
                                                          c["status"]) for c in conns])
                status = STATUS.get(ocpp_status, "UNKNOWN") if st["connected"] else "UNKNOWN"
                capabilities = ["CHARGING_PROFILE_CAPABLE", "REMOTE_START_STOP_CAPABLE", "RESERVABLE",
                                "RFID_READER", "UNLOCK_CAPABLE"]
                if len(conns) > 1 and st["ocpp_version"] == "1.6":
                    capabilities.append("START_SESSION_CONNECTOR_REQUIRED")
                location["evses"].append({
                    "uid": placed_uid(used, loc_id, st["station_id"], ev["evse_id"]),
                    "evse_id": emi3_evse_id(st["station_id"], ev["evse_id"]),
                    "status": status,
                    "capabilities": sorted(capabilities),
                    "connectors": [_connector(c, st, site["voltage_v"], tariffs) for c in conns],
                    "physical_reference": str(ev["evse_id"])[:16],
                })
        locations[loc_id] = location
    return locations


def owner_details(organization_name: str | None) -> dict[str, Any]:
    """Location.owner: the organization owning the site (its name: the core keeps no website or
    logo of an organization), else our own BusinessDetails (the installation's operator)."""
    if organization_name and organization_name.strip():
        return {"name": organization_name.strip()[:100]}
    return business_details("OWNER")


def site_details(row: dict[str, Any] | None) -> dict[str, Any]:
    """The Location fields a site's details give: opening times (24/7 unless the operator set
    hours), facilities and whether charging goes on when closed."""
    out: dict[str, Any] = {"opening_times": (row or {}).get("opening_times") or {"twentyfourseven": True}}
    if row is not None and row["facilities"]:
        out["facilities"] = list(row["facilities"])
    if row is not None and row["charging_when_closed"] is not None:
        out["charging_when_closed"] = row["charging_when_closed"]
    return out


async def station_of_evse(location_id: str, uid: str) -> tuple[str, int] | None:
    """(station ident, evse id) of an EVSE uid at one of our published locations."""
    try:
        site_id = int(location_id)
    except ValueError:
        return None
    site = await Site.select().where(Site.id == site_id).first()
    if not await _publishable(site):
        return None
    used = await used_uids()
    for st in await Station.select(Station.id, Station.station_id).where(Station.site == site_id):
        for ev in await Evse.select(Evse.evse_id).where(Evse.station == st["id"]):
            if placed_uid(dict(used), location_id, st["station_id"], ev["evse_id"]) == uid:
                return st["station_id"], ev["evse_id"]
    return None


async def location_of_station(station_id: str) -> str | None:
    """The published Location (site id) of a station, if any."""
    row = await Station.select(Station.site).where(Station.station_id == station_id).first()
    if row is None or row["site"] is None:
        return None
    site = await Site.select().where(Site.id == row["site"]).first()
    return str(site["id"]) if site is not None and await _publishable(site) else None


# -- tariffs --------------------------------------------------------------------------------------------


async def current_tariffs() -> dict[str, tuple[dict[str, Any], int | None]]:
    """Our tariffs as OCPI objects (id = the tariff code) with the organization each belongs to
    (None: the installation's), from every plugin answering the ``published_tariffs`` hook (the
    billing plugin, when installed)."""
    s = ocpi_settings()
    out: dict[str, tuple[dict[str, Any], int | None]] = {}
    for answer in await call_hook("published_tariffs"):
        for tariff in answer.value or ():
            tariff = dict(tariff)
            organization = tariff.pop("organization", None)
            tariff.update(country_code=s.country_code, party_id=s.party_id, id=str(tariff["id"])[:36])
            tariff.pop("last_updated", None)
            out[tariff["id"]] = tariff, organization if isinstance(organization, int) else None
    return out


def tariff_object(choice: Any, last_updated: datetime) -> dict[str, Any] | None:
    """The OCPI form of a tariff the ``select_tariff`` hook chose (duck-typed: ``.tariff.to_ocpi()``)."""
    tariff = getattr(choice, "tariff", choice)
    to_ocpi = getattr(tariff, "to_ocpi", None)
    if to_ocpi is None:
        return None
    s = ocpi_settings()
    data = to_ocpi()
    data.update(country_code=s.country_code, party_id=s.party_id, last_updated=ocpi_ts(last_updated))
    code = getattr(choice, "code", None)
    if code:
        data["id"] = str(code)[:36]
    return data


# -- tokens (eMSP role) --------------------------------------------------------------------------------


def contract_id(uid: str) -> str:
    s = ocpi_settings()
    return f"{s.country_code}-{s.party_id}-C{re.sub(r'[^A-Za-z0-9]', '', uid).upper()[:28]}"[:36]


def token_object(row: dict[str, Any]) -> dict[str, Any]:
    """One of our id tokens as an OCPI Token (without ``last_updated``)."""
    s = ocpi_settings()
    valid = row["status"] == "Accepted" and (row["expires_at"] is None or row["expires_at"] > utcnow())
    token = {
        "country_code": s.country_code, "party_id": s.party_id, "uid": row["id_token"][:36],
        "type": TOKEN_TYPE_TO_OCPI.get(row["type"], "OTHER"), "contract_id": contract_id(row["id_token"]),
        "issuer": s.business_name[:64], "valid": valid, "whitelist": s.token_whitelist,
    }
    if row["label"]:
        token["visual_number"] = row["label"][:64]
    if row["group_id"]:
        token["group_id"] = row["group_id"][:36]
    return token


async def current_tokens() -> dict[str, tuple[dict[str, Any], int | None]]:
    """Our cards as OCPI Tokens by ``type:uid``, with the organization each card belongs to."""
    rows = await IdToken.select().where(IdToken.type != "NoAuthorization").order_by(IdToken.id)
    out: dict[str, tuple[dict[str, Any], int | None]] = {}
    for row in rows:
        if 0 < len(row["id_token"]) <= 36:
            token = token_object(row)
            out[f"{token['type']}:{token['uid']}"] = token, row["organization"]
    return out


async def site_organizations(site_ids: list[int]) -> dict[str, int | None]:
    """The organization of each site (by Location id)."""
    rows = await Site.select(Site.id, Site.organization).where(Site.id.is_in(site_ids or [-1]))
    return {str(r["id"]): r["organization"] for r in rows}


async def location_of_station_site(location_id: str) -> dict[str, Any] | None:
    """The site behind one of our published Location ids."""
    try:
        site_id = int(location_id)
    except ValueError:
        return None
    site = await Site.select().where(Site.id == site_id).first()
    return site if site is not None and await _publishable(site) else None


# -- signed meter values (CDR.signed_data) -------------------------------------------------------------

NATURE = {"Transaction.Begin": "Start", "Transaction.End": "End"}
ENERGY = "Energy.Active.Import.Register"


def _encoding(signed: str) -> str | None:
    """The encoding a signed value's own form names: OCMF (``OCMF|payload|signature``) and Alfen
    Eichrecht (``AP;...``), the names of the OCPI 2.2.1 table of known implementations."""
    if signed.startswith("OCMF|"):
        return "OCMF"
    if signed.startswith("AP;"):
        return "Alfen Eichrecht"
    return None


def _plain(signed: str, encoding: str, plain: Any) -> str:
    """The un-encoded data of a signed value: OCMF's payload section; else the station's plain
    reading (2.0.1 ``value``), else the signed value itself."""
    if encoding == "OCMF":
        body = signed[len("OCMF|"):]
        cut = body.rfind("|{")
        return body[:cut] if cut > 0 else body
    return str(plain) if plain is not None and plain != "" else signed


def signed_data(values: list[dict[str, Any]]) -> dict[str, Any] | None:
    """OCPI ``SignedData`` from the signed meter values a station sent during a session (oldest
    first), or None when there are none. Each value is a 1.6 SampledValue of format
    ``SignedData`` (the signed blob in ``value``) or a 2.0.1 SampledValue with its
    ``signedMeterValue`` (signedMeterData, encodingMethod, publicKey); the signed blob is passed
    through unchanged. Kept: the energy register's first Transaction.Begin value (nature Start)
    and last Transaction.End value (End); without either, the first and last (Intermediate).
    Values of another encoding than the first kept one, repeated blobs and blobs over the 5000
    characters OCPI allows are left out."""
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for v in values:
        if not isinstance(v, dict) or v.get("measurand", ENERGY) != ENERGY:
            continue
        smv = v.get("signedMeterValue")
        if isinstance(smv, dict):  # 2.0.1
            signed, method, key, plain = (smv.get("signedMeterData"), smv.get("encodingMethod"), smv.get("publicKey"),
                                          v.get("value"))
        elif v.get("format") == "SignedData":  # 1.6
            signed, method, key, plain = v.get("value"), None, None, None
        else:
            continue
        if not isinstance(signed, str) or not signed or signed in seen or len(signed) > 5000:
            continue
        seen.add(signed)
        encoding = str(_encoding(signed) or method or "UNKNOWN")[:36]
        entries.append({"context": v.get("context", ""), "encoding": encoding, "public_key": key,
                        "plain": _plain(signed, encoding, plain)[:5000], "signed": signed})
    if not entries:
        return None
    starts = [e for e in entries if NATURE.get(e["context"]) == "Start"]
    ends = [e for e in entries if NATURE.get(e["context"]) == "End"]
    if starts or ends:
        chosen = [(e, NATURE[e["context"]]) for e in starts[:1] + ends[-1:]]
    else:
        chosen = [(e, "Intermediate") for e in ([entries[0], entries[-1]] if len(entries) > 1 else entries)]
    encoding = chosen[0][0]["encoding"]
    out: dict[str, Any] = {"encoding_method": encoding, "signed_values": [
        {"nature": nature, "plain_data": e["plain"], "signed_data": e["signed"]}
        for e, nature in chosen if e["encoding"] == encoding]}
    key = next((e["public_key"] for e, _ in chosen if isinstance(e["public_key"], str) and e["public_key"]), None)
    if key is not None and len(key) <= 512:
        out["public_key"] = key
    url = ocpi_settings().signed_data_url
    if url and len(url) <= 512:
        out["url"] = url
    return out
