"""``GET /public/locations``: the published sites as OCPI 2.2.1 Location objects, for aggregators
and apps, without login or credentials.

The same sites as the public map (:func:`csms.admin.public_map.published_data`: the site's and its
organization's ``publish`` switches on, coordinates set) that also have the street, city and
country an OCPI Location requires, each with its accepted stations' EVSEs and connectors and their
live status. The roaming plugin builds its own Locations for partners (the core never imports a
plugin); this feed is built here from the public map's data, and differs from what partners get:

* EVSE ``uid`` is ``<station row id>-<evse id>`` (partners see the station's OCPP identity, which
  the public never does); there is no eMI3 ``evse_id``, no ``capabilities``, no ``tariff_ids``;
* no ``operator``/``owner`` business details; ``opening_times`` only where a plugin gives them
  (the ``public_site_facts`` hook);
* a connector's plug type, when the operator set none, reads ``IEC_62196_T2`` (as roaming does),
  its voltage and current are derived from its power as roaming derives them.

Paginated as OCPI pages are: ``offset`` and ``limit`` (at most :data:`MAX_LIMIT`), the
``X-Total-Count`` and ``X-Limit`` headers, and a ``Link: <...>; rel="next"`` header while more
follow. The body is the OCPI response envelope. ``ETag``/``If-None-Match`` and ``Cache-Control``
as the GeoJSON feed.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get
from litestar.exceptions import ValidationException

from csms.admin.public_map import CACHE_CONTROL, PUBLIC_OPT, published_data
from csms.api.links import public_base_url
from csms.core.runtime import get_core
from csms.core.timeutil import ocpp_ts, utcnow

MAX_LIMIT = 100

# OCPP connector status (both versions) -> OCPI EVSE status; a station offline is UNKNOWN
OCPI_STATUS = {
    "Available": "AVAILABLE", "Occupied": "CHARGING", "Charging": "CHARGING", "Preparing": "CHARGING",
    "SuspendedEV": "CHARGING", "SuspendedEVSE": "CHARGING", "Finishing": "CHARGING", "Reserved": "RESERVED",
    "Unavailable": "INOPERATIVE", "Faulted": "OUTOFORDER",
}
# an EVSE with several connectors is as busy as its busiest one
EVSE_PRECEDENCE = ("OUTOFORDER", "CHARGING", "RESERVED", "INOPERATIVE", "AVAILABLE", "UNKNOWN")
CONNECTOR_TYPES = frozenset({
    "CHADEMO", "CHAOJI", "DOMESTIC_A", "DOMESTIC_B", "DOMESTIC_C", "DOMESTIC_D", "DOMESTIC_E", "DOMESTIC_F",
    "DOMESTIC_G", "DOMESTIC_H", "DOMESTIC_I", "DOMESTIC_J", "DOMESTIC_K", "DOMESTIC_L", "DOMESTIC_M",
    "DOMESTIC_N", "DOMESTIC_O", "GBT_AC", "GBT_DC", "IEC_60309_2_single_16", "IEC_60309_2_three_16",
    "IEC_60309_2_three_32", "IEC_60309_2_three_64", "IEC_62196_T1", "IEC_62196_T1_COMBO", "IEC_62196_T2",
    "IEC_62196_T2_COMBO", "IEC_62196_T3A", "IEC_62196_T3C", "NEMA_5_20", "NEMA_6_30", "NEMA_6_50", "NEMA_10_30",
    "NEMA_10_50", "NEMA_14_30", "NEMA_14_50", "PANTOGRAPH_BOTTOM_UP", "PANTOGRAPH_TOP_DOWN", "TESLA_R", "TESLA_S"})
POWER_TYPES = frozenset({"AC_1_PHASE", "AC_2_PHASE", "AC_2_PHASE_SPLIT", "AC_3_PHASE", "DC"})
PHASES = {"AC_3_PHASE": 3, "AC_2_PHASE": 2, "AC_2_PHASE_SPLIT": 2}


def ocpi_connector(c: dict[str, Any], station: dict[str, Any], voltage: float | None) -> dict[str, Any]:
    """An OCPI Connector of a stored connector (ratings derived as the roaming plugin does)."""
    power_type = c["power_type"] if c["power_type"] in POWER_TYPES else "AC_3_PHASE"
    dc = power_type == "DC"
    volts = 400 if dc else int(round(voltage or 230))
    phases = 1 if dc else PHASES.get(power_type, 1)
    if c["max_power_w"]:
        watts = int(round(c["max_power_w"]))
        amps = int(round(c["max_power_w"] / (volts * phases)))
    else:
        amps = int(round(station["max_current_a"] or (125 if dc else 32)))
        watts = volts * amps * phases
    return {"id": str(c["connector_id"]),
            "standard": c["standard"] if c["standard"] in CONNECTOR_TYPES else "IEC_62196_T2",
            "format": "CABLE" if dc else "SOCKET", "power_type": power_type, "max_voltage": volts,
            "max_amperage": max(amps, 1), "max_electric_power": watts, "last_updated": ocpp_ts(c["updated_at"])}


def ocpi_location(site: dict[str, Any], country_code: str, party_id: str) -> dict[str, Any]:
    """An OCPI 2.2.1 Location of one site of :func:`published_data`."""
    evses = []
    for st in site["stations"]:
        by_evse: dict[int, list[dict[str, Any]]] = {}
        for c in st["connectors"]:
            if c["evse_id"] and c["evse_id"] > 0:
                by_evse.setdefault(c["evse_id"], []).append(c)
        for evse_id, conns in sorted(by_evse.items()):
            statuses = {OCPI_STATUS.get(c["status"], "UNKNOWN") for c in conns} if st["connected"] else {"UNKNOWN"}
            evses.append({
                "uid": f"{st['id']}-{evse_id}",
                "status": next(s for s in EVSE_PRECEDENCE if s in statuses),
                "connectors": [ocpi_connector(c, st, site["voltage_v"]) for c in conns],
                "physical_reference": str(evse_id),
                "last_updated": ocpp_ts(max(c["updated_at"] for c in conns)),
            })
    changed: list[datetime] = [site["created_at"], *(c["updated_at"] for st in site["stations"]
                                                      for c in st["connectors"])]
    location: dict[str, Any] = {
        "country_code": country_code, "party_id": party_id, "id": str(site["id"]), "publish": True,
        "name": site["name"][:255], "address": site["address"][:45], "city": site["city"][:45],
        "country": site["country"].upper(),
        "coordinates": {"latitude": f"{site['latitude']:.6f}", "longitude": f"{site['longitude']:.6f}"},
        "evses": evses, "time_zone": site["timezone"] or "UTC", "last_updated": ocpp_ts(max(changed)),
    }
    if site["postal_code"]:
        location["postal_code"] = site["postal_code"][:10]
    if isinstance(site["facts"].get("opening_times"), dict):
        location["opening_times"] = site["facts"]["opening_times"]
    return location


def _window(value: str | None, name: str, default: int, maximum: int | None = None) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValidationException(f"{name} must be a whole number") from None
    if number < 0 or (maximum is not None and number > maximum):
        raise ValidationException(f"{name} must be from 0 to {maximum}" if maximum is not None
                                  else f"{name} must not be negative")
    return number


@get("/public/locations", include_in_schema=False, opt=PUBLIC_OPT)
async def public_locations(request: Request) -> Response[bytes]:
    """One page of the published Locations in the OCPI response envelope; 304 when
    ``If-None-Match`` matches."""
    offset = _window(request.query_params.get("offset"), "offset", 0, 2**31 - 1)
    limit = _window(request.query_params.get("limit"), "limit", MAX_LIMIT, MAX_LIMIT)
    total, sites = await published_data(offset=offset, limit=limit, full_address=True)
    settings = get_core().settings
    data = [ocpi_location(site, settings.public_country_code, settings.public_party_id) for site in sites]
    etag = '"' + hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Vary": "Accept-Encoding",
               "X-Total-Count": str(total), "X-Limit": str(MAX_LIMIT)}
    if offset + len(sites) < total:
        query = urlencode({"offset": offset + len(sites), "limit": limit})
        headers["Link"] = f'<{public_base_url(request)}/public/locations?{query}>; rel="next"'
    asked = request.headers.get("if-none-match", "")
    if etag in [t.strip().removeprefix("W/") for t in asked.split(",")] or asked.strip() == "*":
        return Response(b"", status_code=304, headers=headers)
    body = {"data": data, "status_code": 1000, "status_message": "Success", "timestamp": ocpp_ts(utcnow())}
    return Response(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
                    media_type="application/json", headers=headers)
